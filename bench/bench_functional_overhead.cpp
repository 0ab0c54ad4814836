// The graph executor's cost per training step: the Fashion-MNIST MLP of bench_mlp_step
// (784-512-BN-ReLU-256-BN-ReLU-10, batch 128, SGD) built as a Sequential and as a functional
// model (Input -> the same layer types), trained with train_on_batch in alternating rounds so a
// slow moment of the machine hits both. Prints each one's median step time and the
// functional model's overhead in percent of the Sequential step (the bound: < 2%).
//
//   build/bench/bench_functional_overhead [--rounds 15] [--steps 40] [--threads N]
#include "framework/graph/functional.hpp"
#include "framework/parallel.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "optim/sgd.hpp"

#include <xtensor/xview.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace xtape;

namespace {

double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<LayerPtr<float>> mlp_layers()
{
    return { std::make_shared<Dense<float>>(512),  std::make_shared<BatchNormalization<float>>(),
             std::make_shared<ReLU<float>>(),      std::make_shared<Dense<float>>(256),
             std::make_shared<BatchNormalization<float>>(), std::make_shared<ReLU<float>>(),
             std::make_shared<Dense<float>>(10, "softmax") };
}

std::shared_ptr<Model<float>> make(bool functional)
{
    set_random_seed(42); // the same initial weights for both
    std::shared_ptr<Model<float>> m;
    if (functional) {
        m = std::make_shared<Functional<float>>(Input<float>({ 784 }), mlp_layers(), "mlp_functional");
    } else {
        auto s = std::make_shared<Sequential<float>>("mlp_sequential");
        s->add(std::make_shared<InputLayer<float>>(dims_t{ 784 }));
        for (auto& l : mlp_layers())
            s->add(l);
        m = s;
    }
    m->compile(std::make_shared<SGD<float>>(0.01), "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const std::size_t h = v.size() / 2;
    return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

} // namespace

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    int rounds = 15, steps = 40, threads = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--rounds" && i + 1 < argc)
            rounds = std::max(1, std::atoi(argv[++i]));
        else if (a == "--steps" && i + 1 < argc)
            steps = std::max(1, std::atoi(argv[++i]));
        else if (a == "--threads" && i + 1 < argc)
            set_num_threads(threads = std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: %s [--rounds N] [--steps N] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    const std::size_t batch = 128;
    std::mt19937 gen(1);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    array_t<float> x = array_t<float>::from_shape({ batch, 784 }), y = array_t<float>::from_shape({ batch });
    for (auto& v : x)
        v = u(gen);
    for (std::size_t i = 0; i < batch; ++i)
        y(i) = static_cast<float>(i % 10);

    auto seq = make(false), fun = make(true);
    for (int i = 0; i < 20; ++i) { // warm-up: page faults, thread pools, allocator
        seq->train_on_batch(x, y);
        fun->train_on_batch(x, y);
    }
    std::vector<double> ts, tf, ratio;
    for (int r = 0; r < rounds; ++r) {
        std::vector<double> s_round, f_round;
        for (auto* m : { seq.get(), fun.get() }) {
            auto& out = m == seq.get() ? s_round : f_round;
            for (int i = 0; i < steps; ++i) {
                const double t0 = now_ms();
                m->train_on_batch(x, y);
                out.push_back(now_ms() - t0);
            }
        }
        ts.push_back(median(s_round));
        tf.push_back(median(f_round));
        ratio.push_back(tf.back() / ts.back() - 1.0);
    }
    std::printf("MLP 784-512-BN-ReLU-256-BN-ReLU-10, SGD, batch %zu, %d rounds x %d steps each, threads %s\n", batch,
                rounds, steps, threads > 0 ? std::to_string(threads).c_str() : "default");
    std::printf("sequential step ms (median of round medians): %.3f\n", median(ts));
    std::printf("functional step ms (median of round medians): %.3f\n", median(tf));
    std::printf("functional overhead (median over rounds of f/s - 1): %+.2f%%\n", 100.0 * median(ratio));
    return 0;
}
