// ctest-labels: sanitize
// The Normalization preprocessing layer: Keras's normalization_test.py cases, adapt in one pass and
// over batches (the same numbers whatever the split), given statistics and their broadcasting,
// invert, errors with Keras's wording, weights in Keras's order, configs, a gradient check.
#include "framework/model.hpp"
#include "framework/ops.hpp"
#include "framework/sequential.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/preprocessing/normalization.hpp"
#include "layers/registry.hpp"
#include "optim/sgd.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::contains;
using xtape::testing::message_of;
using xtape::testing::random_tensor;

namespace test_normalization_preprocessing {

/// Mean and variance of each feature (last axis) of a (n, f) array, two passes in long double.
std::pair<std::vector<long double>, std::vector<long double>> column_moments(const Tensor<double>& x)
{
    const std::size_t n = x.shape()[0], f = x.shape()[1];
    std::vector<long double> m(f, 0), v(f, 0);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < f; ++j)
            m[j] += x.value()(i, j);
    for (auto& e : m)
        e /= n;
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < f; ++j)
            v[j] += (x.value()(i, j) - m[j]) * (x.value()(i, j) - m[j]);
    for (auto& e : v)
        e /= n;
    return { m, v };
}

Tensor<double> rows(const Tensor<double>& x, std::size_t b, std::size_t e)
{
    return slice(x, 0, b, e);
}

} // namespace test_normalization_preprocessing

using namespace test_normalization_preprocessing;

TEST_CASE("Normalization: Keras's test_normalization_basics (weights) and test_normalization_adapt")
{
    Normalization<float> plain;
    plain(random_tensor<float>({ 2, 3 }, 1));
    CHECK(plain.trainable_weights().empty());
    REQUIRE(plain.non_trainable_weights().size() == 3);
    CHECK(plain.weights()[0].name() == "mean");
    CHECK(plain.weights()[1].name() == "variance");
    CHECK(plain.weights()[2].name() == "count");
    CHECK(plain.weights()[2].shape() == shape_t{});

    NormalizationOptions<float> given;
    given.mean = array_t<float>{ 0.5f, 0.2f, -0.1f };
    given.variance = array_t<float>{ 0.1f, 0.2f, 0.3f };
    Normalization<float> with_stats(given);
    Tensor<float> y = with_stats(Tensor<float>(array_t<float>{ { 1.f, 1.f, 1.f } }));
    CHECK(with_stats.weights().empty());
    CHECK(y.data()[0] == doctest::Approx(0.5 / std::sqrt(0.1)));
    CHECK(y.data()[2] == doctest::Approx(1.1 / std::sqrt(0.3)));
    given.invert = true;
    Normalization<float> inv(given);
    CHECK(inv(y).data()[2] == doctest::Approx(1.0).epsilon(1e-6)); // invert undoes the normalization

    // adapt on (32, 4): mean 0 and variance 1 per feature afterwards.
    Tensor<double> x = random_tensor<double>({ 32, 4 }, 2, 0.0, 1.0);
    Normalization<double> n;
    n.adapt(x);
    CHECK(n.built());
    Tensor<double> out = n(x);
    auto [m, v] = column_moments(out);
    for (std::size_t j = 0; j < 4; ++j) {
        CHECK(std::fabs(static_cast<double>(m[j])) < 1e-5);
        CHECK(std::fabs(static_cast<double>(v[j]) - 1.0) < 1e-5);
    }
    // High rank with a tuple axis: statistics per (axis 1, axis 2) position.
    Tensor<double> x4 = random_tensor<double>({ 32, 4, 3, 5 }, 3, 0.0, 1.0);
    NormalizationOptions<double> o;
    o.axis = { 1, 2 };
    Normalization<double> n4(o);
    n4.adapt(x4);
    CHECK(n4.weights()[0].shape() == shape_t{ 4, 3 });
    Tensor<double> out4 = n4(x4);
    for (std::size_t a = 0; a < 4; ++a)
        for (std::size_t b = 0; b < 3; ++b) {
            long double s = 0, q = 0;
            for (std::size_t i = 0; i < 32; ++i)
                for (std::size_t c = 0; c < 5; ++c)
                    s += out4.value()(i, a, b, c);
            s /= 160;
            for (std::size_t i = 0; i < 32; ++i)
                for (std::size_t c = 0; c < 5; ++c)
                    q += (out4.value()(i, a, b, c) - s) * (out4.value()(i, a, b, c) - s);
            CHECK(std::fabs(static_cast<double>(s)) < 1e-5);
            CHECK(std::fabs(static_cast<double>(q / 160) - 1.0) < 1e-5);
        }
}

TEST_CASE("Normalization.adapt: batches give the same numbers whatever the split, and match two passes")
{
    // A large offset with a small spread: E[x^2] - E[x]^2 would lose the variance entirely.
    Tensor<double> x = random_tensor<double>({ 97, 3 }, 5, -1.0, 1.0);
    for (auto& e : x.mutable_value())
        e = 1e4 + 1e-3 * e;
    const auto [m, v] = column_moments(x);
    const std::vector<std::vector<std::size_t>> splits = { { 97 }, { 1, 96 }, { 8, 8, 8, 8, 65 }, { 50, 1, 46 },
                                                           { 13, 13, 13, 13, 13, 13, 13, 6 } };
    for (const auto& split : splits) {
        std::vector<Tensor<double>> batches;
        std::size_t b = 0;
        for (auto len : split) {
            batches.push_back(rows(x, b, b + len));
            b += len;
        }
        Normalization<double> n;
        n.adapt(batches);
        const auto w = n.get_weights();
        for (std::size_t j = 0; j < 3; ++j) {
            CHECK(std::fabs(w[0](j) - static_cast<double>(m[j])) <= 1e-11);
            CHECK(std::fabs(w[1](j) - static_cast<double>(v[j])) <= 1e-9 * static_cast<double>(v[j]));
        }
    }
}

TEST_CASE("Normalization: given statistics broadcast as Keras's (scalar, middle axis, partial kept axes)")
{
    NormalizationOptions<float> s;
    s.mean = array_t<float>(5.0f);
    s.variance = array_t<float>(1.0f);
    Normalization<float> scalar(s);
    scalar.build_once({ 3, 7 });
    CHECK(shape_of(scalar.mean()) == shape_t{ 1, 7 });
    CHECK(scalar.mean()(0, 6) == 5.0f);

    NormalizationOptions<float> mid;
    mid.axis = { 2 };
    mid.mean = array_t<float>{ 1.f, 2.f, 3.f, 4.f, 5.f };
    mid.variance = xt::ones<float>({ 5 });
    Normalization<float> middle(mid);
    middle.build_once({ 2, 4, 5, 3 });
    CHECK(shape_of(middle.mean()) == shape_t{ 1, 1, 5, 1 });
    CHECK(middle.mean()(0, 0, 3, 0) == 4.0f);

    NormalizationOptions<float> part;
    part.axis = { 1, 2 };
    part.mean = array_t<float>{ 1.f, 2.f, 3.f, 4.f, 5.f };
    part.variance = xt::ones<float>({ 5 });
    Normalization<float> partial(part);
    partial.build_once({ 2, 7, 5, 3 });
    CHECK(shape_of(partial.mean()) == shape_t{ 1, 7, 5, 1 });
    CHECK(partial.mean()(0, 6, 4, 0) == 5.0f);
    CHECK(partial.mean()(0, 0, 1, 0) == 2.0f);
}

TEST_CASE("Normalization: Keras's errors")
{
    NormalizationOptions<float> only_mean;
    only_mean.mean = array_t<float>(0.5f);
    CHECK(contains(message_of<ValueError>([&] { Normalization<float> l(only_mean); }),
                   "both `mean` and `variance` must be set"));
    NormalizationOptions<float> high;
    high.axis = { 3 };
    Normalization<float> too_high(high);
    CHECK(contains(message_of<ValueError>([&] { too_high.build_once({ 2, 2 }); }),
                   "All `axis` values must be in the range [-ndim, ndim). Received inputs with ndim=2, while axis=(3,)"));
    NormalizationOptions<float> unknown;
    unknown.axis = { 1 };
    Normalization<float> unk(unknown);
    CHECK(contains(message_of<ValueError>([&] { unk.build_once({ none_dim, none_dim }); }),
                   "All `axis` values to be kept must have a known shape"));
    Normalization<float> built;
    built.build_once({ 10, 5 });
    CHECK(contains(message_of<ValueError>([&] { built.adapt(random_tensor<float>({ 10, 3 }, 1)); }),
                   "an incompatible shape"));
}

TEST_CASE("Normalization: a zero variance divides by Keras's epsilon 1e-7, not by 0")
{
    NormalizationOptions<double> o;
    o.mean = array_t<double>(xt::ones<double>({ 1 }));
    o.variance = array_t<double>(xt::zeros<double>({ 1 }));
    Normalization<double> n(o);
    CHECK(n(Tensor<double>::full({ 1, 1 }, 1.5)).data()[0] == doctest::Approx(0.5 / 1e-7));
}

TEST_CASE("Normalization: before adapt it passes data through (Keras 3: mean 0, variance 1)")
{
    Normalization<float> n;
    Tensor<float> x = random_tensor<float>({ 4, 3 }, 9);
    Tensor<float> y = n(x);
    for (std::size_t i = 0; i < x.size(); ++i)
        CHECK(y.data()[i] == x.data()[i]);
}

TEST_CASE("Normalization: weights save and load in Keras's layout; configs round-trip")
{
    Normalization<float> a;
    a.adapt(random_tensor<float>({ 20, 3 }, 4, 2.0, 5.0));
    const auto w = a.get_weights();
    Normalization<float> b;
    b.build_once({ none_dim, 3 });
    b.set_weights(w); // mean, variance, count
    Tensor<float> x = random_tensor<float>({ 5, 3 }, 6, 2.0, 5.0);
    Tensor<float> ya = a(x), yb = b(x);
    for (std::size_t i = 0; i < ya.size(); ++i)
        CHECK(ya.data()[i] == yb.data()[i]);

    // Keras 3's config with given statistics, and tf.keras's axis=null form.
    auto k3 = layer_from_config<float>(json::parse(R"({"module": "keras.layers", "class_name": "Normalization",
        "config": {"name": "norm", "trainable": true, "dtype": "float32", "axis": [-1], "invert": false,
                   "mean": [1.0, 2.0], "variance": [4.0, 16.0]}, "registered_name": null})"));
    Tensor<float> y = (*k3)(Tensor<float>(array_t<float>{ { 3.f, 6.f } }));
    CHECK(y.data()[0] == doctest::Approx(1.0));
    CHECK(y.data()[1] == doctest::Approx(1.0));
    const json c = k3->get_config();
    CHECK(c["mean"] == json::array({ 1.0, 2.0 }));
    CHECK(Normalization<float>::from_config(c)->get_config().dump() == c.dump());
    auto none_axis = layer_from_config<float>("Normalization", json::parse(R"({"name": "n0", "axis": null,
        "mean": null, "variance": null})"));
    none_axis->build_once({ none_dim, 4 });
    CHECK(none_axis->weights()[0].shape() == shape_t{}); // one mean over everything
}

TEST_CASE("gradcheck: Normalization and its inverse are differentiable in x")
{
    NormalizationOptions<double> o;
    o.axis = { 1 };
    o.mean = array_t<double>{ 0.5, -1.0, 2.0 };
    o.variance = array_t<double>{ 0.25, 4.0, 0.04 };
    Normalization<double> n(o);
    o.invert = true;
    Normalization<double> inv(o);
    check_gradients([&](const std::vector<Tensor<double>>& v) { return n(v[0]); }, { random_tensor<double>({ 2, 3, 2 }, 8) });
    check_gradients([&](const std::vector<Tensor<double>>& v) { return inv(v[0]); },
                    { random_tensor<double>({ 2, 3, 2 }, 9) });
}

TEST_CASE("Normalization: the config of a real Keras 3.10 file (dnn_model.keras, mean/variance in weights)")
{
    // The Normalization entry of keras3/vasanthprakasam-mpg-estimator/dnn_model.keras's config.json,
    // verbatim: statistics null in the config, axis [1], build_config (314, 9).
    const json entry = json::parse(R"({"module": "keras.layers", "class_name": "Normalization", "config": {"name":
        "normalization", "trainable": true, "dtype": {"module": "keras", "class_name": "DTypePolicy", "config":
        {"name": "float32"}, "registered_name": null}, "axis": [1], "invert": false, "mean": null, "variance": null},
        "registered_name": null, "build_config": {"input_shape": [314, 9]}})");
    auto n = layer_from_config<float>(entry);
    n->build_once({ none_dim, 9 });
    const auto w = n->weights();
    REQUIRE(w.size() == 3); // the file's vars/0, vars/1, vars/2: mean (9,), variance (9,), count ()
    CHECK(w[0].shape() == shape_t{ 9 });
    CHECK(w[1].shape() == shape_t{ 9 });
    CHECK(w[2].shape() == shape_t{});
    array_t<float> mean = xt::zeros<float>({ 9 }), var = xt::ones<float>({ 9 });
    mean(1) = 195.3f;
    var(1) = 10816.f; // a std of 104
    n->set_weights({ mean, var, array_t<float>(0.f) });
    Tensor<float> x = Tensor<float>::zeros({ 1, 9 });
    x.mutable_value()(0, 1) = 299.3f;
    CHECK((*n)(x).value()(0, 1) == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(n->get_config()["mean"].is_null());
}

TEST_CASE("A model with Normalization first trains with fit and predicts as a hand computation")
{
    // x -> Normalization (adapted) -> Dense(1), MSE, SGD(0.1), one full batch: the reference
    // normalizes x by the adapted mean and std and takes the gradient step of linear regression.
    const array_t<double> x = { { 1., 10. }, { 2., 30. }, { 3., 20. }, { 6., 40. } };
    array_t<double> y = { 1., 2., 2., 5. };
    y.reshape({ 4, 1 });
    auto norm = std::make_shared<Normalization<double>>();
    norm->adapt(Tensor<double>(x));
    DenseOptions<double> d;
    d.units = 1;
    d.kernel_initializer = get_initializer<double>(json{ { "class_name", "Constant" }, { "config", { { "value", 0.5 } } } });
    Sequential<double> model({ std::make_shared<InputLayer<double>>(dims_t{ 2 }), norm, std::make_shared<Dense<double>>(d) });
    model.compile(std::make_shared<SGD<double>>(0.1), "mse");
    FitOptions<double> fo;
    fo.batch_size = 4;
    fo.shuffle = false;
    fo.verbose = 0;
    model.fit(x, y, fo);

    double mean[2] = { 0, 0 }, sd[2] = { 0, 0 };
    for (int j = 0; j < 2; ++j) {
        for (int i = 0; i < 4; ++i)
            mean[j] += x(i, j) / 4;
        for (int i = 0; i < 4; ++i)
            sd[j] += (x(i, j) - mean[j]) * (x(i, j) - mean[j]) / 4;
        sd[j] = std::sqrt(sd[j]);
    }
    double w[2] = { 0.5, 0.5 }, b = 0, gw[2] = { 0, 0 }, gb = 0;
    for (int i = 0; i < 4; ++i) {
        const double n0 = (x(i, 0) - mean[0]) / sd[0], n1 = (x(i, 1) - mean[1]) / sd[1];
        const double r = n0 * w[0] + n1 * w[1] + b - y(i, 0);
        gw[0] += 2 * r * n0 / 4;
        gw[1] += 2 * r * n1 / 4;
        gb += 2 * r / 4;
    }
    for (int j = 0; j < 2; ++j)
        w[j] -= 0.1 * gw[j];
    b -= 0.1 * gb;
    const auto weights = model.trainable_weights();
    REQUIRE(weights.size() == 2);
    CHECK(weights[0].value()(0, 0) == doctest::Approx(w[0]).epsilon(1e-12));
    CHECK(weights[0].value()(1, 0) == doctest::Approx(w[1]).epsilon(1e-12));
    CHECK(weights[1].value()(0) == doctest::Approx(b).epsilon(1e-12));
    PredictOptions<double> po;
    po.verbose = 0;
    const array_t<double> p = model.predict(array_t<double>{ { 4., 25. } }, po);
    CHECK(p(0, 0) == doctest::Approx((4. - mean[0]) / sd[0] * w[0] + (25. - mean[1]) / sd[1] * w[1] + b).epsilon(1e-12));
    // The adapted statistics are not trainable: fit left them alone.
    CHECK(norm->get_weights()[0](0) == doctest::Approx(mean[0]).epsilon(1e-15));
}
