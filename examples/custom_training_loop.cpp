// A training loop written by hand with the tape, the same layers, loss, metrics and optimizer
// that fit() uses: Keras's "writing a training loop from scratch".
//
//   model = keras.Sequential([keras.Input((784,)), Dense(256, kernel_regularizer=L2(1e-4)),
//                             BatchNormalization(), ReLU(), Dropout(0.2), Dense(10, "softmax")])
//   for epoch in range(epochs):
//       for x, y in batches:                               # reshuffled each epoch
//           with tf.GradientTape() as tape:
//               y_pred = model(x, training=True)
//               loss = loss_fn(y, y_pred) + sum(model.losses)
//           grads = tape.gradient(loss, model.trainable_weights)
//           optimizer.apply_gradients(zip(grads, model.trainable_weights))
//
// Data: a subset of Fashion-MNIST (Debian's dataset-fashion-mnist package), or, when its files
// are absent, synthetic blobs of the same shape. The test accuracy is measured on the 10,000
// test images with model.predict (training=false, batched, no tape).
//
//   custom_training_loop [--epochs 5] [--train 20000] [--batch-size 128] [--threads N] [--seed 1]
//                        [--data /usr/share/datasets/fashion-mnist]
#include "framework/io/idx.hpp"
#include "framework/losses_api.hpp"
#include "framework/metrics.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/regularizers.hpp"
#include "framework/sequential.hpp"
#include "framework/tape.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "optim/adam.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <numeric>
#include <random>
#include <string>

using namespace xtape;

namespace {

struct Data {
    array_t<float> x_train, y_train, x_test, y_test;
    std::string source;
};

array_t<float> idx_images(const std::string& path, std::size_t limit)
{
    const io::IdxArray a = io::read_idx(path);
    if (a.shape.size() != 3)
        throw IOError(path + ": expected images of rank 3, got shape " + shape_str(a.shape));
    const std::size_t n = std::min(limit, a.shape[0]), row = a.shape[1] * a.shape[2];
    array_t<float> x = array_t<float>::from_shape({ n, row });
    for (std::size_t i = 0; i < n * row; ++i)
        x.data()[i] = static_cast<float>(a.data[i]) / 255.0f;
    return x;
}

array_t<float> idx_labels(const std::string& path, std::size_t limit)
{
    const io::IdxArray a = io::read_idx(path);
    if (a.shape.size() != 1)
        throw IOError(path + ": expected labels of rank 1, got shape " + shape_str(a.shape));
    const std::size_t n = std::min(limit, a.shape[0]);
    array_t<float> y = array_t<float>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i)
        y(i) = static_cast<float>(a.data[i]);
    return y;
}

/// Ten Gaussian blobs in 784 dimensions, for machines without the dataset.
void blobs(std::size_t n, unsigned seed, array_t<float>& x, array_t<float>& y)
{
    std::mt19937 gen(seed);
    std::normal_distribution<float> g(0.f, 1.f);
    x = array_t<float>::from_shape({ n, 784 });
    y = array_t<float>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = i % 10;
        y(i) = static_cast<float>(c);
        for (std::size_t j = 0; j < 784; ++j)
            x(i, j) = 0.3f * g(gen) + (j % 10 == c ? 0.15f : 0.f);
    }
}

Data load(const std::string& dir, std::size_t n_train)
{
    Data d;
    if (std::ifstream(dir + "/train-images-idx3-ubyte.gz").good()) {
        d.x_train = idx_images(dir + "/train-images-idx3-ubyte.gz", n_train);
        d.y_train = idx_labels(dir + "/train-labels-idx1-ubyte.gz", n_train);
        d.x_test = idx_images(dir + "/t10k-images-idx3-ubyte.gz", 10000);
        d.y_test = idx_labels(dir + "/t10k-labels-idx1-ubyte.gz", 10000);
        d.source = "Fashion-MNIST (" + dir + ")";
    } else {
        blobs(n_train, 1, d.x_train, d.y_train);
        blobs(2000, 2, d.x_test, d.y_test);
        d.source = "synthetic blobs (" + dir + " not found)";
    }
    return d;
}

/// Rows idx[0..count) of a.
array_t<float> gather(const array_t<float>& a, const std::size_t* idx, std::size_t count)
{
    shape_t s(a.shape().begin(), a.shape().end());
    const std::size_t row = a.size() / s[0];
    s[0] = count;
    array_t<float> out = array_t<float>::from_shape(s);
    for (std::size_t i = 0; i < count; ++i)
        std::copy(a.data() + idx[i] * row, a.data() + (idx[i] + 1) * row, out.data() + i * row);
    return out;
}

/// Accuracy of the model in inference mode (Model::predict: training=false, batched, no tape).
double accuracy(Model<float>& model, const array_t<float>& x, const array_t<float>& y)
{
    PredictOptions<float> po;
    po.batch_size = 1000;
    po.verbose = 0;
    SparseCategoricalAccuracy<float> acc;
    acc.update_state(y, model.predict(x, po));
    return acc.result();
}

[[noreturn]] void usage(const char* prog)
{
    std::fprintf(stderr,
                 "usage: %s [--epochs N] [--train N] [--batch-size N] [--threads N] [--seed N] [--data DIR]\n", prog);
    std::exit(2);
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    int epochs = 5, threads = 0;
    std::size_t n_train = 20000, batch_size = 128;
    std::uint64_t seed = 1;
    std::string dir = "/usr/share/datasets/fashion-mnist";
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (i + 1 >= argc)
            usage(argv[0]);
        const std::string v = argv[++i];
        const long long n = std::atoll(v.c_str());
        if (k == "--epochs" && n >= 1)
            epochs = static_cast<int>(n);
        else if (k == "--train" && n >= 1)
            n_train = static_cast<std::size_t>(n);
        else if (k == "--batch-size" && n >= 1)
            batch_size = static_cast<std::size_t>(n);
        else if (k == "--threads" && n >= 1)
            threads = static_cast<int>(n);
        else if (k == "--seed" && n >= 0)
            seed = static_cast<std::uint64_t>(n);
        else if (k == "--data")
            dir = v;
        else
            usage(argv[0]);
    }
    try {
        if (threads > 0)
            set_num_threads(threads);
        set_random_seed(seed); // weights, dropout masks and the shuffles below
        const Data data = load(dir, n_train);
        const std::size_t n = data.x_train.shape()[0];
        std::printf("%zu training and %zu test samples from %s; %d thread(s)\n", n, data.x_test.shape()[0],
                    data.source.c_str(), max_threads());

        DenseOptions<float> hidden;
        hidden.units = 256;
        hidden.kernel_regularizer = std::make_shared<L2<float>>(1e-4);
        Sequential<float> model({ Input<float>({ 784 }), std::make_shared<Dense<float>>(hidden),
                                  std::make_shared<BatchNormalization<float>>(), std::make_shared<ReLU<float>>(),
                                  std::make_shared<Dropout<float>>(0.2), std::make_shared<Dense<float>>(10, "softmax") });
        Adam<float> optimizer(1e-3);
        SparseCategoricalCrossentropy<float> loss_fn;
        SparseCategoricalAccuracy<float> train_acc;
        Mean<float> train_loss("loss");

        double first_loss = 0, last_loss = 0, test_acc = 0;
        for (int epoch = 0; epoch < epochs; ++epoch) {
            const auto t0 = std::chrono::steady_clock::now();
            train_acc.reset_state();
            train_loss.reset_state();
            // The loop owns the schedule too: the step shrinks each epoch, so the last epochs
            // refine rather than bounce (what LearningRateScheduler does for fit()).
            optimizer.set_learning_rate(1e-3 * std::pow(0.7, epoch));
            // A fresh permutation each epoch, drawn from the seeded global generator.
            std::vector<std::size_t> order(n);
            std::iota(order.begin(), order.end(), std::size_t(0));
            std::shuffle(order.begin(), order.end(), global_rng());
            for (std::size_t b = 0; b < n; b += batch_size) {
                const std::size_t c = std::min(batch_size, n - b);
                const array_t<float> y_batch = gather(data.y_train, order.data() + b, c);
                const Tensor<float> x(gather(data.x_train, order.data() + b, c)), y(y_batch);

                std::vector<Tensor<float>> grads;
                std::vector<Variable<float>> weights;
                Tensor<float> y_pred, loss;
                {
                    GradientTape<float> tape;              // records the forward pass
                    y_pred = model(x, /*training=*/true);  // BatchNormalization: batch statistics; Dropout on
                    loss = loss_fn(y, y_pred);
                    for (const auto& penalty : model.losses()) // the kernel's L2 penalty
                        loss = loss + penalty;
                    weights = model.trainable_weights();
                    grads = tape.gradient(loss, weights);
                }
                optimizer.apply_gradients(grads, weights); // Adam's update, then the constraints

                train_loss.update(static_cast<double>(loss.item()), static_cast<double>(c));
                train_acc.update_state(y_batch, y_pred.value());
            }
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (epoch == 0)
                first_loss = train_loss.result();
            last_loss = train_loss.result();
            test_acc = accuracy(model, data.x_test, data.y_test);
            std::printf("epoch %d/%d  loss %.4f  accuracy %.4f  test accuracy %.4f  (%.1f s)\n", epoch + 1, epochs,
                        train_loss.result(), train_acc.result(), test_acc, secs);
            std::fflush(stdout);
        }
        std::printf("Final test accuracy: %.4f (training loss %.4f -> %.4f)\n", test_acc, first_loss, last_loss);
        return last_loss < first_loss ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "custom_training_loop: %s\n", e.what());
        return 1;
    }
}
