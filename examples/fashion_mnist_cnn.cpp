// Issue 12's convolutional network on Fashion-MNIST:
//
//   model = Sequential([Input((28, 28, 1)),
//                       Conv2D(32, 3, padding="same", use_bias=False), BatchNormalization(), ReLU(), MaxPooling2D(),
//                       Conv2D(64, 3, padding="same", use_bias=False), BatchNormalization(), ReLU(), MaxPooling2D(),
//                       Flatten(), Dense(128), BatchNormalization(), ReLU(), Dropout(0.3),
//                       Dense(10, "softmax")])
//   model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
//   model.fit(x_train, y_train, epochs=10, batch_size=128, validation_split=0.1,
//             callbacks=[LearningRateScheduler(...), CSVLogger(...)])
//   model.evaluate(x_test, y_test)
//
// Data: the IDX files of Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist),
// pixels scaled to [0, 1], as (n, 28, 28, 1) channels_last.
//
//   fashion_mnist_cnn [--epochs 10] [--batch-size 128] [--threads CORES] [--seed 42]
//                     [--csv fashion_mnist_cnn_log.csv] [--data /usr/share/datasets/fashion-mnist] [--verbose 1]
#include "examples/fashion_mnist_common.hpp"
#include "framework/blas_setup.hpp"
#include "framework/callbacks.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "optim/adam.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>

using namespace xtape;

int main(int argc, char** argv)
{
    const examples::FashionMnistArgs args = examples::parse_fashion_mnist_args(argc, argv, "fashion_mnist_cnn_log.csv");
    try {
        // One thread pool (Note [OpenBLAS threads and kernels]): xtape's OpenMP threads, OpenBLAS
        // single-threaded inside them. bench_cnn_step measures this split against the others.
        if (args.threads > 0)
            set_num_threads(args.threads);
        set_random_seed(args.seed);

        const auto t_load = std::chrono::steady_clock::now();
        const examples::FashionMnist data = examples::load_fashion_mnist(args.data, /*flat=*/false);
        std::printf("Fashion-MNIST: %zu training and %zu test images of %zux%zu pixels (loaded in %.1f s); "
                    "%d thread(s), OpenBLAS kernels: %s\n",
                    data.x_train.shape()[0], data.x_test.shape()[0], data.x_train.shape()[1], data.x_train.shape()[2],
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count(), max_threads(),
                    blas_core_name());

        const auto model = examples::fashion_mnist_cnn();
        model->summary();
        model->compile(std::make_shared<Adam<float>>(), "sparse_categorical_crossentropy", { "accuracy" });
        FitOptions<float> fo;
        fo.epochs = args.epochs;
        fo.batch_size = args.batch_size;
        fo.validation_split = 0.1;
        fo.verbose = args.verbose;
        // As in the MLP example, Adam's step shrinks by a quarter each epoch, so the late epochs
        // refine instead of bouncing between minima.
        auto decay = std::make_shared<LearningRateScheduler<float>>(
            [](int epoch, double) { return 1e-3 * std::pow(0.75, epoch); });
        fo.callbacks = { decay, std::make_shared<CSVLogger<float>>(args.csv) };
        const auto t0 = std::chrono::steady_clock::now();
        model->fit(data.x_train, data.y_train, fo);
        const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

        EvaluateOptions<float> eo;
        eo.batch_size = args.batch_size;
        eo.verbose = args.verbose;
        const Logs test = model->evaluate(data.x_test, data.y_test, eo);
        std::printf("Test loss: %.4f\nTest accuracy: %.4f\n", test.at("loss"), test.at("accuracy"));
        std::printf("Training time: %.1f s (%d epochs, %.2f s/epoch); training log written to %s\n", train_s,
                    args.epochs, train_s / args.epochs, args.csv.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fashion_mnist_cnn: %s\n", e.what());
        return 1;
    }
}
