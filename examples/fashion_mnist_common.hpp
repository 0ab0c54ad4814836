// What the Fashion-MNIST programs share: the command line of the examples, the IDX data of Debian's
// dataset-fashion-mnist package, the two networks (examples/fashion_mnist.cpp's MLP and
// examples/fashion_mnist_cnn.cpp's CNN), so that bench/bench_mlp_step and bench/bench_cnn_step time
// the very model the examples train, and the examples' training script (compile, fit, evaluate).
// Header-only: examples and benches are single-file programs.
#pragma once

#include "framework/blas_setup.hpp"
#include "framework/callbacks.hpp"
#include "framework/io/idx.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "framework/training_curves.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/convolutional/base_conv.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "layers/input_layer.hpp"
#include "layers/pooling/pooling.hpp"
#include "layers/relu.hpp"
#include "optim/adam.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace xtape::examples {

struct FashionMnistArgs {
    int epochs = 10;
    std::size_t batch_size = 128;
    int threads = 0; // xtape's OpenMP threads; 0: one per core
    std::uint64_t seed = 42;
    std::string csv;
    std::string data = "/usr/share/datasets/fashion-mnist";
    int verbose = -1;
};

[[noreturn]] inline void fashion_mnist_usage(const char* prog, const std::string& problem)
{
    if (!problem.empty())
        std::fprintf(stderr, "%s: %s\n", prog, problem.c_str());
    std::fprintf(stderr,
                 "usage: %s [--epochs N] [--batch-size N] [--threads N] [--seed N] [--csv PATH] [--data DIR] "
                 "[--verbose 0|1|2]\n",
                 prog);
    std::exit(2);
}

/// ensures: the options of the command line over the defaults (csv: default_csv); a bad or unknown
/// option prints the usage and exits with status 2.
inline FashionMnistArgs parse_fashion_mnist_args(int argc, char** argv, const std::string& default_csv)
{
    FashionMnistArgs a;
    a.csv = default_csv;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k == "--help" || k == "-h")
            fashion_mnist_usage(argv[0], "");
        if (i + 1 >= argc)
            fashion_mnist_usage(argv[0], "option " + k + " needs a value");
        const std::string v = argv[++i];
        char* end = nullptr;
        const long long n = std::strtoll(v.c_str(), &end, 10);
        const bool is_int = end && *end == '\0' && !v.empty();
        if (k == "--csv")
            a.csv = v;
        else if (k == "--data")
            a.data = v;
        else if (!is_int)
            fashion_mnist_usage(argv[0], "option " + k + " needs an integer, got '" + v + "'");
        else if (k == "--epochs" && n >= 1)
            a.epochs = static_cast<int>(n);
        else if (k == "--batch-size" && n >= 1)
            a.batch_size = static_cast<std::size_t>(n);
        else if (k == "--threads" && n >= 1)
            a.threads = static_cast<int>(n);
        else if (k == "--seed" && n >= 0)
            a.seed = static_cast<std::uint64_t>(n);
        else if (k == "--verbose" && n >= 0 && n <= 2)
            a.verbose = static_cast<int>(n);
        else
            fashion_mnist_usage(argv[0], "unknown option or bad value: " + k + " " + v);
    }
    return a;
}

struct FashionMnist {
    array_t<float> x_train, y_train, x_test, y_test;
};

/// Images (n, rows, cols) in [0, 1]: as (n, rows * cols) when flat (the MLP), else as
/// (n, rows, cols, 1), channels_last (the CNN). Labels (n,) are class indices stored as floats.
/// requires: dir holds the four gzipped IDX files (IOError naming the file otherwise).
inline FashionMnist load_fashion_mnist(const std::string& dir, bool flat)
{
    auto images = [flat](const std::string& path) {
        const io::IdxArray a = io::read_idx(path);
        if (a.shape.size() != 3)
            throw IOError(path + ": expected images of rank 3, got shape " + shape_str(a.shape));
        array_t<float> x = flat ? array_t<float>::from_shape({ a.shape[0], a.shape[1] * a.shape[2] })
                                : array_t<float>::from_shape({ a.shape[0], a.shape[1], a.shape[2], 1 });
        float* p = x.data();
        for (std::size_t i = 0; i < a.data.size(); ++i)
            p[i] = static_cast<float>(a.data[i]) / 255.0f;
        return x;
    };
    auto labels = [](const std::string& path) {
        const io::IdxArray a = io::read_idx(path);
        if (a.shape.size() != 1)
            throw IOError(path + ": expected labels of rank 1, got shape " + shape_str(a.shape));
        array_t<float> y = array_t<float>::from_shape({ a.shape[0] });
        for (std::size_t i = 0; i < a.data.size(); ++i)
            y(i) = static_cast<float>(a.data[i]);
        return y;
    };
    return FashionMnist{ images(dir + "/train-images-idx3-ubyte.gz"), labels(dir + "/train-labels-idx1-ubyte.gz"),
                         images(dir + "/t10k-images-idx3-ubyte.gz"), labels(dir + "/t10k-labels-idx1-ubyte.gz") };
}

/// Sets the threads and the seed of the command line, loads the data (flat: see load_fashion_mnist)
/// and prints what was loaded.
inline FashionMnist prepare_fashion_mnist(const FashionMnistArgs& args, bool flat)
{
    // One thread pool (Note [OpenBLAS threads and kernels]): xtape's OpenMP threads, OpenBLAS
    // single-threaded inside them. The step benches measure this split against the others.
    if (args.threads > 0)
        set_num_threads(args.threads);
    set_random_seed(args.seed);
    const auto t0 = std::chrono::steady_clock::now();
    FashionMnist data = load_fashion_mnist(args.data, flat);
    std::printf("Fashion-MNIST: %zu training and %zu test images, samples of shape %s (loaded in %.1f s); %d "
                "thread(s), OpenBLAS kernels: %s\n",
                data.x_train.shape()[0], data.x_test.shape()[0],
                shape_str(shape_t(data.x_train.shape().begin() + 1, data.x_train.shape().end())).c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), max_threads(),
                blas_core_name());
    return data;
}

/// "curves.png" in the directory of the CSV log.
inline std::string curves_path(const std::string& csv)
{
    const auto slash = csv.find_last_of('/');
    return (slash == std::string::npos ? std::string() : csv.substr(0, slash + 1)) + "curves.png";
}

/// The examples' Keras script once the model is built:
///   model.compile(Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
///   model.fit(x_train, y_train, epochs, batch_size, validation_split=0.1,
///             callbacks=[LearningRateScheduler(1e-3 * 0.75**epoch), CSVLogger(csv), PlotHistory(curves.png)])
///   model.evaluate(x_test, y_test)
/// and prints the test loss and accuracy and the training time.
inline void compile_fit_evaluate(Model<float>& model, const FashionMnist& data, const FashionMnistArgs& args)
{
    model.compile(std::make_shared<Adam<float>>(), "sparse_categorical_crossentropy", { "accuracy" });
    FitOptions<float> fo;
    fo.epochs = args.epochs;
    fo.batch_size = args.batch_size;
    fo.validation_split = 0.1;
    fo.verbose = args.verbose;
    // Adam's step shrinks by a quarter each epoch: the late epochs refine instead of bouncing
    // around (with a constant 1e-3 the MLP's test accuracy was noisy, 0.87-0.89, between runs).
    auto decay = std::make_shared<LearningRateScheduler<float>>(
      [](int epoch, double) { return 1e-3 * std::pow(0.75, epoch); });
    fo.callbacks = { decay, std::make_shared<CSVLogger<float>>(args.csv) };
    // The curves, redrawn after every epoch beside the CSV log (watch them in an image viewer).
    const std::string curves = curves_path(args.csv);
    if (can_run_program("gnuplot")) {
        PlotOptions po;
        po.title = args.csv; // the picture is titled by the log it mirrors
        fo.callbacks.push_back(std::make_shared<PlotHistory<float>>(curves, po));
    } else {
        std::printf("gnuplot not found: %s will not be drawn (Debian: apt install gnuplot-nox)\n", curves.c_str());
    }
    const auto t0 = std::chrono::steady_clock::now();
    model.fit(data.x_train, data.y_train, fo);
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    EvaluateOptions<float> eo;
    eo.batch_size = args.batch_size;
    eo.verbose = args.verbose;
    const Logs test = model.evaluate(data.x_test, data.y_test, eo);
    std::printf("Test loss: %.4f\nTest accuracy: %.4f\n", test.at("loss"), test.at("accuracy"));
    std::printf("Training time: %.1f s (%d epochs, %.2f s/epoch); training log written to %s%s%s\n", train_s,
                args.epochs, train_s / args.epochs, args.csv.c_str(),
                can_run_program("gnuplot") ? ", curves to " : "", can_run_program("gnuplot") ? curves.c_str() : "");
}

/// 784 -> Dense 512 -> BN -> ReLU -> Dense 256 -> BN -> ReLU -> Dense 10 softmax (not compiled).
/// synchronized_bn: BatchNormalization(synchronized=True), statistics over every rank's share of
/// the batch in data-parallel training (examples/fashion_mnist_data_parallel.cpp).
inline std::shared_ptr<Sequential<float>> fashion_mnist_mlp(bool synchronized_bn = false)
{
    BatchNormalizationOptions<float> bn;
    bn.synchronized = synchronized_bn;
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 784 }));
    m->add(std::make_shared<Dense<float>>(512));
    m->add(std::make_shared<BatchNormalization<float>>(bn));
    m->add(std::make_shared<ReLU<float>>());
    m->add(std::make_shared<Dense<float>>(256));
    m->add(std::make_shared<BatchNormalization<float>>(bn));
    m->add(std::make_shared<ReLU<float>>());
    m->add(std::make_shared<Dense<float>>(10, "softmax"));
    return m;
}

/// Issue 12's network (not compiled): 28x28x1 -> [Conv2D 3x3 same -> BN -> ReLU -> MaxPooling2D 2x2]
/// with 32 then 64 filters -> Flatten -> Dense 128 -> BN -> ReLU -> Dropout -> Dense 10 softmax.
/// The convolutions have no bias: the BatchNormalization after each has the offset (beta), and a
/// bias before it would be subtracted again with the batch mean.
inline std::shared_ptr<Sequential<float>> fashion_mnist_cnn(double dropout = 0.3)
{
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 28, 28, 1 }));
    for (long filters : { 32L, 64L }) {
        ConvLayerOptions<float> conv;
        conv.filters = filters;
        conv.kernel_size = { 3 };
        conv.padding = "same";
        conv.use_bias = false;
        m->add(std::make_shared<Conv2D<float>>(conv));
        m->add(std::make_shared<BatchNormalization<float>>());
        m->add(std::make_shared<ReLU<float>>());
        m->add(std::make_shared<MaxPooling2D<float>>());
    }
    m->add(std::make_shared<Flatten<float>>());
    m->add(std::make_shared<Dense<float>>(128));
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<ReLU<float>>());
    m->add(std::make_shared<Dropout<float>>(dropout));
    m->add(std::make_shared<Dense<float>>(10, "softmax"));
    return m;
}

} // namespace xtape::examples
