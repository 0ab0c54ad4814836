// The README's main job: a Keras-style MLP on Fashion-MNIST.
//
//   model = Sequential([Input((784,)), Dense(512), BatchNormalization(), ReLU(),
//                       Dense(256), BatchNormalization(), ReLU(), Dense(10, "softmax")])
//   model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
//   model.fit(x_train, y_train, epochs=10, batch_size=128, validation_split=0.1,
//             callbacks=[CSVLogger(...), PlotHistory("curves.png")])
//   model.evaluate(x_test, y_test)
//
// Data: the IDX files of Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist),
// pixels scaled to [0, 1].
//
//   fashion_mnist [--epochs 10] [--batch-size 128] [--threads CORES] [--seed 42]
//                 [--csv fashion_mnist_log.csv] [--data /usr/share/datasets/fashion-mnist] [--verbose 1]
#include "examples/fashion_mnist_common.hpp"
#include "framework/process.hpp"

#include <cstdio>
#include <exception>

using namespace xtape;

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    const examples::FashionMnistArgs args = examples::parse_fashion_mnist_args(argc, argv, "fashion_mnist_log.csv");
    try {
        const examples::FashionMnist data = examples::prepare_fashion_mnist(args, /*flat=*/true);
        const auto model = examples::fashion_mnist_mlp();
        model->summary();
        examples::compile_fit_evaluate(*model, data, args);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion_mnist: %s\n", e.what());
        return 1;
    }
}
