// The BatchNormalization layer: Keras 3's published test behaviours with their numbers, config
// round trips and every legacy config form, validation errors, regularization and constraints,
// the moving-statistics update, and float64 gradient checks through the layer.
#include "layers/batch_normalization.hpp"

#include "framework/gradcheck.hpp"
#include "framework/initializer.hpp"
#include "framework/ops.hpp"
#include "framework/optimizer.hpp"
#include "framework/sequential.hpp"
#include "layers/dense.hpp"
#include "layers/registry.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <cmath>
#include <random>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using V = std::vector<Tensor<double>>;

namespace {

template <class T>
using BN = BatchNormalization<T>;

template <class T = float>
Tensor<T> normal_tensor(const shape_t& shape, unsigned seed, double mean, double stddev)
{
    std::mt19937 gen(seed);
    std::normal_distribution<double> d(mean, stddev);
    array_t<T> a = array_t<T>::from_shape(shape);
    for (auto& v : a)
        v = static_cast<T>(d(gen));
    return Tensor<T>(std::move(a));
}

/// numpy.allclose with Keras's assertAllClose defaults (rtol = atol = 1e-6 unless given).
template <class A, class B>
bool all_close(const A& a, const B& b, double atol = 1e-6, double rtol = 1e-6)
{
    if (a.size() != b.size())
        return false;
    auto ia = a.begin();
    auto ib = b.begin();
    for (; ia != a.end(); ++ia, ++ib)
        if (!(std::abs(static_cast<double>(*ia) - static_cast<double>(*ib)) <=
              atol + rtol * std::abs(static_cast<double>(*ib))))
            return false;
    return true;
}

template <class T>
array_t<T> filled(std::size_t n, double v)
{
    array_t<T> a = array_t<T>::from_shape({ n });
    a.fill(static_cast<T>(v));
    return a;
}

/// Per-channel mean and population std of x over every axis but `axis`.
template <class T>
std::pair<std::vector<double>, std::vector<double>> channel_moments(const array_t<T>& x, int axis)
{
    const shape_t s(x.shape().begin(), x.shape().end());
    const std::size_t a = axis < 0 ? s.size() + axis : static_cast<std::size_t>(axis);
    std::size_t inner = 1;
    for (std::size_t k = a + 1; k < s.size(); ++k)
        inner *= s[k];
    const std::size_t C = s[a];
    std::vector<double> sum(C, 0), sq(C, 0), cnt(C, 0);
    for (std::size_t f = 0; f < x.size(); ++f) {
        const std::size_t c = (f / inner) % C;
        sum[c] += x.data()[f];
        cnt[c] += 1;
    }
    for (std::size_t c = 0; c < C; ++c)
        sum[c] /= cnt[c];
    for (std::size_t f = 0; f < x.size(); ++f) {
        const std::size_t c = (f / inner) % C;
        sq[c] += (x.data()[f] - sum[c]) * (x.data()[f] - sum[c]);
    }
    for (std::size_t c = 0; c < C; ++c)
        sq[c] = std::sqrt(sq[c] / cnt[c]);
    return { sum, sq };
}

/// Keras's Masking layer: a position is kept when any feature differs from mask_value.
template <class T>
Tensor<T> masking(const Tensor<T>& x, double mask_value = 0.0)
{
    const shape_t s = x.shape();
    const std::size_t last = s.back();
    array_t<T> m = array_t<T>::from_shape(shape_t(s.begin(), s.end() - 1));
    for (std::size_t i = 0; i < m.size(); ++i) {
        bool any = false;
        for (std::size_t j = 0; j < last; ++j)
            any = any || x.data()[i * last + j] != static_cast<T>(mask_value);
        m.data()[i] = any ? T(1) : T(0);
    }
    return Tensor<T>(std::move(m));
}

} // namespace

// ---- Keras 3's batch_normalization_test.py -------------------------------------------------------

TEST_CASE("Keras 3 test_bn_basics: weights, losses and output shape")
{
    {
        BN<float> bn;
        Tensor<float> y = bn(random_tensor<float>({ 2, 3 }, 1), true);
        CHECK(y.shape() == shape_t{ 2, 3 });
        CHECK(bn.trainable_weights().size() == 2);
        CHECK(bn.non_trainable_weights().size() == 2);
        CHECK(bn.losses().empty());
        const auto w = bn.weights();
        REQUIRE(w.size() == 4);
        CHECK(w[0].name() == "gamma");
        CHECK(w[1].name() == "beta");
        CHECK(w[2].name() == "moving_mean");
        CHECK(w[3].name() == "moving_variance");
    }
    {
        BatchNormalizationOptions<float> o;
        o.center = false;
        o.scale = false;
        BN<float> bn(o);
        bn(random_tensor<float>({ 2, 3 }, 2), true);
        CHECK(bn.trainable_weights().empty());
        CHECK(bn.non_trainable_weights().size() == 2);
        CHECK_THROWS_AS(bn.gamma(), RuntimeError);
    }
    {
        BatchNormalizationOptions<float> o;
        o.beta_regularizer = get_regularizer<float>("l2");
        o.gamma_regularizer = get_regularizer<float>("l2");
        BN<float> bn(o);
        Tensor<float> y = bn(random_tensor<float>({ 2, 4, 4, 3 }, 3), true);
        CHECK(y.shape() == shape_t{ 2, 4, 4, 3 });
        CHECK(bn.trainable_weights().size() == 2);
        CHECK(bn.losses().size() == 2);
        // l2 = 0.01: gamma = 1 gives 0.01 * 3, beta = 0 gives 0.
        CHECK(bn.losses()[0].item() + bn.losses()[1].item() == doctest::Approx(0.03));
    }
}

TEST_CASE("Keras 3 test_correctness: axis (-1, 1) x shapes x moving initializers, momentum 0")
{
    for (int axis : { -1, 1 })
        for (const shape_t& shape : { shape_t{ 5, 2, 3 }, shape_t{ 5, 3, 3, 2 } })
            for (const char* mm : { "zeros", "ones" })
                for (const char* mv : { "zeros", "ones" }) {
                    CAPTURE(axis);
                    CAPTURE(shape_str(shape));
                    CAPTURE(mm);
                    CAPTURE(mv);
                    BatchNormalizationOptions<float> o;
                    o.axis = { axis };
                    o.momentum = 0;
                    o.moving_mean_initializer = get_initializer<float>(mm);
                    o.moving_variance_initializer = get_initializer<float>(mv);
                    BN<float> layer(o);
                    // Random data centered on 5.0, variance 10.0 (Keras: scale=10).
                    Tensor<float> x = normal_tensor(shape, 7, 5.0, 10.0);
                    Tensor<float> out = x;
                    for (int i = 0; i < 3; ++i)
                        out = layer(out, true);
                    // (out - beta) / gamma: gamma 1 and beta 0 here, untrained.
                    auto [m, s] = channel_moments(out.value(), axis);
                    for (std::size_t c = 0; c < m.size(); ++c) {
                        CHECK(std::abs(m[c]) <= 1e-3);
                        CHECK(std::abs(s[c] - 1.0) <= 1e-3);
                    }
                    CHECK(all_close(layer.moving_mean().value(), filled<float>(m.size(), 0.0), 1e-3, 1e-6));
                    CHECK(all_close(layer.moving_variance().value(), filled<float>(m.size(), 1.0), 1e-3, 1e-6));

                    // Inference done before training shouldn't match.
                    Tensor<float> inference_out = layer(x, false);
                    Tensor<float> training_out = layer(x, true);
                    CHECK_FALSE(all_close(inference_out.value(), training_out.value()));
                    // Since momentum is zero, inference after training should match.
                    training_out = layer(x, true);
                    inference_out = layer(x, false);
                    CHECK(all_close(inference_out.value(), training_out.value()));

                    // Masked result with no training should not differ.
                    array_t<float> xv = x.value();
                    xt::view(xv, xt::all(), 1) = 0.0f;
                    Tensor<float> xz(xv);
                    Tensor<float> unmasked_out = layer(xz, false);
                    Tensor<float> masked_out = layer(xz, false, masking(xz));
                    CHECK(all_close(unmasked_out.value(), masked_out.value()));
                    // Masked result should differ from unmasked result.
                    unmasked_out = layer(xz, false);
                    masked_out = layer(xz, true, masking(xz));
                    CHECK_FALSE(all_close(unmasked_out.value(), masked_out.value()));
                }
}

TEST_CASE("Keras 3 test_input_fully_masked: zeros out, finite statistics")
{
    for (bool synchronized : { false, true }) {
        BatchNormalizationOptions<float> o;
        o.scale = false;
        o.center = false;
        o.synchronized = synchronized;
        BN<float> norm(o);
        Tensor<float> y = norm(Tensor<float>::zeros({ 4, 5 }), true, Tensor<float>::zeros({ 4 }));
        CHECK(all_close(y.value(), array_t<float>(xt::zeros<float>({ 4, 5 }))));
        for (float v : norm.moving_mean().value())
            CHECK(std::isfinite(v));
        for (float v : norm.moving_variance().value())
            CHECK(std::isfinite(v));
    }
}

TEST_CASE("Keras 3 test_bachnorm_ignore_masked_values: 5 steps of rmsprop reach [1.5, 5.0] and [0.25, 0.0]")
{
    // Keras fits Input -> Masking -> BatchNormalization(momentum=0) on 10 padded sequences with
    // MSE and rmsprop, batch size 10, 5 epochs. The training loop is written out here with a tape
    // (one step per epoch), which is what fit does for this model.
    for (double mask_value : { 0.0, 0.1, 1.0 }) {
        CAPTURE(mask_value);
        const float mv = static_cast<float>(mask_value);
        array_t<float> padded = array_t<float>::from_shape({ 10, 4, 2 });
        for (std::size_t i = 0; i < 10; ++i) {
            const float rows[4][2] = { { 1, 5 }, { 2, 5 }, { mv, mv }, { mv, mv } };
            for (std::size_t t = 0; t < 4; ++t)
                for (std::size_t f = 0; f < 2; ++f)
                    padded(i, t, f) = rows[t][f];
        }
        Tensor<float> x(padded);
        BatchNormalizationOptions<float> o;
        o.momentum = 0.0;
        BN<float> layer(o);
        OptimizerPtr<float> opt = get_optimizer<float>(json("rmsprop"));
        for (int epoch = 0; epoch < 5; ++epoch) {
            Tensor<float> mask = masking(x, mask_value);
            GradientTape<float> tape;
            Tensor<float> y = layer(x, true, mask);
            Tensor<float> loss = mean(mean_squared_error(x, y));
            auto vars = layer.trainable_weights();
            opt->apply_gradients(tape.gradient(loss, vars), vars);
        }
        CHECK(all_close(layer.moving_mean().value(), array_t<float>{ 1.5f, 5.0f }));
        CHECK(all_close(layer.moving_variance().value(), array_t<float>{ 0.25f, 0.0f }));
    }
}

TEST_CASE("Keras 3 test_trainable_behavior: frozen means inference mode, even with training=true")
{
    BatchNormalizationOptions<float> o;
    o.momentum = 0.8;
    o.epsilon = 1e-7;
    BN<float> layer(o);
    layer.build_once({ 1, 4, 4, 3 });
    layer.set_trainable(false);
    CHECK(layer.weights().size() == 4);
    CHECK(layer.trainable_weights().empty());
    CHECK(layer.non_trainable_weights().size() == 4);

    Tensor<float> x = normal_tensor({ 200, 4, 4, 3 }, 11, 5.0, 10.0);
    Tensor<float> out = layer(x, true);
    CHECK(all_close(out.value(), x.value()));
    CHECK(all_close(layer.moving_mean().value(), filled<float>(3, 0.0), 0, 0));
    CHECK(all_close(layer.moving_variance().value(), filled<float>(3, 1.0), 0, 0));

    layer.set_trainable(true);
    CHECK(layer.weights().size() == 4);
    CHECK(layer.trainable_weights().size() == 2);
    CHECK(layer.non_trainable_weights().size() == 2);
    for (int i = 0; i < 10; ++i)
        out = layer(x, true);
    auto [m, s] = channel_moments(out.value(), -1);
    for (std::size_t c = 0; c < 3; ++c) {
        CHECK(std::abs(m[c]) <= 1e-3);
        CHECK(std::abs(s[c] - 1.0) <= 1e-3);
    }
}

TEST_CASE("Keras 3 test_masked_broadcast_normalization: output 0, moving_mean 1, moving_variance 0")
{
    BatchNormalizationOptions<float> o;
    o.momentum = 0.0;
    o.epsilon = 1e-3;
    BN<float> layer(o);
    Tensor<float> y = layer(Tensor<float>::full({ 1, 2, 3, 4 }, 1.0f), true, Tensor<float>::full({ 1, 2, 1 }, 1.0f));
    CHECK(all_close(y.value(), array_t<float>(xt::zeros<float>({ 1, 2, 3, 4 })), 1e-6, 0));
    CHECK(all_close(layer.moving_mean().value(), filled<float>(4, 1.0), 1e-6, 0));
    CHECK(all_close(layer.moving_variance().value(), filled<float>(4, 0.0), 1e-6, 0));
}

TEST_CASE("Keras 3 test_renorm_basics: 2 trainable and 5 non-trainable weights")
{
    for (bool clipping : { false, true }) {
        BatchNormalizationOptions<float> o;
        o.renorm = true;
        if (clipping)
            o.renorm_clipping = RenormClipping{ 3.0, 0.3, 5.0 };
        BN<float> bn(o);
        const shape_t shape = clipping ? shape_t{ 2, 4, 4, 3 } : shape_t{ 2, 3 };
        CHECK(bn(random_tensor<float>(shape, 20), true).shape() == shape);
        CHECK(bn.trainable_weights().size() == 2);
        const auto nt = bn.non_trainable_weights();
        REQUIRE(nt.size() == 5);
        const char* names[] = { "moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev" };
        for (std::size_t i = 0; i < 5; ++i)
            CHECK(nt[i].name() == names[i]);
        CHECK(bn.losses().empty());
    }
}

TEST_CASE("Keras 3 validation errors: renorm_clipping, momentum, epsilon")
{
    CHECK_THROWS_WITH_AS(BN<float>::from_config({ { "renorm", true }, { "renorm_clipping", { { "random_key", 1.0 } } } }),
                         doctest::Contains("Received invalid keys"), ValueError);
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    o.renorm_clipping = RenormClipping{ 0.0, 1.0, std::nullopt };
    CHECK_THROWS_WITH_AS(BN<float>{ o }, doctest::Contains("rmax should be"), ValueError);
    o.renorm_clipping = RenormClipping{ 1.0, std::nullopt, -1.0 };
    CHECK_THROWS_WITH_AS(BN<float>{ o }, doctest::Contains("dmax should be non-negative"), ValueError);
    // Without renorm the clipping is not looked at (as in Keras).
    o.renorm = false;
    CHECK_NOTHROW(BN<float>{ o });
    for (double momentum : { -0.1, 1.5 }) {
        BatchNormalizationOptions<float> m;
        m.momentum = momentum;
        CHECK_THROWS_WITH_AS(BN<float>{ m }, doctest::Contains("`momentum` must be"), ValueError);
    }
    for (double momentum : { 0.0, 1.0 }) {
        BatchNormalizationOptions<float> m;
        m.momentum = momentum;
        CHECK_NOTHROW(BN<float>{ m });
    }
    BatchNormalizationOptions<float> e;
    e.epsilon = -1e-3;
    CHECK_THROWS_WITH_AS(BN<float>{ e }, doctest::Contains("`epsilon` must be"), ValueError);
    BatchNormalizationOptions<float> v;
    v.virtual_batch_size = 0;
    CHECK_THROWS_WITH_AS(BN<float>{ v }, doctest::Contains("`virtual_batch_size` must be a positive integer"),
                         ValueError);
    // Axis out of range and repeated axes, found when the layer builds.
    BatchNormalizationOptions<float> a;
    a.axis = { 3 };
    BN<float> bad(a);
    CHECK_THROWS_WITH_AS(bad(random_tensor<float>({ 2, 3 }, 1)), doctest::Contains("Axis 3 is out of bounds for input shape (None, 3)"),
                         ValueError);
    a.axis = { 1, -1 };
    BN<float> dup(a);
    CHECK_THROWS_WITH_AS(dup(random_tensor<float>({ 2, 3 }, 1)), doctest::Contains("Duplicate axis"), ValueError);
    BN<float> bn;
    bn(random_tensor<float>({ 2, 3 }, 1));
    CHECK_THROWS_WITH_AS(bn(random_tensor<float>({ 2, 4 }, 1)), doctest::Contains("expected axis 1 of input shape to have value 3"),
                         ShapeError);
    CHECK_THROWS_WITH_AS(bn(random_tensor<float>({ 2, 3 }, 1), true, Tensor<float>::zeros({ 2, 3 })),
                         doctest::Contains("The mask provided should be one dimension less than the inputs"), ValueError);
}

TEST_CASE("Keras 3 test_renorm_stddev_initializer: sqrt of the moving variance initializer")
{
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    o.moving_variance_initializer = get_initializer<float>(json{ { "class_name", "Constant" }, { "config", { { "value", 4.0 } } } });
    BN<float> layer(o);
    layer.build_once({ none_dim, 5 });
    CHECK(all_close(layer.moving_stddev().value(), filled<float>(5, 2.0), 1e-6, 0));
    CHECK(all_close(layer.renorm_stddev().value(), filled<float>(5, 2.0), 1e-6, 0));
}

TEST_CASE("Keras 3 test_renorm_inference: renorm does not change inference")
{
    BN<float> bn;
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    BN<float> bn_renorm(o);
    bn.build_once({ none_dim, 10 });
    bn_renorm.build_once({ none_dim, 10 });
    std::vector<array_t<float>> w;
    for (unsigned i = 0; i < 4; ++i)
        w.push_back(normal_tensor({ 10 }, 30 + i, 0.0, 1.0).value());
    w[3] = xt::abs(w[3]);
    bn.set_weights(w);
    auto all = bn_renorm.get_weights();
    for (std::size_t i = 0; i < 4; ++i)
        all[i] = w[i];
    bn_renorm.set_weights(all);
    Tensor<float> x = normal_tensor({ 4, 10 }, 40, 0.0, 1.0);
    CHECK(all_close(bn(x, false).value(), bn_renorm(x, false).value(), 1e-5, 1e-5));
}

TEST_CASE("Keras 3 test_renorm_correctness: output and every statistic after one step")
{
    const double epsilon = 1e-3, momentum = 0.9, renorm_momentum = 0.8;
    BatchNormalizationOptions<double> o;
    o.epsilon = epsilon;
    o.momentum = momentum;
    o.renorm = true;
    o.renorm_momentum = renorm_momentum;
    BN<double> layer(o);
    layer.build_once({ none_dim, 3 });
    const array_t<double> init_moving_mean{ 0.2, -1.1, 0.5 }, init_moving_var{ 1.3, 0.6, 0.9 };
    const array_t<double> init_moving_stddev = xt::sqrt(init_moving_var);
    const array_t<double> init_renorm_mean{ -0.4, 0.7, 1.5 }, init_renorm_stddev{ 1.2, 0.8, 1.4 };
    const array_t<double> init_gamma{ 1.05, 0.93, 1.1 }, init_beta{ 0.02, -0.1, 0.05 };
    // gamma, beta, moving_mean, moving_variance, moving_stddev, renorm_mean, renorm_stddev
    layer.set_weights({ init_gamma, init_beta, init_moving_mean, init_moving_var, init_moving_stddev, init_renorm_mean,
                        init_renorm_stddev });
    const array_t<double> x{ { 4.0, 6.0, 2.0 }, { 8.0, -2.0, 5.0 }, { 6.0, 4.0, 3.0 } };
    const array_t<double> batch_mean = xt::mean(x, { 0 });
    const array_t<double> batch_var = xt::variance(x, { 0 });
    const array_t<double> batch_stddev = xt::sqrt(batch_var + epsilon);
    const array_t<double> r = batch_stddev / init_renorm_stddev;
    const array_t<double> d = (batch_mean - init_renorm_mean) / init_renorm_stddev;
    const array_t<double> expected = ((x - batch_mean) / batch_stddev * r + d) * init_gamma + init_beta;
    Tensor<double> out = layer(Tensor<double>(x), true);
    CHECK(all_close(out.value(), expected, 1e-5));
    CHECK(all_close(layer.renorm_mean().value(),
                    array_t<double>(init_renorm_mean * renorm_momentum + batch_mean * (1 - renorm_momentum)), 1e-5));
    CHECK(all_close(layer.renorm_stddev().value(),
                    array_t<double>(init_renorm_stddev * renorm_momentum + batch_stddev * (1 - renorm_momentum)), 1e-5));
    CHECK(all_close(layer.moving_mean().value(),
                    array_t<double>(init_moving_mean * momentum + batch_mean * (1 - momentum)), 1e-5));
    const array_t<double> expected_moving_stddev = init_moving_stddev * momentum + batch_stddev * (1 - momentum);
    CHECK(all_close(layer.moving_stddev().value(), expected_moving_stddev, 1e-5));
    CHECK(all_close(layer.moving_variance().value(),
                    array_t<double>(expected_moving_stddev * expected_moving_stddev - epsilon), 1e-5));
}

TEST_CASE("Keras 3 test_renorm_correctness (parameterized): momentum 0, renorm_momentum 0, axis (-1, 1) x shapes")
{
    for (int axis : { -1, 1 })
        for (const shape_t& shape : { shape_t{ 5, 2, 3 }, shape_t{ 5, 3, 3, 2 } }) {
            CAPTURE(axis);
            CAPTURE(shape_str(shape));
            BatchNormalizationOptions<float> o;
            o.axis = { axis };
            o.momentum = 0.0;
            o.renorm = true;
            o.renorm_momentum = 0.0;
            BN<float> layer(o);
            // Random data centered on 5.0, variance 10.0 (Keras: scale=10).
            const Tensor<float> x = normal_tensor(shape, 1337, 5.0, 10.0);
            Tensor<float> out;
            for (int i = 0; i < 3; ++i)
                out = layer(x, true);
            CHECK(out.shape() == shape);
            bool finite = true;
            for (float v : out.value())
                finite = finite && std::isfinite(v);
            CHECK(finite);
            // momentum 0: the moving statistics are this batch's (Keras: atol 1e-3 and 1e-1).
            auto [m, sd] = channel_moments(x.value(), axis);
            std::vector<double> var(sd.size());
            for (std::size_t c = 0; c < sd.size(); ++c)
                var[c] = sd[c] * sd[c];
            CHECK(all_close(layer.moving_mean().value(), m, 1e-3, 0));
            CHECK(all_close(layer.moving_variance().value(), var, 1e-1, 0));
            // Tighter than Keras: float32 rounding of a variance near 100.
            CHECK(all_close(layer.moving_variance().value(), var, 0, 1e-5));
            // renorm_momentum 0 makes r = 1 and d = 0 on the next step, so inference after
            // training (momentum 0) gives the training output.
            Tensor<float> training_out = layer(x, true);
            Tensor<float> inference_out = layer(x, false);
            CHECK(all_close(inference_out.value(), training_out.value(), 1e-4, 0));
        }
}

TEST_CASE("Keras 3 test_renorm_clipping_effect: r and d clipped to rmax and dmax, outputs finite")
{
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    o.renorm_clipping = RenormClipping{ 1.5, 0.5, 0.5 };
    o.momentum = 0.0;
    o.renorm_momentum = 0.99;
    BN<float> layer(o);
    layer.build_once({ none_dim, 3 });
    const array_t<float> xv{ { 0.0f, 50.0f, -50.0f }, { 100.0f, -50.0f, 50.0f } };
    const Tensor<float> x(xv);
    layer(x, true);
    // Second step, with renorm statistics that moved 1% towards the batch: r = s / renorm_stddev
    // is still far above rmax and d = (mean - renorm_mean) / renorm_stddev above dmax for channel 0
    // (mean 50), 0 for the others (mean 0). So y = 1.5 xhat + (0.5, 0, 0) with gamma 1, beta 0.
    Tensor<float> out = layer(x, true);
    bool finite = true;
    for (float v : out.value())
        finite = finite && std::isfinite(v);
    CHECK(finite);
    const double eps = 1e-3;
    const double mean[3] = { 50.0, 0.0, 0.0 }, var[3] = { 2500.0, 2500.0, 2500.0 };
    const double d[3] = { 0.5, 0.0, 0.0 };
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t c = 0; c < 3; ++c) {
            const double xhat = (xv(i, c) - mean[c]) / std::sqrt(var[c] + eps);
            CHECK(out.value()(i, c) == doctest::Approx(1.5 * xhat + d[c]).epsilon(1e-5));
        }
    // Without clipping the same step would not be bounded like this.
    BatchNormalizationOptions<float> free = o;
    free.renorm_clipping = RenormClipping{};
    BN<float> unclipped(free);
    unclipped(x, true);
    CHECK(std::abs(unclipped(x, true).value()(0, 1)) > 10.0f);
}

TEST_CASE("Keras 3 test_renorm_inference_same_as_regular_bn: after training, inference matches plain BN")
{
    BatchNormalizationOptions<float> o;
    o.momentum = 0.0;
    BN<float> regular(o);
    o.renorm = true;
    BN<float> renorm(o);
    const Tensor<float> x = normal_tensor({ 4, 10 }, 41, 0.0, 1.0);
    regular(x, true);
    renorm(x, true);
    auto w = renorm.get_weights();
    const auto r = regular.get_weights();
    for (std::size_t i = 0; i < 4; ++i) // gamma, beta, moving_mean, moving_variance
        w[i] = r[i];
    renorm.set_weights(w);
    CHECK(all_close(renorm(x, false).value(), regular(x, false).value(), 1e-5));
}

TEST_CASE("Keras 3 test_renorm_variables_created: shapes (10,), absent without renorm")
{
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    BN<float> layer(o);
    layer.build_once({ none_dim, 10 });
    CHECK(layer.moving_stddev().shape() == shape_t{ 10 });
    CHECK(layer.renorm_mean().shape() == shape_t{ 10 });
    CHECK(layer.renorm_stddev().shape() == shape_t{ 10 });
    BN<float> plain;
    plain.build_once({ none_dim, 10 });
    CHECK_THROWS_WITH_AS(plain.moving_stddev(), doctest::Contains("renorm=False"), RuntimeError);
    CHECK_THROWS_AS(plain.renorm_mean(), RuntimeError);
    CHECK_THROWS_AS(plain.renorm_stddev(), RuntimeError);
    CHECK(plain.get_weights().size() == 4);
}

TEST_CASE("synchronized=true in one process: the same outputs, gradients and moving statistics as false")
{
    struct SCase {
        shape_t shape;
        std::vector<int> axis;
        bool renorm;
    };
    const SCase cases[] = { { { 8, 5 }, { -1 }, false }, { { 4, 3, 2, 2 }, { 1 }, false }, { { 6, 4 }, { -1 }, true } };
    for (const auto& cs : cases) {
        CAPTURE(shape_str(cs.shape));
        BatchNormalizationOptions<double> o;
        o.axis = cs.axis;
        o.momentum = 0.7;
        o.renorm = cs.renorm;
        o.renorm_momentum = 0.6;
        BN<double> plain(o);
        o.synchronized = true;
        BN<double> sync(o);
        CHECK(sync.get_config()["synchronized"] == true);
        const Tensor<double> x0 = random_tensor(cs.shape, 120, -2.0, 3.0);
        plain(x0, false);
        sync(x0, false);
        auto w = plain.get_weights();
        w[0] = random_tensor(shape_of(w[0]), 121, 0.5, 1.5).value();
        w[1] = random_tensor(shape_of(w[1]), 122).value();
        plain.set_weights(w);
        sync.set_weights(w);
        for (unsigned step = 0; step < 3; ++step) {
            const Tensor<double> x = random_tensor(cs.shape, 130 + step, -2.0, 3.0);
            const Tensor<double> dy = random_tensor(cs.shape, 140 + step);
            auto run = [&](BN<double>& layer, Tensor<double>& y) {
                GradientTape<double> tape;
                tape.watch(x);
                y = layer(x, true);
                return tape.gradient(sum(mul(y, dy)), { x, layer.gamma().tensor(), layer.beta().tensor() });
            };
            Tensor<double> ya, yb;
            const auto ga = run(plain, ya);
            const auto gb = run(sync, yb);
            CHECK(ya.value() == yb.value());
            for (std::size_t i = 0; i < 3; ++i)
                CHECK(ga[i].value() == gb[i].value());
            const auto wa = plain.get_weights(), wb = sync.get_weights();
            REQUIRE(wa.size() == wb.size());
            for (std::size_t i = 0; i < wa.size(); ++i)
                CHECK(wa[i] == wb[i]);
        }
    }
}

TEST_CASE("Keras 3 test_serialization: get_config -> from_config -> the same config")
{
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    o.renorm_clipping = RenormClipping{ 3.0, 0.3, 5.0 };
    o.renorm_momentum = 0.95;
    BN<float> layer(o);
    const json config = layer.get_config();
    auto copy = BN<float>::from_config(config);
    CHECK(copy->get_config() == config);
    CHECK(config["renorm_clipping"] == json{ { "rmax", 3.0 }, { "rmin", 0.3 }, { "dmax", 5.0 } });
}

// ---- configs ------------------------------------------------------------------------------------

TEST_CASE("get_config: Keras 3's keys and values")
{
    reset_layer_names();
    BN<float> layer;
    const json c = layer.get_config();
    CHECK(c["name"] == "batch_normalization");
    CHECK(c["trainable"] == true);
    CHECK(c["axis"] == -1);
    CHECK(c["momentum"] == 0.99);
    CHECK(c["epsilon"] == 0.001);
    CHECK(c["center"] == true);
    CHECK(c["scale"] == true);
    CHECK(c["beta_initializer"] ==
          json{ { "module", "keras.initializers" }, { "class_name", "Zeros" }, { "config", json::object() }, { "registered_name", nullptr } });
    CHECK(c["gamma_initializer"]["class_name"] == "Ones");
    CHECK(c["moving_mean_initializer"]["class_name"] == "Zeros");
    CHECK(c["moving_variance_initializer"]["class_name"] == "Ones");
    for (const char* k : { "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint", "renorm_clipping" })
        CHECK(c[k].is_null());
    CHECK(c["synchronized"] == false);
    CHECK(c["renorm"] == false);
    CHECK(c["renorm_momentum"] == 0.99);
    CHECK_FALSE(c.contains("virtual_batch_size"));
    CHECK(BN<float>().get_config()["name"] == "batch_normalization_1");
    // renorm=true without clipping writes {} as Keras 3 does (renorm_clipping or {}).
    BatchNormalizationOptions<float> o;
    o.renorm = true;
    CHECK(BN<float>(o).get_config()["renorm_clipping"] == json::object());
}

TEST_CASE("from_config: round trips with regularizers, constraints, axis lists and virtual batches")
{
    BatchNormalizationOptions<float> o;
    o.axis = { 1, 3 };
    o.momentum = 0.8;
    o.epsilon = 1e-5;
    o.center = false;
    o.gamma_initializer = get_initializer<float>("glorot_uniform");
    o.gamma_regularizer = get_regularizer<float>("l1");
    o.beta_regularizer = get_regularizer<float>("l2");
    o.gamma_constraint = get_constraint<float>("non_neg");
    o.virtual_batch_size = 2;
    o.synchronized = true;
    o.name = "bn_custom";
    o.trainable = false;
    BN<float> layer(o);
    const json c = layer.get_config();
    CHECK(c["axis"] == json::array({ 1, 3 }));
    CHECK(c["virtual_batch_size"] == 2);
    CHECK(c["gamma_regularizer"]["class_name"] == "L1");
    CHECK(c["gamma_constraint"]["class_name"] == "NonNeg");
    auto copy = BN<float>::from_config(c);
    CHECK(copy->get_config() == c);
    CHECK(copy->name() == "bn_custom");
    CHECK_FALSE(copy->trainable());
    // The json constructor is the same.
    BN<double> by_value(c);
    json cd = by_value.get_config();
    CHECK(cd["dtype"] == "float64"); // T decides the dtype
    cd["dtype"] = c["dtype"];
    CHECK(cd == c);
}

TEST_CASE("from_config: Keras 1 (mode, no center/scale), as in dl4j's keras1 mlp_config.json")
{
    const json k1 = json::parse(R"({"gamma_regularizer": null, "name": "batchnormalization_1", "epsilon": 0.001,
        "trainable": true, "mode": 0, "beta_regularizer": null, "momentum": 0.99, "axis": -1})");
    auto layer = BN<float>::from_config(k1);
    CHECK(layer->name() == "batchnormalization_1");
    CHECK(layer->options().center);
    CHECK(layer->options().scale);
    CHECK(layer->axis() == std::vector<int>{ -1 });
    layer->build_once({ none_dim, 4 });
    CHECK(layer->weights().size() == 4);
    // Keras 1's own initializer keys.
    auto k1i = BN<float>::from_config({ { "mode", 0 }, { "beta_init", "zero" }, { "gamma_init", "one" } });
    CHECK(k1i->get_config()["gamma_initializer"]["class_name"] == "Ones");
    for (int mode : { 1, 2 })
        CHECK_THROWS_WITH_AS(BN<float>::from_config({ { "mode", mode } }), doctest::Contains("mode="), NotImplementedError);
}

TEST_CASE("from_config: Keras 2 (dl4j's keras2_mlp_config.json)")
{
    const json k2 = json::parse(R"({"beta_constraint": null, "gamma_initializer": {"class_name": "Ones", "config": {}},
        "moving_mean_initializer": {"class_name": "Zeros", "config": {}}, "name": "batchnormalization_1",
        "epsilon": 0.001, "trainable": true, "moving_variance_initializer": {"class_name": "Ones", "config": {}},
        "beta_initializer": {"class_name": "Zeros", "config": {}}, "scale": true, "axis": -1, "gamma_constraint": null,
        "gamma_regularizer": null, "beta_regularizer": null, "momentum": 0.99, "center": true})");
    auto layer = BN<float>::from_config(k2);
    const json c = layer->get_config();
    CHECK(c["moving_variance_initializer"]["class_name"] == "Ones");
    CHECK(c["axis"] == -1);
    CHECK(c["momentum"] == 0.99);
}

TEST_CASE("from_config: tf.keras 2.14 (axis [3], scale 1, dtype, Keras 3-style initializer dicts)")
{
    const json tfk = json::parse(R"({"name": "batch_normalization", "trainable": true, "dtype": "float32", "axis": [3],
        "momentum": 0.99, "epsilon": 0.001, "center": true, "scale": 1,
        "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null},
        "moving_mean_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "moving_variance_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null},
        "beta_regularizer": null, "gamma_regularizer": null, "beta_constraint": null, "gamma_constraint": null})");
    auto layer = BN<float>::from_config(tfk);
    CHECK(layer->options().scale);
    CHECK(layer->axis() == std::vector<int>{ 3 });
    layer->build_once({ none_dim, 30, 1, 64 });
    CHECK(layer->gamma().shape() == shape_t{ 64 });
    CHECK(layer->get_config()["axis"] == 3);
    // ad01.h5 (tf.keras 2.4): axis [1] on a Dense output is the last axis.
    auto dense_bn = BN<float>::from_config({ { "axis", { 1 } }, { "dtype", "float32" }, { "scale", 0 }, { "center", 1 } });
    CHECK_FALSE(dense_bn->options().scale);
    Tensor<float> y = (*dense_bn)(random_tensor<float>({ 6, 128 }, 3), true);
    CHECK(y.shape() == shape_t{ 6, 128 });
    CHECK(dense_bn->moving_mean().shape() == shape_t{ 128 });
    // tf.keras extras: renorm, fused, virtual_batch_size.
    auto extras = BN<float>::from_config(
        { { "renorm", true }, { "renorm_clipping", { { "rmax", 2.0 }, { "dmax", nullptr } } }, { "renorm_momentum", 0.9 }, { "fused", nullptr }, { "virtual_batch_size", 4 } });
    CHECK(extras->options().renorm_clipping->rmax == 2.0);
    CHECK_FALSE(extras->options().renorm_clipping->dmax.has_value());
    CHECK(*extras->options().virtual_batch_size == 4);
    CHECK_THROWS_AS(BN<float>::from_config({ { "axis", "last" } }), ValueError);
}

TEST_CASE("from_config: Keras 3 (dtype policy dict, initializer dicts with seeds, booleans as 1/0)")
{
    const json k3 = json::parse(R"({"name": "bn3", "trainable": 1,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
        "axis": -1, "momentum": 0.9, "epsilon": 0.0001, "center": 0, "scale": 1,
        "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "gamma_initializer": {"module": "keras.initializers", "class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 0.02, "seed": 7}, "registered_name": null},
        "moving_mean_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "moving_variance_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null},
        "beta_regularizer": null,
        "gamma_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.001}, "registered_name": null},
        "beta_constraint": null, "gamma_constraint": null, "synchronized": false,
        "renorm": false, "renorm_clipping": null, "renorm_momentum": 0.99})");
    auto layer = BN<float>::from_config(k3);
    CHECK(layer->name() == "bn3");
    CHECK_FALSE(layer->options().center);
    CHECK(layer->momentum() == 0.9);
    const json c = layer->get_config();
    CHECK(c["gamma_initializer"]["config"]["seed"] == 7);
    CHECK(c["gamma_regularizer"]["config"]["l2"] == doctest::Approx(0.001));
    CHECK(BN<float>::from_config(c)->get_config() == c);
}

TEST_CASE("from_config: dtype is checked against the scalar type, never ignored")
{
    // The check is layer_from_config's, shared by every class (Note [Layer config dtype]).
    auto bn_f = [](const json& c) { return layer_from_config<float>("BatchNormalization", c); };
    auto bn_d = [](const json& c) { return layer_from_config<double>("BatchNormalization", c); };
    const json policy32 = json::parse(R"({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null})");
    const json mixed = json::parse(R"({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"}, "registered_name": null})");
    const json tf_mixed = json::parse(R"({"class_name": "Policy", "config": {"name": "mixed_bfloat16"}})");
    const json policy64 = json::parse(R"({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"}, "registered_name": null})");
    // Every Keras default (float32) and the 16-bit/mixed policies load in float and double models.
    for (const json& d : { json("float32"), policy32, mixed, tf_mixed, json("float16"), json(nullptr) }) {
        CAPTURE(d.dump());
        CHECK_NOTHROW(bn_f({ { "name", "bn" }, { "dtype", d } }));
        CHECK_NOTHROW(bn_d({ { "name", "bn" }, { "dtype", d } }));
    }
    // float64 loads into double models and, converted, into float ones (Note [Layer config dtype]).
    for (const json& d : { json("float64"), policy64 }) {
        CAPTURE(d.dump());
        CHECK_NOTHROW(bn_d({ { "name", "bn" }, { "dtype", d } }));
        CHECK_NOTHROW(bn_f({ { "name", "bn64" }, { "dtype", d } })); // computed in float, as every layer
    }
    // A double layer's own config says float64 and round-trips.
    BN<double> dl;
    CHECK(dl.get_config()["dtype"] == "float64");
    CHECK(bn_d(dl.get_config())->get_config() == dl.get_config());
    CHECK_THROWS_WITH_AS(bn_f({ { "name", "q" }, { "dtype", "int8_from_float32" } }),
                         doctest::Contains("unsupported dtype 'int8_from_float32'"), ValueError);
    CHECK_THROWS_WITH_AS(bn_f({ { "dtype", "int32" } }), doctest::Contains("unsupported dtype 'int32'"),
                         ValueError);
    CHECK_THROWS_AS(bn_f({ { "dtype", 32 } }), ValueError);
}

TEST_CASE("from_config: renorm_momentum range, non-numeric clipping bounds, clipping dict kept as given")
{
    for (double m : { -0.1, 1.5 }) {
        CAPTURE(m);
        BatchNormalizationOptions<float> o;
        o.renorm = true;
        o.renorm_momentum = m;
        CHECK_THROWS_WITH_AS(BN<float>{ o }, doctest::Contains("`renorm_momentum` must be a float between [0, 1]"),
                             ValueError);
        CHECK_THROWS_WITH_AS(BN<float>::from_config({ { "renorm", true }, { "renorm_momentum", m } }),
                             doctest::Contains("`renorm_momentum` must be"), ValueError);
    }
    for (double m : { 0.0, 1.0 })
        CHECK_NOTHROW(BN<float>::from_config({ { "renorm", true }, { "renorm_momentum", m } }));
    CHECK_THROWS_AS(BN<float>::from_config({ { "renorm_momentum", "high" } }), ValueError);
    // Bounds must be numbers when renorm reads them.
    for (const json& bad : { json("3"), json(true), json::array({ 1.0 }), json::object() }) {
        CAPTURE(bad.dump());
        CHECK_THROWS_WITH_AS(BN<float>::from_config({ { "renorm", true }, { "renorm_clipping", { { "rmax", bad } } } }),
                             doctest::Contains("expected a number for 'rmax'"), ValueError);
    }
    CHECK_THROWS_WITH_AS(BN<float>::from_config({ { "renorm", true }, { "renorm_clipping", { { "dmax", "x" } } } }),
                         doctest::Contains("'dmax'"), ValueError);
    // The dict round-trips as given: integers stay integers and null bounds stay (Keras stores it).
    const json given = json::parse(R"({"rmax": 3, "rmin": null, "dmax": 5})");
    auto layer = BN<float>::from_config({ { "renorm", true }, { "renorm_clipping", given } });
    CHECK(layer->get_config()["renorm_clipping"] == given);
    CHECK(layer->get_config()["renorm_clipping"]["rmax"].is_number_integer());
    CHECK(*layer->options().renorm_clipping->rmax == 3.0);
    CHECK_FALSE(layer->options().renorm_clipping->rmin.has_value());
    CHECK(BN<float>::from_config(layer->get_config())->get_config() == layer->get_config());
    // Without renorm Keras neither checks nor reads the dict; it is kept as well.
    const json unused = json::parse(R"({"rmax": "not read", "other": 1})");
    auto plain = BN<float>::from_config({ { "renorm", false }, { "renorm_clipping", unused } });
    CHECK(plain->get_config()["renorm_clipping"] == unused);
    // renorm with no clipping: Keras's {}.
    CHECK(BN<float>::from_config({ { "renorm", true } })->get_config()["renorm_clipping"] == json::object());
}

// ---- semantics ------------------------------------------------------------------------------------

TEST_CASE("moving statistics: updated exactly once per training call, never in inference or backward")
{
    BatchNormalizationOptions<double> o;
    o.momentum = 0.75;
    BN<double> layer(o);
    Tensor<double> x1 = random_tensor({ 8, 3 }, 50, -1.0, 3.0), x2 = random_tensor({ 8, 3 }, 51, 2.0, 5.0);
    auto moments = [](const Tensor<double>& x) {
        const array_t<double> m = xt::mean(x.value(), { 0 });
        const array_t<double> v = xt::variance(x.value(), { 0 });
        return std::make_pair(m, v);
    };
    array_t<double> mm = xt::zeros<double>({ 3 }), mv = xt::ones<double>({ 3 });
    for (const Tensor<double>& x : { x1, x2, x1 }) {
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> y = layer(x, true);
        auto [m, v] = moments(x);
        mm = mm * 0.75 + m * 0.25;
        mv = mv * 0.75 + v * 0.25;
        CHECK(all_close(layer.moving_mean().value(), mm, 1e-12, 1e-12));
        CHECK(all_close(layer.moving_variance().value(), mv, 1e-12, 1e-12));
        tape.gradient(sum(mul(y, y)), { x });
        layer(x, false);
        CHECK(all_close(layer.moving_mean().value(), mm, 1e-12, 1e-12));
        CHECK(all_close(layer.moving_variance().value(), mv, 1e-12, 1e-12));
    }
    // Ghost batches update once with the average of the virtual batches' statistics (tf.keras).
    BatchNormalizationOptions<double> g;
    g.momentum = 0.0;
    g.virtual_batch_size = 2;
    BN<double> ghost(g);
    Tensor<double> x = random_tensor({ 4, 3 }, 52);
    ghost(x, true);
    CHECK(ghost.gamma().shape() == shape_t{ 1, 1, 3 });
    // Ghost batch 0 holds samples 0 and 2, batch 1 samples 1 and 3.
    for (std::size_t c = 0; c < 3; ++c) {
        const array_t<double>& v = x.value();
        const double m0 = (v(0, c) + v(2, c)) / 2, m1 = (v(1, c) + v(3, c)) / 2;
        const double v0 = ((v(0, c) - m0) * (v(0, c) - m0) + (v(2, c) - m0) * (v(2, c) - m0)) / 2;
        const double v1 = ((v(1, c) - m1) * (v(1, c) - m1) + (v(3, c) - m1) * (v(3, c) - m1)) / 2;
        CHECK(ghost.moving_mean().value().data()[c] == doctest::Approx((m0 + m1) / 2));
        CHECK(ghost.moving_variance().value().data()[c] == doctest::Approx((v0 + v1) / 2));
    }
}

TEST_CASE("regularization losses count only while trainable; their gradients reach gamma and beta")
{
    BatchNormalizationOptions<double> o;
    o.gamma_regularizer = get_regularizer<double>(json{ { "class_name", "L2" }, { "config", { { "l2", 0.1 } } } });
    o.beta_regularizer = get_regularizer<double>(json{ { "class_name", "L1" }, { "config", { { "l1", 0.2 } } } });
    BN<double> layer(o);
    Tensor<double> x = random_tensor({ 6, 3 }, 60);
    layer(x, true);
    layer.set_weights({ array_t<double>{ 1.5, -0.5, 2.0 }, array_t<double>{ 0.3, -0.4, 0.0 }, layer.get_weights()[2],
                        layer.get_weights()[3] });
    REQUIRE(layer.losses().size() == 2);
    CHECK(layer.losses()[0].item() + layer.losses()[1].item() == doctest::Approx(0.1 * (2.25 + 0.25 + 4.0) + 0.2 * 0.7));
    layer.set_trainable(false);
    CHECK(layer.losses().empty());
    layer.set_trainable(true);
    // d/dgamma of (sum(y * w) + penalties) = the op's dgamma + 2 * 0.1 * gamma.
    Tensor<double> w = random_tensor({ 6, 3 }, 61);
    std::vector<Tensor<double>> with, without;
    {
        GradientTape<double> tape;
        Tensor<double> loss = sum(mul(layer(x, true), w));
        for (const auto& l : layer.losses())
            loss = add(loss, l);
        with = tape.gradient(loss, layer.trainable_weights());
    }
    {
        GradientTape<double> tape;
        without = tape.gradient(sum(mul(layer(x, true), w)), layer.trainable_weights());
    }
    const array_t<double> g = layer.gamma().value();
    CHECK(all_close(with[0].value(), array_t<double>(without[0].value() + 0.2 * g), 1e-12, 1e-12));
    CHECK(all_close(with[1].value(), array_t<double>(without[1].value() + 0.2 * xt::sign(layer.beta().value())), 1e-12,
                    1e-12));
}

TEST_CASE("constraints are applied after the optimizer step")
{
    BatchNormalizationOptions<float> o;
    o.gamma_constraint = get_constraint<float>("non_neg");
    o.beta_constraint = get_constraint<float>(json{ { "class_name", "MaxNorm" }, { "config", { { "max_value", 0.5 }, { "axis", 0 } } } });
    BN<float> layer(o);
    Tensor<float> x = random_tensor<float>({ 16, 4 }, 70);
    layer(x, false);
    OptimizerPtr<float> opt = get_optimizer<float>(json{ { "class_name", "SGD" }, { "config", { { "learning_rate", 10.0 } } } });
    for (int step = 0; step < 3; ++step) {
        GradientTape<float> tape;
        // Pushes gamma down (towards negative) and beta up without bound.
        Tensor<float> loss = sub(sum(mul(layer(x, true), random_tensor<float>({ 16, 4 }, 71))),
                                 mul_scalar(sum(layer.beta().tensor()), 10.0f));
        loss = add(loss, mul_scalar(sum(layer.gamma().tensor()), 10.0f));
        auto vars = layer.trainable_weights();
        opt->apply_gradients(tape.gradient(loss, vars), vars);
    }
    for (float v : layer.gamma().value())
        CHECK(v >= 0.0f);
    double norm = 0;
    for (float v : layer.beta().value())
        norm += static_cast<double>(v) * v;
    CHECK(std::sqrt(norm) <= 0.5 + 1e-6);
}

TEST_CASE("trainable=false: inference mode, no statistic changes, gradients still reach the input")
{
    BN<double> layer;
    Tensor<double> x = random_tensor({ 5, 3 }, 80);
    layer(x, true);
    layer.set_weights({ array_t<double>{ 1.5, 0.5, 2.0 }, array_t<double>{ 0.1, 0.2, 0.3 },
                        array_t<double>{ 0.3, -0.2, 0.1 }, array_t<double>{ 0.5, 2.0, 1.5 } });
    layer.set_trainable(false);
    const auto before = layer.get_weights();
    GradientTape<double> tape;
    tape.watch(x);
    Tensor<double> y = layer(x, true);
    auto g = tape.gradient(sum(y), { x });
    CHECK(layer.get_weights()[2] == before[2]);
    CHECK(layer.get_weights()[3] == before[3]);
    // dy/dx = gamma / sqrt(moving_var + eps): the frozen transform's slope.
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t c = 0; c < 3; ++c)
            CHECK(g[0].value()(i, c) == doctest::Approx(before[0](c) / std::sqrt(before[3](c) + 1e-3)));
}

TEST_CASE("gradcheck through the layer: training, inference, frozen, masks, regularizers, renorm, ghost batches")
{
    struct LCase {
        shape_t shape;
        std::vector<int> axis;
    };
    const std::vector<LCase> shapes = { { { 6, 3 }, { -1 } },
                                        { { 3, 4, 3 }, { 1 } },
                                        { { 2, 3, 2, 3 }, { -1 } },
                                        { { 2, 3, 2, 2 }, { 1 } },
                                        { { 2, 2, 2, 2, 3 }, { 4 } },
                                        { { 2, 3, 2, 4 }, { 1, 3 } },
                                        { { 1, 2, 2, 3 }, { -1 } } };
    for (const auto& cs : shapes)
        for (int mode = 0; mode < 6; ++mode) {
            // 0 training, 1 inference, 2 frozen + training=true, 3 training with a mask,
            // 4 training with regularizers, 5 renorm (clipped to constants)
            CAPTURE(shape_str(cs.shape));
            CAPTURE(mode);
            BatchNormalizationOptions<double> o;
            o.axis = cs.axis;
            if (mode == 4) {
                o.gamma_regularizer = get_regularizer<double>("l2");
                o.beta_regularizer = get_regularizer<double>("l1_l2");
            }
            if (mode == 5) {
                // r and d clipped to constants, and renorm statistics that do not move between
                // the gradient check's evaluations (renorm_momentum 1, d saturated at -dmax).
                o.renorm = true;
                o.renorm_clipping = RenormClipping{ 1.7, 1.7, 0.3 };
                o.renorm_momentum = 1.0;
            }
            BN<double> layer(o);
            Tensor<double> x = random_tensor(cs.shape, 90 + mode, -1.0, 2.0);
            layer(x, false);
            auto w = layer.get_weights();
            w[0] = random_tensor(shape_of(w[0]), 95, 0.5, 1.5).value();
            w[1] = random_tensor(shape_of(w[1]), 96, -0.5, 0.5).value();
            w[3] = random_tensor(shape_of(w[3]), 97, 0.5, 1.5).value();
            if (mode == 5)
                w[5].fill(100.0);
            layer.set_weights(w);
            if (mode == 2)
                layer.set_trainable(false);
            Tensor<double> mask;
            if (mode == 3) {
                mask = random_tensor(shape_t(cs.shape.begin(), cs.shape.end() - 1), 98, 0.0, 1.0);
                for (auto& v : mask.mutable_value())
                    v = v < 0.3 ? 0.0 : 1.0;
                mask.mutable_value().data()[0] = 1.0;
            }
            const bool training = mode != 1;
            check_gradients(
                [&](const V&) {
                    Tensor<double> y = sum(mul(layer(x, training, mask), random_tensor(cs.shape, 99)));
                    for (const auto& l : layer.losses())
                        y = add(y, l);
                    return y;
                },
                V{ x, layer.gamma().tensor(), layer.beta().tensor() });
        }
    BatchNormalizationOptions<double> o;
    o.virtual_batch_size = 2;
    BN<double> ghost(o);
    Tensor<double> x = random_tensor({ 6, 2, 3 }, 100);
    ghost(x, true);
    check_gradients([&](const V&) { return ghost(x, true); }, V{ x, ghost.gamma().tensor(), ghost.beta().tensor() });
}

TEST_CASE("gradcheck through the layer: a middle axis, and center only / scale only when frozen or inferring")
{
    // A single middle axis of a rank-4 input (neither next to the batch nor last), every mode.
    for (int mode = 0; mode < 3; ++mode) { // 0 training, 1 inference, 2 frozen + training=true
        CAPTURE(mode);
        BatchNormalizationOptions<double> o;
        o.axis = { 2 };
        BN<double> layer(o);
        const Tensor<double> x = random_tensor({ 2, 3, 4, 2 }, 150 + mode, -1.0, 2.0);
        layer(x, false);
        auto w = layer.get_weights();
        w[0] = random_tensor({ 4 }, 155, 0.5, 1.5).value();
        w[1] = random_tensor({ 4 }, 156).value();
        w[2] = random_tensor({ 4 }, 157).value();
        w[3] = random_tensor({ 4 }, 158, 0.5, 1.5).value();
        layer.set_weights(w);
        if (mode == 2)
            layer.set_trainable(false);
        const Tensor<double> dy = random_tensor({ 2, 3, 4, 2 }, 159);
        check_gradients([&](const V&) { return sum(mul(layer(x, mode != 1), dy)); },
                        V{ x, layer.gamma().tensor(), layer.beta().tensor() });
    }
    for (bool scale : { true, false })
        for (int mode = 1; mode < 3; ++mode) {
            CAPTURE(scale);
            CAPTURE(mode);
            BatchNormalizationOptions<double> o;
            o.scale = scale;
            o.center = !scale;
            o.axis = { 1 };
            BN<double> layer(o);
            const Tensor<double> x = random_tensor({ 3, 2, 3 }, 160 + mode, -1.0, 2.0);
            layer(x, false);
            auto w = layer.get_weights();
            REQUIRE(w.size() == 3);
            w[0] = random_tensor({ 2 }, 165, 0.5, 1.5).value();
            w[1] = random_tensor({ 2 }, 166).value();
            w[2] = random_tensor({ 2 }, 167, 0.5, 1.5).value();
            layer.set_weights(w);
            if (mode == 2)
                layer.set_trainable(false);
            const Tensor<double> param = scale ? layer.gamma().tensor() : layer.beta().tensor();
            const Tensor<double> dy = random_tensor({ 3, 2, 3 }, 168);
            check_gradients([&](const V&) { return sum(mul(layer(x, mode != 1), dy)); }, V{ x, param });
        }
}

TEST_CASE("batch size 1: the output equals beta and gradients are finite")
{
    BN<float> layer;
    Tensor<float> x = random_tensor<float>({ 1, 5 }, 110);
    layer(x, false);
    layer.set_weights({ random_tensor<float>({ 5 }, 111).value(), random_tensor<float>({ 5 }, 112).value(),
                        layer.get_weights()[2], layer.get_weights()[3] });
    GradientTape<float> tape;
    tape.watch(x);
    Tensor<float> y = layer(x, true);
    CHECK(all_close(y.value(), layer.beta().value()));
    auto g = tape.gradient(sum(mul(y, random_tensor<float>({ 1, 5 }, 113))), { x, layer.gamma().tensor(), layer.beta().tensor() });
    for (const auto& t : g)
        for (float v : t.value())
            CHECK(std::isfinite(v));
    // The moving variance moves towards the batch's 0.
    CHECK(layer.moving_variance().value()(0) == doctest::Approx(0.99f));
}

// ---- inside a model: fit ---------------------------------------------------------------------------

namespace {

/// Keras's Masking layer, enough for these tests (xtape has none yet): zeroes masked time steps
/// and passes the mask any(x != mask_value, axis=-1) to the next layer.
class TestMasking : public Layer<float> {
public:
    explicit TestMasking(double mask_value)
        : Layer<float>("Masking")
        , m_value(mask_value)
    {
        this->set_supports_masking(true); // it makes a mask (Keras 3: a compute_mask override implies it)
    }
    Tensor<float> compute_mask(const Tensor<float>& x, const Tensor<float>&) const override
    {
        return masking(x, m_value);
    }

protected:
    Tensor<float> call(const Tensor<float>& x, bool, const Tensor<float>&) override
    {
        return mul(x, expand_dims(masking(x, m_value), -1));
    }

private:
    double m_value;
};

FitOptions<float> quiet_fit(std::size_t batch_size, int epochs)
{
    FitOptions<float> fo;
    fo.batch_size = batch_size;
    fo.epochs = epochs;
    fo.verbose = 0;
    fo.shuffle = false;
    return fo;
}

} // namespace

TEST_CASE("Keras 3 test_bachnorm_ignore_masked_values through Sequential.fit (Masking -> BN, rmsprop, mse)")
{
    for (double mask_value : { 0.0, 0.1, 1.0 }) {
        CAPTURE(mask_value);
        const float mv = static_cast<float>(mask_value);
        array_t<float> padded = array_t<float>::from_shape({ 10, 4, 2 });
        for (std::size_t i = 0; i < 10; ++i) {
            const float rows[4][2] = { { 1, 5 }, { 2, 5 }, { mv, mv }, { mv, mv } };
            for (std::size_t t = 0; t < 4; ++t)
                for (std::size_t f = 0; f < 2; ++f)
                    padded(i, t, f) = rows[t][f];
        }
        BatchNormalizationOptions<float> o;
        o.momentum = 0.0;
        auto bn = std::make_shared<BN<float>>(o);
        Sequential<float> model;
        model.add_input({ none_dim, none_dim, 2 });
        model.add(std::make_shared<TestMasking>(mask_value));
        model.add(bn);
        model.compile("rmsprop", "mse");
        model.fit(padded, padded, quiet_fit(10, 5));
        CHECK(all_close(bn->moving_mean().value(), array_t<float>{ 1.5f, 5.0f }));
        CHECK(all_close(bn->moving_variance().value(), array_t<float>{ 0.25f, 0.0f }));
    }
}

TEST_CASE("fit: the moving statistics move exactly once per step")
{
    BatchNormalizationOptions<float> o;
    o.momentum = 0.5;
    auto bn = std::make_shared<BN<float>>(o);
    Sequential<float> model;
    model.add_input({ none_dim, 3 });
    model.add(bn);
    model.compile(json{ { "class_name", "SGD" }, { "config", { { "learning_rate", 0.1 } } } }, "mse");
    const array_t<float> x = random_tensor<float>({ 12, 3 }, 120, -2.0, 4.0).value();
    model.fit(x, random_tensor<float>({ 12, 3 }, 121).value(), quiet_fit(4, 2));
    // 2 epochs of 3 batches (rows 0-3, 4-7, 8-11): 6 updates of m = 0.5 m + 0.5 batch.
    array_t<double> mm = xt::zeros<double>({ 3 }), mv = xt::ones<double>({ 3 });
    for (int step = 0; step < 6; ++step) {
        const array_t<double> b = xt::cast<double>(xt::view(x, xt::range((step % 3) * 4, (step % 3) * 4 + 4), xt::all()));
        mm = 0.5 * mm + 0.5 * array_t<double>(xt::mean(b, { 0 }));
        mv = 0.5 * mv + 0.5 * array_t<double>(xt::variance(b, { 0 }));
    }
    CHECK(all_close(bn->moving_mean().value(), mm, 1e-5, 1e-5));
    CHECK(all_close(bn->moving_variance().value(), mv, 1e-5, 1e-5));
    // evaluate and predict run in inference mode and leave them alone.
    PredictOptions<float> po;
    po.verbose = 0;
    EvaluateOptions<float> eo;
    eo.verbose = 0;
    model.predict(x, po);
    model.evaluate(x, x, eo);
    CHECK(all_close(bn->moving_mean().value(), mm, 1e-5, 1e-5));
}

TEST_CASE("fit: constraints are applied after each optimizer step")
{
    BatchNormalizationOptions<float> o;
    o.gamma_constraint = get_constraint<float>("non_neg");
    auto bn = std::make_shared<BN<float>>(o);
    Sequential<float> model;
    model.add_input({ none_dim, 4 });
    model.add(bn);
    model.compile(json{ { "class_name", "SGD" }, { "config", { { "learning_rate", 0.5 } } } }, "mse");
    // The target is the negated input: gamma wants to become negative and is held at 0.
    const array_t<float> x = random_tensor<float>({ 32, 4 }, 130, -1.0, 1.0).value();
    model.fit(x, array_t<float>(-x), quiet_fit(8, 3));
    for (float g : bn->gamma().value())
        CHECK(g == 0.0f);
}

TEST_CASE("fit: a frozen BatchNormalization keeps its statistics while the layers before it train")
{
    auto dense = std::make_shared<Dense<float>>(3);
    auto bn = std::make_shared<BN<float>>();
    Sequential<float> model;
    model.add_input({ none_dim, 5 });
    model.add(dense);
    model.add(bn);
    model.compile("adam", "mse");
    const array_t<float> x = random_tensor<float>({ 64, 5 }, 140).value();
    const array_t<float> y = random_tensor<float>({ 64, 3 }, 141).value();
    model.fit(x, y, quiet_fit(16, 1));
    bn->set_trainable(false);
    model.compile("adam", "mse"); // as in Keras, a trainable flag changed after compile needs compile again
    const auto frozen = bn->get_weights();
    const array_t<float> kernel = dense->kernel().value();
    model.fit(x, y, quiet_fit(16, 2));
    const auto after = bn->get_weights();
    for (std::size_t i = 0; i < frozen.size(); ++i)
        CHECK(after[i] == frozen[i]);
    CHECK_FALSE(all_close(dense->kernel().value(), kernel, 0, 0)); // gradients reached the Dense layer
    CHECK(model.trainable_weights().size() == 2);                  // kernel and bias only
}
