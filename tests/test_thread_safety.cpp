// ctest-labels: sanitize
// Safe to embed: threads saving and loading models at once (one HDF5 lock, Note [One HDF5 lock]),
// and threads predicting with one model at once (Note [Concurrent inference]), each giving what
// a serial run gives. Run under AddressSanitizer by scripts/test.sh.
#include "framework/graph/keras_tensor.hpp"
#include "framework/model.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/core/embedding.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "layers/pooling/global_pooling.hpp"
#include "saving/keras_h5.hpp"
#include "saving_helpers.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <thread>

using namespace xtape;
using xtape::testing::TempDir;

namespace test_thread_safety {

std::shared_ptr<Sequential<float>> bn_model(std::uint64_t seed)
{
    set_random_seed(seed);
    auto model = std::make_shared<Sequential<float>>();
    model->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    model->add(std::make_shared<Dense<float>>(16, "relu"));
    model->add(std::make_shared<Dropout<float>>(0.5));
    model->add(std::make_shared<BatchNormalization<float>>());
    model->add(std::make_shared<Dense<float>>(3, "softmax"));
    model->compile("adam", "sparse_categorical_crossentropy");
    return model;
}

bool same_bits(const array_t<float>& a, const array_t<float>& b)
{
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// Runs f(thread index) on `n` threads at once; returns how many calls threw or returned false.
template <class F>
int failures_on_threads(int n, F f)
{
    std::atomic<int> failures{ 0 };
    std::atomic<int> ready{ 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t)
        threads.emplace_back([&, t] {
            ++ready;
            while (ready.load() < n) // start together, to overlap as much as possible
                std::this_thread::yield();
            try {
                if (!f(t))
                    ++failures;
            } catch (...) {
                ++failures;
            }
        });
    for (auto& th : threads)
        th.join();
    return failures.load();
}

} // namespace test_thread_safety

using namespace test_thread_safety;

TEST_CASE("thread_safety: threads saving and loading models at once each get their own model back")
{
    TempDir tmp("threads_h5");
    const auto data = xtape::testing::small_data(32);
    std::vector<std::shared_ptr<Sequential<float>>> models;
    for (int t = 0; t < 4; ++t) {
        models.push_back(bn_model(100 + t));
        models.back()->fit(data.x, data.y, xtape::testing::quiet_fit(1));
    }
    const int failures = failures_on_threads(4, [&](int t) {
        const std::string model_path = tmp.file("model" + std::to_string(t) + ".h5");
        const std::string weights_path = tmp.file("weights" + std::to_string(t) + ".h5");
        for (int i = 0; i < 6; ++i) {
            save_model(*models[t], model_path);
            save_weights(*models[t], weights_path);
            auto loaded = load_model<float>(model_path);
            auto fresh = bn_model(7);
            load_weights(*fresh, weights_path);
            const auto want = models[t]->get_weights(), got = loaded->get_weights(), got2 = fresh->get_weights();
            for (std::size_t k = 0; k < want.size(); ++k)
                if (!same_bits(want[k], got[k]) || !same_bits(want[k], got2[k]))
                    return false;
        }
        return true;
    });
    CHECK(failures == 0);
}

TEST_CASE("thread_safety: 4 threads predicting with one batch-norm model give the serial results")
{
    auto model = bn_model(3);
    const auto data = xtape::testing::small_data(64);
    model->fit(data.x, data.y, xtape::testing::quiet_fit(2)); // moving statistics away from 0 and 1
    PredictOptions<float> po = xtape::testing::quiet_predict();
    std::vector<array_t<float>> xs, serial, serial_direct;
    for (int t = 0; t < 4; ++t) {
        xs.push_back(xtape::testing::random_array({ 40, 6 }, 10 + t));
        serial.push_back(model->predict(xs.back(), po));
        serial_direct.push_back((*model)(Tensor<float>(xs.back()), false).value());
    }
    const int failures = failures_on_threads(4, [&](int t) {
        for (int i = 0; i < 20; ++i) {
            if (!same_bits(model->predict(xs[t], po), serial[t]))
                return false;
            // A direct call with training=false is inference too (no tape records it).
            if (!same_bits((*model)(Tensor<float>(xs[t]), false).value(), serial_direct[t]))
                return false;
        }
        return true;
    });
    CHECK(failures == 0);
    CHECK(model->losses().empty());
}

TEST_CASE("thread_safety: threads predicting with a model whose nested functional model makes masks")
{
    // The nested model's output mask reaches the pooling through Model::compute_mask_list, which
    // must return the mask of this thread's call, not another thread's.
    set_random_seed(5);
    auto in = Input<float>({ 5, 3 });
    auto inner = std::make_shared<Model<float>>(in, (*std::make_shared<Dense<float>>(4))(
                                                        (*std::make_shared<Masking<float>>(0.0))(in)));
    auto model = std::make_shared<Sequential<float>>();
    model->add(std::make_shared<InputLayer<float>>(dims_t{ 5, 3 }));
    model->add(inner);
    model->add(std::make_shared<GlobalAveragePooling1D<float>>());
    PredictOptions<float> po = xtape::testing::quiet_predict();
    std::vector<array_t<float>> xs, serial;
    for (int t = 0; t < 4; ++t) {
        array_t<float> x = xtape::testing::random_array({ 16, 5, 3 }, 20 + t);
        for (std::size_t i = 0; i < 16; ++i) // thread t masks a different number of trailing steps
            for (std::size_t s = 4 - static_cast<std::size_t>(t); s < 5; ++s)
                for (std::size_t c = 0; c < 3; ++c)
                    x(i, s, c) = 0;
        xs.push_back(x);
        serial.push_back(model->predict(x, po));
    }
    const int failures = failures_on_threads(4, [&](int t) {
        for (int i = 0; i < 30; ++i)
            if (!same_bits(model->predict(xs[t], po), serial[t]))
                return false;
        return true;
    });
    CHECK(failures == 0);
}
