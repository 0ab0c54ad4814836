// Fine-tuning with a BatchNormalization base, the two-phase recipe of Keras's transfer-learning
// guide (keras.io/guides/transfer_learning):
//
//   base  = Functional [Dense(256), BatchNormalization(), ReLU(), Dense(128), BatchNormalization(), ReLU()]
//   0. pretrain base + head A on Fashion-MNIST's classes 0-4 (tops, trousers, ...);
//   1. base.trainable = false; x = base(inputs, training=false); a new head B on top; compile;
//      fit on classes 5-9 (sandals, shirts, sneakers, bags, boots): only head B trains, every base
//      weight (the moving means and variances included) stays bit for bit;
//   2. base.trainable = true; compile again with Adam(1e-5); fit: the base's kernels, gammas and
//      betas now train at the low rate, while its BatchNormalization layers stay in inference mode
//      (the node's training=false), so their moving statistics still do not move.
// compile is called again in step 2 because, as in Keras, a trainable flag changed after compile
// takes effect in fit at the next compile (Note [Trainable after compile] in framework/model.cpp).
//
//   fine_tune_bn [--epochs 2] [--threads CORES] [--seed 7] [--data /usr/share/datasets/fashion-mnist]
#include "framework/io/idx.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/graph/functional.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "optim/adam.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
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
};

Args parse(int argc, char** argv)
{
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
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
                         "usage: %s [--epochs N] [--threads N] [--seed N] [--data DIR]\n", argv[0]);
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

/// inputs -> base(inputs, training) -> Dense(5, softmax) named `head`, compiled with `optimizer`.
std::shared_ptr<Model<float>> with_head(const std::shared_ptr<Model<float>>& base, std::optional<bool> training,
                                        const std::string& head, std::shared_ptr<Adam<float>> optimizer)
{
    auto inputs = Input<float>({ 784 });
    auto outputs = (*std::make_shared<Dense<float>>(5, "softmax", true, head))((*base)(inputs, training));
    auto m = std::make_shared<Model<float>>(inputs, outputs, head + "_model");
    m->compile(optimizer, "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

/// Every weight of the base, the BatchNormalization statistics included, in Keras's order.
std::vector<array_t<float>> base_weights(const Model<float>& base) { return base.get_weights(); }

double max_change(const array_t<float>& a, const array_t<float>& b)
{
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(double(a.data()[i]) - double(b.data()[i])));
    return worst;
}

/// Prints each BatchNormalization's largest change of moving mean and variance since `was`;
/// returns the largest of them all.
double report_statistics(const std::vector<std::shared_ptr<BatchNormalization<float>>>& bns,
                         const std::vector<std::vector<array_t<float>>>& was)
{
    double worst = 0;
    for (std::size_t i = 0; i < bns.size(); ++i) {
        const std::vector<array_t<float>> now = bns[i]->get_weights(); // gamma, beta, moving mean, variance
        const double dm = max_change(now[2], was[i][2]), dv = max_change(now[3], was[i][3]);
        std::printf("   %s: moving_mean max change %.3g, moving_variance max change %.3g\n", bns[i]->name().c_str(),
                    dm, dv);
        worst = std::max({ worst, dm, dv });
    }
    return worst;
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
        const std::vector<std::shared_ptr<BatchNormalization<float>>> bns{ bn1, bn2 };
        auto base = std::make_shared<Functional<float>>(
          Input<float>({ 784 }),
          std::vector<LayerPtr<float>>{ std::make_shared<Dense<float>>(256), bn1, std::make_shared<ReLU<float>>(),
                                        std::make_shared<Dense<float>>(128), bn2, std::make_shared<ReLU<float>>() },
          "base");
        FitOptions<float> fo;
        fo.epochs = args.epochs;
        fo.batch_size = 128;
        fo.verbose = 2;
        EvaluateOptions<float> eo;
        eo.verbose = 0;

        std::printf("0. Pretraining base + head A on classes 0-4 (%zu images)\n", xa.shape()[0]);
        auto model_a = with_head(base, std::nullopt, "head_a", std::make_shared<Adam<float>>());
        model_a->fit(xa, ya, fo);
        std::printf("   head A test accuracy on classes 0-4: %.4f\n", model_a->evaluate(xa_test, ya_test, eo).at("accuracy"));
        const std::vector<array_t<float>> pretrained = base_weights(*base);
        std::vector<std::vector<array_t<float>>> statistics;
        for (const auto& bn : bns)
            statistics.push_back(bn->get_weights());

        std::printf("1. base.trainable = false; head B on base(inputs, training=false), classes 5-9 (%zu images)\n",
                    xb.shape()[0]);
        base->set_trainable(false);
        auto model_b = with_head(base, false, "head_b", std::make_shared<Adam<float>>());
        std::printf("   trainable weights: %zu, non-trainable: %zu\n", model_b->trainable_weights().size(),
                    model_b->non_trainable_weights().size());
        model_b->fit(xb, yb, fo);
        std::printf("   head B test accuracy on classes 5-9: %.4f\n", model_b->evaluate(xb_test, yb_test, eo).at("accuracy"));
        const std::vector<array_t<float>> after_1 = base_weights(*base);
        std::size_t unchanged = 0;
        for (std::size_t i = 0; i < pretrained.size(); ++i)
            unchanged += pretrained[i] == after_1[i] ? 1 : 0;
        std::printf("   base weights bit-for-bit unchanged: %zu of %zu\n", unchanged, pretrained.size());
        if (unchanged != pretrained.size()) {
            std::fprintf(stderr, "fine_tune_bn: the frozen base changed in phase 1\n");
            return 1;
        }

        std::printf("2. base.trainable = true; compile again with Adam(1e-5); fine-tune everything\n");
        base->set_trainable(true);
        model_b->compile(std::make_shared<Adam<float>>(1e-5), "sparse_categorical_crossentropy", { "accuracy" });
        std::printf("   trainable weights: %zu, non-trainable: %zu\n", model_b->trainable_weights().size(),
                    model_b->non_trainable_weights().size());
        model_b->fit(xb, yb, fo);
        std::printf("   head B test accuracy on classes 5-9: %.4f\n", model_b->evaluate(xb_test, yb_test, eo).at("accuracy"));
        const std::vector<array_t<float>> after_2 = base_weights(*base);
        std::printf("   base Dense kernels: max change %.3g and %.3g\n", max_change(after_2[0], after_1[0]),
                    max_change(after_2[6], after_1[6]));
        const double moved = report_statistics(bns, statistics);
        if (moved != 0.0 || after_2[0] == after_1[0]) {
            std::fprintf(stderr, "fine_tune_bn: phase 2 should train the base with its statistics fixed\n");
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fine_tune_bn: %s\n", e.what());
        return 1;
    }
}
