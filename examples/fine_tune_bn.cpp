// Fine-tuning with a frozen BatchNormalization base, as Keras's transfer-learning guide does it.
//
//   base  = [Dense(256), BatchNormalization(), ReLU(), Dense(128), BatchNormalization(), ReLU()]
//   1. pretrain base + head A on Fashion-MNIST's classes 0-4 (tops, trousers, ...);
//   2. freeze the base: trainable=false on every base layer, so the BatchNormalization layers run
//      in inference mode even inside fit (Keras's rule) and their statistics stay put;
//   3. train a new head B on classes 5-9 (sandals, shirts, sneakers, bags, boots) on top of it;
//   4. check that every base weight, the moving means and variances included, is bit-for-bit what
//      it was after step 1, and report head B's test accuracy.
//
// The contrast run (--no-freeze) trains head B with the base left trainable: the moving statistics
// then move, which is what freezing prevents.
//
//   fine_tune_bn [--epochs 2] [--threads CORES] [--seed 7] [--data /usr/share/datasets/fashion-mnist]
//                [--no-freeze]
#include "framework/io/idx.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "optim/adam.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

using namespace xtape;

namespace {

struct Args {
    int epochs = 2;
    int threads = 0;
    std::uint64_t seed = 7;
    std::string data = "/usr/share/datasets/fashion-mnist";
    bool freeze = true;
};

Args parse(int argc, char** argv)
{
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k == "--no-freeze") {
            a.freeze = false;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s: %s needs a value\n", argv[0], k.c_str());
            std::exit(2);
        }
        const std::string v = argv[++i];
        if (k == "--epochs")
            a.epochs = std::atoi(v.c_str());
        else if (k == "--threads")
            a.threads = std::atoi(v.c_str());
        else if (k == "--seed")
            a.seed = std::strtoull(v.c_str(), nullptr, 10);
        else if (k == "--data")
            a.data = v;
        else {
            std::fprintf(stderr,
                         "usage: %s [--epochs N] [--threads N] [--seed N] [--data DIR] [--no-freeze]\n", argv[0]);
            std::exit(2);
        }
    }
    if (a.epochs < 1) {
        std::fprintf(stderr, "%s: --epochs must be at least 1\n", argv[0]);
        std::exit(2);
    }
    return a;
}

/// The images of classes [lo, lo + 5), pixels in [0, 1], labels shifted to 0..4.
void load_split(const std::string& dir, const std::string& prefix, float lo, array_t<float>& x, array_t<float>& y)
{
    const io::IdxArray img = io::read_idx(dir + "/" + prefix + "-images-idx3-ubyte.gz");
    const io::IdxArray lab = io::read_idx(dir + "/" + prefix + "-labels-idx1-ubyte.gz");
    const std::size_t n = lab.shape.at(0), d = img.shape.at(1) * img.shape.at(2);
    std::vector<std::size_t> keep;
    for (std::size_t i = 0; i < n; ++i)
        if (lab.data[i] >= lo && lab.data[i] < lo + 5)
            keep.push_back(i);
    x = array_t<float>::from_shape({ keep.size(), d });
    y = array_t<float>::from_shape({ keep.size() });
    for (std::size_t r = 0; r < keep.size(); ++r) {
        for (std::size_t j = 0; j < d; ++j)
            x(r, j) = static_cast<float>(img.data[keep[r] * d + j]) / 255.0f;
        y(r) = static_cast<float>(lab.data[keep[r]] - lo);
    }
}

std::shared_ptr<Sequential<float>> with_head(const std::vector<LayerPtr<float>>& base, const std::string& head)
{
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 784 }));
    for (const auto& l : base)
        m->add(l);
    m->add(std::make_shared<Dense<float>>(5, "softmax", true, head));
    m->compile(std::make_shared<Adam<float>>(), "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

/// Every weight of the base, the BatchNormalization statistics included, in Keras's order.
std::vector<array_t<float>> base_weights(const std::vector<LayerPtr<float>>& base)
{
    std::vector<array_t<float>> w;
    for (const auto& l : base)
        for (auto& a : l->get_weights())
            w.push_back(a);
    return w;
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    const Args args = parse(argc, argv);
    try {
        if (args.threads > 0)
            set_num_threads(args.threads);
        set_random_seed(args.seed);
        array_t<float> xa, ya, xa_test, ya_test, xb, yb, xb_test, yb_test;
        load_split(args.data, "train", 0, xa, ya);
        load_split(args.data, "t10k", 0, xa_test, ya_test);
        load_split(args.data, "train", 5, xb, yb);
        load_split(args.data, "t10k", 5, xb_test, yb_test);

        auto bn1 = std::make_shared<BatchNormalization<float>>();
        auto bn2 = std::make_shared<BatchNormalization<float>>();
        const std::vector<LayerPtr<float>> base{ std::make_shared<Dense<float>>(256), bn1,
                                                 std::make_shared<ReLU<float>>(),
                                                 std::make_shared<Dense<float>>(128), bn2,
                                                 std::make_shared<ReLU<float>>() };
        FitOptions<float> fo;
        fo.epochs = args.epochs;
        fo.batch_size = 128;
        fo.verbose = 2;
        EvaluateOptions<float> eo;
        eo.verbose = 0;

        std::printf("1. Pretraining base + head A on classes 0-4 (%zu images)\n", xa.shape()[0]);
        auto model_a = with_head(base, "head_a");
        model_a->fit(xa, ya, fo);
        std::printf("   head A test accuracy on classes 0-4: %.4f\n", model_a->evaluate(xa_test, ya_test, eo).at("accuracy"));
        const std::vector<array_t<float>> before = base_weights(base);
        // BatchNormalization weights in Keras's order: gamma, beta, moving_mean, moving_variance.
        const std::vector<array_t<float>> bn1_before = bn1->get_weights(), bn2_before = bn2->get_weights();

        if (args.freeze) {
            std::printf("2. Freezing the base (trainable=false on its layers; BatchNormalization now runs "
                        "in inference mode)\n");
            for (const auto& l : base)
                l->set_trainable(false);
        } else {
            std::printf("2. --no-freeze: the base stays trainable\n");
        }
        auto model_b = with_head(base, "head_b");
        std::printf("3. Training head B on classes 5-9 (%zu images); trainable weights: %zu, "
                    "non-trainable: %zu\n",
                    xb.shape()[0], model_b->trainable_weights().size(), model_b->non_trainable_weights().size());
        model_b->fit(xb, yb, fo);
        const double acc_b = model_b->evaluate(xb_test, yb_test, eo).at("accuracy");

        const std::vector<array_t<float>> after = base_weights(base);
        std::size_t unchanged = 0;
        for (std::size_t i = 0; i < before.size(); ++i)
            unchanged += before[i] == after[i] ? 1 : 0;
        const auto moved = [](const array_t<float>& a, const array_t<float>& b) {
            double worst = 0;
            for (std::size_t i = 0; i < a.size(); ++i)
                worst = std::max(worst, std::abs(double(a.data()[i]) - double(b.data()[i])));
            return worst;
        };
        const char* step = "4.";
        for (const auto& [bn, was] : { std::make_pair(bn1, bn1_before), std::make_pair(bn2, bn2_before) }) {
            const std::vector<array_t<float>> now = bn->get_weights();
            std::printf("%s %s: moving_mean max change %.3g, moving_variance max change %.3g\n", step,
                        bn->name().c_str(), moved(now[2], was[2]), moved(now[3], was[3]));
            step = "  ";
        }
        std::printf("   base weights bit-for-bit unchanged: %zu of %zu\n", unchanged, before.size());
        std::printf("   head B test accuracy on classes 5-9: %.4f\n", acc_b);
        if (args.freeze && unchanged != before.size()) {
            std::fprintf(stderr, "fine_tune_bn: the frozen base changed during fine-tuning\n");
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fine_tune_bn: %s\n", e.what());
        return 1;
    }
}
