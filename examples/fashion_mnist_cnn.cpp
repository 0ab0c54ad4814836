// Issue 12's convolutional network on Fashion-MNIST:
//
//   model = Sequential([Input((28, 28, 1)),
//                       Conv2D(32, 3, padding="same", use_bias=False), BatchNormalization(), ReLU(), MaxPooling2D(),
//                       Conv2D(64, 3, padding="same", use_bias=False), BatchNormalization(), ReLU(), MaxPooling2D(),
//                       Flatten(), Dense(128), BatchNormalization(), ReLU(), Dropout(0.3),
//                       Dense(10, "softmax")])
//   model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
//   model.fit(x_train, y_train, epochs=10, batch_size=128, validation_split=0.1,
//             callbacks=[LearningRateScheduler(...), CSVLogger(...), PlotHistory("curves.png")])
//   model.evaluate(x_test, y_test)
//
// Data: the IDX files of Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist),
// pixels scaled to [0, 1], as (n, 28, 28, 1) channels_last.
//
//   fashion_mnist_cnn [--epochs 10] [--batch-size 128] [--threads CORES] [--seed 42]
//                     [--csv fashion_mnist_cnn_log.csv] [--data /usr/share/datasets/fashion-mnist] [--verbose 1]
#include "examples/fashion_mnist_common.hpp"
#include "framework/process.hpp"

#include <cstdio>
#include <exception>

using namespace xtape;

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    const examples::FashionMnistArgs args = examples::parse_fashion_mnist_args(argc, argv, "fashion_mnist_cnn_log.csv");
    try {
        const examples::FashionMnist data = examples::prepare_fashion_mnist(args, /*flat=*/false);
        const auto model = examples::fashion_mnist_cnn();
        model->summary();
        examples::compile_fit_evaluate(*model, data, args);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion_mnist_cnn: %s\n", e.what());
        return 1;
    }
}
