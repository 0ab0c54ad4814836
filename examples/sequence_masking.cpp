// Variable-length sequences padded with zeros, and masks doing their job (issue 13).
//
// Each sample is a sequence of 3-8 token ids in [1, 20); the label says whether most tokens are
// below 10. The sequences are padded with 0 at the end, once to length 10 and once to length 24,
// and the same model is trained on both from the same initial weights:
//
//   Input(L) -> Embedding(20, 8, mask_zero=True) -> TimeDistributed(Dense(8, relu))
//            -> BatchNormalization -> GlobalAveragePooling1D -> Dense(1, sigmoid)
//
// The mask (token != 0) starts at the Embedding, passes TimeDistributed, weights BatchNormalization's
// batch statistics (padding steps do not count) and GlobalAveragePooling1D's average. So the padding
// changes neither the moving statistics nor the predictions: the program prints both runs' moving
// mean and variance and their largest difference (float rounding of sums taken in a different order).
//
//   sequence_masking [--epochs N] [--seed S] [--threads T]
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/core/embedding.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/pooling/global_pooling.hpp"
#include "layers/wrappers/time_distributed.hpp"
#include "optim/adam.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

using namespace xtape;

namespace {

constexpr long vocabulary = 20;

/// The sequences (without padding) and their labels, from a fixed seed.
void make_data(std::size_t n, unsigned seed, std::vector<std::vector<int>>& seqs, array_t<float>& y)
{
    std::mt19937 gen(seed);
    std::uniform_int_distribution<int> len(3, 8), tok(1, vocabulary - 1);
    seqs.assign(n, {});
    y = array_t<float>::from_shape({ n, 1 });
    for (std::size_t i = 0; i < n; ++i) {
        int low = 0;
        for (int t = len(gen); t > 0; --t) {
            seqs[i].push_back(tok(gen));
            low += seqs[i].back() < 10 ? 1 : 0;
        }
        y(i, 0) = 2 * low > static_cast<int>(seqs[i].size()) ? 1.f : 0.f;
    }
}

array_t<float> padded(const std::vector<std::vector<int>>& seqs, std::size_t length)
{
    array_t<float> x = xt::zeros<float>({ seqs.size(), length });
    for (std::size_t i = 0; i < seqs.size(); ++i)
        for (std::size_t t = 0; t < seqs[i].size(); ++t)
            x(i, t) = static_cast<float>(seqs[i][t]);
    return x;
}

struct Run {
    std::shared_ptr<Sequential<float>> model;
    std::shared_ptr<BatchNormalization<float>> bn;
};

Run build(std::size_t length)
{
    EmbeddingOptions<float> eo;
    eo.input_dim = vocabulary;
    eo.output_dim = 8;
    eo.mask_zero = true;
    Run r;
    r.bn = std::make_shared<BatchNormalization<float>>();
    r.model = std::make_shared<Sequential<float>>();
    r.model->add(std::make_shared<InputLayer<float>>(dims_t{ static_cast<long>(length) }));
    r.model->add(std::make_shared<Embedding<float>>(eo));
    r.model->add(std::make_shared<TimeDistributed<float>>(std::make_shared<Dense<float>>(8, "relu")));
    r.model->add(r.bn);
    r.model->add(std::make_shared<GlobalAveragePooling1D<float>>());
    r.model->add(std::make_shared<Dense<float>>(1, "sigmoid"));
    r.model->compile(std::make_shared<Adam<float>>(1e-2), "binary_crossentropy", { "accuracy" });
    return r;
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    int epochs = 5, threads = 0;
    unsigned seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--epochs"))
            epochs = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--seed"))
            seed = static_cast<unsigned>(std::atoi(argv[i + 1]));
        else if (!std::strcmp(argv[i], "--threads"))
            threads = std::atoi(argv[i + 1]);
    }
    if (threads > 0)
        set_num_threads(threads);
    set_random_seed(seed);
    std::vector<std::vector<int>> seqs;
    array_t<float> y;
    make_data(512, seed, seqs, y);

    Run short_run = build(10), long_run = build(24);
    long_run.model->set_weights(short_run.model->get_weights()); // the same starting point
    FitOptions<float> fo;
    fo.epochs = epochs;
    fo.batch_size = 64;
    fo.shuffle = false;
    fo.verbose = 2;
    std::printf("Training on sequences padded to 10 steps\n");
    short_run.model->fit(padded(seqs, 10), y, fo);
    std::printf("Training on the same sequences padded to 24 steps\n");
    long_run.model->fit(padded(seqs, 24), y, fo);

    const array_t<float>& m10 = short_run.bn->moving_mean().value();
    const array_t<float>& m24 = long_run.bn->moving_mean().value();
    const array_t<float>& v10 = short_run.bn->moving_variance().value();
    const array_t<float>& v24 = long_run.bn->moving_variance().value();
    double worst = 0;
    std::printf("\nBatchNormalization moving statistics (channel: mean@10 mean@24 | variance@10 variance@24)\n");
    for (std::size_t c = 0; c < m10.size(); ++c) {
        std::printf("  %zu: %+.6f %+.6f | %.6f %.6f\n", c, m10(c), m24(c), v10(c), v24(c));
        worst = std::max({ worst, std::fabs(double(m10(c)) - m24(c)), std::fabs(double(v10(c)) - v24(c)) });
    }
    std::printf("largest difference: %.3g (padding changes nothing but float rounding)\n", worst);
    return worst < 1e-3 ? 0 : 1;
}
