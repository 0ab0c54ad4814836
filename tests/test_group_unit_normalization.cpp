// ctest-labels: sanitize
// GroupNormalization and UnitNormalization: Keras's published values
// (keras/src/layers/normalization/group_normalization_test.py, unit_normalization_test.py),
// float64 gradient checks, errors with Keras's wording, configs.
#include "framework/ops.hpp"
#include "layers/normalization/group_normalization.hpp"
#include "layers/registry.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::contains;
using xtape::testing::message_of;
using xtape::testing::random_tensor;

namespace test_group_unit_normalization {

template <class T>
GroupNormalizationOptions<T> plain(long groups, int axis)
{
    GroupNormalizationOptions<T> o;
    o.groups = groups;
    o.axis = axis;
    o.affine.scale = o.affine.center = false;
    return o;
}

void check_close(const Tensor<float>& y, const std::vector<float>& expected, double atol)
{
    REQUIRE(y.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(i);
        CHECK(std::fabs(y.data()[i] - expected[i]) <= atol);
    }
}

} // namespace test_group_unit_normalization

using namespace test_group_unit_normalization;

TEST_CASE("GroupNormalization: Keras's test_correctness_instance_norm, _1d and _2d")
{
    {
        GroupNormalization<float> l(plain<float>(4, -1));
        array_t<float> x = { { { -1.f, 1.f, 0.f, 2.f }, { 1.f, 3.f, -4.f, -2.f } } };
        check_close(l(Tensor<float>(x)), { -1, -1, 1, 1, 1, 1, -1, -1 }, 1e-3);
    }
    array_t<float> x1 = { { -1.f, -1.f, 1.f, 1.f, 2.f, 2.f, 0.f, -2.f } };
    GroupNormalization<float> one(plain<float>(1, -1)), two(plain<float>(2, 1));
    check_close(one(Tensor<float>(x1)), { -0.898f, -0.898f, 0.539f, 0.539f, 1.257f, 1.257f, -0.180f, -1.616f }, 1e-3);
    check_close(two(Tensor<float>(x1)), { -1.0f, -1.0f, 1.0f, 1.0f, 0.904f, 0.904f, -0.301f, -1.507f }, 1e-3);

    array_t<float> x2 = { { { -1.f, -1.f, 2.f, 2.f }, { 1.f, 1.f, 0.f, -2.f } } };
    GroupNormalization<float> one2(plain<float>(1, -1)), two2(plain<float>(2, 2));
    check_close(one2(Tensor<float>(x2)), { -0.898f, -0.898f, 1.257f, 1.257f, 0.539f, 0.539f, -0.180f, -1.616f }, 1e-3);
    check_close(two2(Tensor<float>(x2)), { -1.0f, -1.0f, 0.904f, 0.904f, 1.0f, 1.0f, -0.301f, -1.507f }, 1e-3);
}

TEST_CASE("GroupNormalization: Keras's test_broadcasting_2d_channels_first (gamma and beta on)")
{
    array_t<float> x = xt::arange<float>(16.f);
    x.reshape({ 1, 4, 2, 2 });
    GroupNormalizationOptions<float> o;
    o.groups = 2;
    o.axis = 1;
    GroupNormalization<float> l(o);
    const std::vector<float> half = { -1.5274f, -1.0910f, -0.6546f, -0.2182f, 0.2182f, 0.6546f, 1.0910f, 1.5274f };
    std::vector<float> expected = half;
    expected.insert(expected.end(), half.begin(), half.end());
    check_close(l(Tensor<float>(x)), expected, 1e-3);
    CHECK(l.gamma().shape() == shape_t{ 4 });
    CHECK(l.beta().shape() == shape_t{ 4 });
}

TEST_CASE("GroupNormalization: gamma and beta per channel match a hand computation (channels last)")
{
    // (1, 2, 4), groups 2: each group is two consecutive channels over both steps.
    array_t<double> x = { { { 1., 2., 3., 4. }, { 5., 6., 7., 8. } } };
    // group 0 holds x[:, 0:2] = {1, 2, 5, 6}: mean 3.5, var 4.25; group 1 {3, 4, 7, 8}: mean 5.5, var 4.25.
    GroupNormalizationOptions<double> o;
    o.groups = 2;
    o.affine.gamma_initializer = get_initializer<double>(json{ { "class_name", "Constant" }, { "config", { { "value", 2.0 } } } });
    o.affine.beta_initializer = get_initializer<double>(json{ { "class_name", "Constant" }, { "config", { { "value", 0.5 } } } });
    GroupNormalization<double> l(o);
    Tensor<double> y = l(Tensor<double>(x));
    const double inv = 1.0 / std::sqrt(4.25 + 1e-3);
    const double m[4] = { 3.5, 3.5, 5.5, 5.5 };
    for (std::size_t t = 0; t < 2; ++t)
        for (std::size_t c = 0; c < 4; ++c)
            CHECK(y.value()(0, t, c) == doctest::Approx(2.0 * (x(0, t, c) - m[c]) * inv + 0.5).epsilon(1e-12));
}

TEST_CASE("GroupNormalization: Keras's errors")
{
    CHECK(contains(message_of<ValueError>([] { GroupNormalization<float>(plain<float>(0, -1)); }),
                   "Received an invalid value for argument `groups`, expected a positive integer (or `-1` for "
                   "instance normalization). Received: groups=0"));
    GroupNormalization<float> too_many(plain<float>(8, -1)), not_multiple(plain<float>(3, -1));
    CHECK(contains(message_of<ValueError>([&] { too_many(Tensor<float>::zeros({ 2, 4 })); }),
                   "Number of groups (8) cannot be more than the number of channels (4)."));
    CHECK(contains(message_of<ValueError>([&] { not_multiple(Tensor<float>::zeros({ 2, 4 })); }),
                   "Number of groups (3) must be a multiple of the number of channels (4)."));
    GroupNormalization<float> instance(plain<float>(-1, -1));
    instance(Tensor<float>::zeros({ 2, 3, 4 }));
    CHECK(instance.get_config()["groups"] == 4); // Keras replaces -1 by the channel count
}

TEST_CASE("gradcheck: GroupNormalization (channels last and first, gamma/beta, instance norm)")
{
    struct Case {
        shape_t shape;
        long groups;
        int axis;
        bool affine;
    };
    const std::vector<Case> cases = { { { 2, 3, 4 }, 2, -1, true },   { { 2, 4, 3 }, 2, 1, true },
                                      { { 2, 3, 2, 4 }, 4, -1, true }, { { 2, 6, 2, 2 }, 3, 1, false },
                                      { { 3, 6 }, 1, -1, true },       { { 2, 2, 3, 2 }, -1, 2, true } };
    unsigned seed = 40;
    for (const auto& c : cases) {
        CAPTURE(shape_str(c.shape));
        GroupNormalizationOptions<double> o;
        o.groups = c.groups;
        o.axis = c.axis;
        o.affine.scale = o.affine.center = c.affine;
        o.affine.gamma_initializer = get_initializer<double>(json{ { "class_name", "RandomUniform" },
                                                                  { "config", { { "minval", 0.5 }, { "maxval", 1.5 }, { "seed", 3 } } } });
        o.affine.beta_initializer = o.affine.gamma_initializer;
        auto l = std::make_shared<GroupNormalization<double>>(o);
        Tensor<double> x = random_tensor<double>(c.shape, seed++, -2.0, 2.0);
        check_gradients([&](const std::vector<Tensor<double>>& v) { return (*l)(v[0]); }, { x });
        if (c.affine) {
            const auto w = l->trainable_weights();
            GradcheckResult r = gradcheck([&] { return (*l)(x); }, { w[0].tensor(), w[1].tensor() });
            INFO(r.report());
            CHECK(r.passed);
        }
    }
}

TEST_CASE("UnitNormalization: Keras's test_correctness (unit L2 norm over the axes)")
{
    auto norm2 = [](const Tensor<double>& y, auto&& select) {
        double s = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
            if (select(i))
                s += y.data()[i] * y.data()[i];
        return s;
    };
    {
        UnitNormalization<double> l({ -1 });
        Tensor<double> y = l(random_tensor<double>({ 2, 3 }, 1));
        CHECK(norm2(y, [](std::size_t i) { return i < 3; }) == doctest::Approx(1.0));
        CHECK(norm2(y, [](std::size_t i) { return i >= 3; }) == doctest::Approx(1.0));
    }
    {
        UnitNormalization<double> l({ 1, 2 }, true);
        Tensor<double> y = l(random_tensor<double>({ 2, 3, 3 }, 2));
        CHECK(norm2(y, [](std::size_t i) { return i < 9; }) == doctest::Approx(1.0));
        CHECK(norm2(y, [](std::size_t i) { return i >= 9; }) == doctest::Approx(1.0));
    }
    {
        UnitNormalization<double> l({ 1 });
        Tensor<double> y = l(random_tensor<double>({ 2, 3, 2 }, 3));
        for (std::size_t b = 0; b < 2; ++b)
            for (std::size_t k = 0; k < 2; ++k)
                CHECK(norm2(y, [&](std::size_t i) { return i / 6 == b && i % 2 == k; }) == doctest::Approx(1.0));
    }
    // A zero vector stays zero with a finite gradient (the clamp at 1e-24).
    UnitNormalization<double> l;
    Tensor<double> z = Tensor<double>::zeros({ 1, 3 });
    CHECK(l(z).data()[0] == 0.0);
}

TEST_CASE("UnitNormalization: gradcheck, errors and config")
{
    UnitNormalization<double> l({ 1, 2 }, true);
    check_gradients([&](const std::vector<Tensor<double>>& v) { return l(v[0]); },
                    { random_tensor<double>({ 2, 3, 2 }, 5) });
    UnitNormalization<float> bad({ 3 });
    const std::string m = message_of<ValueError>([&] { bad(Tensor<float>::zeros({ 2, 3 })); });
    CHECK(contains(m, "Axis 3 is out of bounds for input shape (None, 3)"));
    CHECK(contains(message_of<ValueError>([] { UnitNormalization<float>::from_config({ { "axis", { { "axis", -1 } } } }); }),
                   "Invalid value for `axis` argument: expected an int or a list/tuple of ints."));
    auto k3 = layer_from_config<float>(json::parse(
        R"({"module": "keras.layers", "class_name": "UnitNormalization", "config": {"name": "unit", "trainable": true,
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}, "axis": [1, 2]},
            "registered_name": null})"));
    CHECK(k3->get_config()["axis"] == json::array({ 1, 2 }));
    CHECK(UnitNormalization<float>().get_config()["axis"] == -1);
    auto g = layer_from_config<float>("GroupNormalization",
                                      json::parse(R"({"name": "gn", "groups": 2, "axis": -1, "epsilon": 0.001,
        "center": true, "scale": true, "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}}, "beta_regularizer": null,
        "gamma_regularizer": null, "beta_constraint": null, "gamma_constraint": null})"));
    const json c = g->get_config();
    CHECK(c["groups"] == 2);
    CHECK(GroupNormalization<float>::from_config(c)->get_config().dump() == c.dump());
}
