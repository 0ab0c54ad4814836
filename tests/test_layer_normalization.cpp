// ctest-labels: sanitize
// LayerNormalization: the fused op against a naive double reference, Keras's published values
// (keras/src/layers/normalization/layer_normalization_test.py), float64 gradient checks over axis
// combinations, numerics with a large mean, thread-count independence, errors and configs.
#include "framework/layer_norm.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "layers/normalization/layer_normalization.hpp"
#include "layers/registry.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::contains;
using xtape::testing::message_of;
using xtape::testing::random_tensor;

namespace test_layer_normalization {

/// y = gamma (x - mean) / sqrt(var + eps) + beta per sample over `axes`, in long double, element by
/// element from the definition (rms: gamma x / sqrt(var + eps)).
template <class T>
std::vector<long double> reference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                   std::vector<std::size_t> axes, double eps, bool rms)
{
    const shape_t s = x.shape();
    const std::size_t rank = s.size(), n = x.size();
    std::vector<std::size_t> stride(rank, 1);
    for (std::size_t i = rank - 1; i-- > 0;)
        stride[i] = stride[i + 1] * s[i + 1];
    auto is_norm = [&](std::size_t a) { return std::find(axes.begin(), axes.end(), a) != axes.end(); };
    // group key: the coordinates on the other axes; channel key: on the normalized axes (sorted).
    std::vector<std::size_t> group(n), chan(n);
    std::size_t ngroups = 0;
    std::map<std::size_t, std::size_t> ids;
    for (std::size_t f = 0; f < n; ++f) {
        std::size_t g = 0, c = 0;
        for (std::size_t a = 0; a < rank; ++a) {
            const std::size_t coord = f / stride[a] % s[a];
            if (is_norm(a))
                c = c * s[a] + coord;
            else
                g = g * s[a] + coord;
        }
        if (!ids.count(g))
            ids[g] = ngroups++;
        group[f] = ids[g];
        chan[f] = c;
    }
    std::vector<long double> sum(ngroups, 0), sq(ngroups, 0), cnt(ngroups, 0);
    for (std::size_t f = 0; f < n; ++f) {
        sum[group[f]] += x.data()[f];
        cnt[group[f]] += 1;
    }
    for (std::size_t f = 0; f < n; ++f) {
        const long double d = x.data()[f] - sum[group[f]] / cnt[group[f]];
        sq[group[f]] += d * d;
    }
    std::vector<long double> y(n);
    for (std::size_t f = 0; f < n; ++f) {
        const std::size_t g = group[f];
        const long double mean = sum[g] / cnt[g], inv = 1.0L / std::sqrt(sq[g] / cnt[g] + eps);
        const long double gm = gamma.defined() ? gamma.data()[chan[f]] : 1.0L;
        const long double bt = beta.defined() && !rms ? beta.data()[chan[f]] : 0.0L;
        y[f] = rms ? x.data()[f] * inv * gm : (x.data()[f] - mean) * inv * gm + bt;
    }
    return y;
}

std::size_t params_size(const shape_t& s, const std::vector<std::size_t>& axes)
{
    std::size_t c = 1;
    for (auto a : axes)
        c *= s[a];
    return c;
}

struct AxisCase {
    shape_t shape;
    std::vector<int> axes;             // as given to the op
    std::vector<std::size_t> sorted;   // normalized and sorted
};

const std::vector<AxisCase>& axis_cases()
{
    static const std::vector<AxisCase> cases = {
        { { 3, 5 }, { -1 }, { 1 } },          { { 2, 3, 4 }, { -1 }, { 2 } },
        { { 2, 3, 4 }, { 1, 2 }, { 1, 2 } },  { { 2, 3, 4 }, { -1, -2 }, { 1, 2 } },
        { { 2, 3, 4 }, { 1 }, { 1 } },        { { 2, 3, 2, 3 }, { 1, 3 }, { 1, 3 } },
        { { 4, 3 }, { 0 }, { 0 } },           { { 2, 37 }, { -1 }, { 1 } }, // SIMD body and tail
    };
    return cases;
}

template <class T>
void check_against_reference(double tol)
{
    unsigned seed = 1;
    for (const auto& c : axis_cases())
        for (int mode = 0; mode < 4; ++mode) { // 0 gamma+beta, 1 none, 2 gamma only, 3 rms
            CAPTURE(shape_str(c.shape));
            CAPTURE(mode);
            const std::size_t C = params_size(c.shape, c.sorted);
            Tensor<T> x = random_tensor<T>(c.shape, seed++, -2.0, 3.0);
            Tensor<T> g = mode == 1 ? Tensor<T>() : random_tensor<T>({ C }, seed++, 0.5, 1.5);
            Tensor<T> b = mode == 0 ? random_tensor<T>({ C }, seed++) : Tensor<T>();
            LayerNormSpec spec{ c.axes, 1e-3, mode == 3 };
            Tensor<T> y = layer_norm(x, g, b, spec);
            const auto ref = reference(x, g, b, c.sorted, 1e-3, mode == 3);
            double worst = 0;
            for (std::size_t i = 0; i < ref.size(); ++i)
                worst = std::max(worst, static_cast<double>(std::fabs(y.data()[i] - ref[i])));
            CHECK(worst < tol);
        }
}

} // namespace test_layer_normalization

using namespace test_layer_normalization;

TEST_CASE("layer_norm: values match a long-double reference over axis sets, float32 and float64")
{
    check_against_reference<float>(5e-6);
    check_against_reference<double>(1e-13);
}

TEST_CASE("LayerNormalization: Keras's test_output and test_output_with_rms_scaling")
{
    array_t<float> a = { { 0.f, 1.f, 2.f, 3.f, 4.f } };
    LayerNormalizationOptions<float> o;
    o.affine.beta_initializer = get_initializer<float>("ones");
    o.affine.gamma_initializer = get_initializer<float>("ones");
    LayerNormalization<float> layer(o);
    Tensor<float> y = layer(Tensor<float>(a));
    const float expected[] = { -0.41386f, 0.29307f, 1.0f, 1.70693f, 2.41386f };
    for (int i = 0; i < 5; ++i)
        CHECK(y.data()[i] == doctest::Approx(expected[i]).epsilon(1e-5));

    LayerNormalizationOptions<float> r;
    r.rms_scaling = true;
    LayerNormalization<float> rms(r);
    Tensor<float> yr = rms(Tensor<float>(a));
    const float expected_rms[] = { 0.0f, 0.70693f, 1.41386f, 2.12079f, 2.82772f };
    for (int i = 0; i < 5; ++i)
        CHECK(yr.data()[i] == doctest::Approx(expected_rms[i]).epsilon(1e-5));
    CHECK(rms.weights().size() == 1); // rms_scaling: gamma only
}

TEST_CASE("LayerNormalization: Keras's test_ln_basics weight and loss counts, gamma shapes")
{
    {
        LayerNormalizationOptions<float> o;
        o.affine.gamma_regularizer = get_regularizer<float>(json{ { "class_name", "L2" }, { "config", { { "l2", 0.01 } } } });
        o.affine.beta_regularizer = get_regularizer<float>(json{ { "class_name", "L2" }, { "config", { { "l2", 0.01 } } } });
        LayerNormalization<float> l(o);
        CHECK(l(random_tensor<float>({ 3, 4, 2 }, 1)).shape() == shape_t{ 3, 4, 2 });
        CHECK(l.trainable_weights().size() == 2);
        CHECK(l.non_trainable_weights().empty());
        CHECK(l.losses().size() == 2);
    }
    {
        LayerNormalizationOptions<float> o;
        o.affine.scale = o.affine.center = false;
        LayerNormalization<float> l(o);
        l(random_tensor<float>({ 3, 3 }, 2));
        CHECK(l.weights().empty());
    }
    {
        LayerNormalizationOptions<float> o;
        o.axis = { -3, -2, -1 };
        LayerNormalization<float> l(o);
        CHECK(l(random_tensor<float>({ 2, 8, 8, 3 }, 3)).shape() == shape_t{ 2, 8, 8, 3 });
        CHECK(l.gamma().shape() == shape_t{ 8, 8, 3 });
        CHECK(l.beta().shape() == shape_t{ 8, 8, 3 });
    }
    {
        LayerNormalizationOptions<float> o; // Keras's docstring: axis [1, 2, 3] on (5, 20, 30, 40)
        o.axis = { 1, 2, 3 };
        LayerNormalization<float> l(o);
        l.build_once({ 5, 20, 30, 40 });
        CHECK(l.gamma().shape() == shape_t{ 20, 30, 40 });
    }
    {
        LayerNormalization<float> l; // an empty axis: (1, 0, 10) gives (1, 0, 10)
        CHECK(l(Tensor<float>::zeros({ 1, 0, 10 })).shape() == shape_t{ 1, 0, 10 });
    }
}

TEST_CASE("LayerNormalization: Keras's test_correctness (mean 0, std 1 after removing beta and gamma)")
{
    LayerNormalization<float> l;
    Tensor<float> x = random_tensor<float>({ 1000, 2, 2, 2 }, 7, -12.0, 22.0); // mean 5, wide spread
    Tensor<float> y = l(x);
    double s = 0, q = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
        s += y.data()[i];
    const double m = s / y.size();
    for (std::size_t i = 0; i < y.size(); ++i)
        q += (y.data()[i] - m) * (y.data()[i] - m);
    CHECK(std::fabs(m) < 1e-1);
    CHECK(std::fabs(std::sqrt(q / y.size()) - 1.0) < 1e-1);
}

TEST_CASE("LayerNormalization: Keras's test_unsorted_axis and test_axis_is_canonicalized")
{
    Tensor<float> x = random_tensor<float>({ 2, 3, 4 }, 4);
    LayerNormalizationOptions<float> a, b;
    a.axis = { -2, -1 };
    b.axis = { -1, -2 };
    LayerNormalization<float> la(a), lb(b);
    Tensor<float> ya = la(x), yb = lb(x);
    for (std::size_t i = 0; i < ya.size(); ++i)
        CHECK(ya.data()[i] == yb.data()[i]);
    LayerNormalization<float> l;
    l.build_once({ 2, 4 });
    CHECK(l.axes() == std::vector<std::size_t>{ 1 });
    CHECK(l.get_config()["axis"] == json::array({ 1 }));
}

TEST_CASE("LayerNormalization: Keras's errors for bad axes")
{
    Tensor<float> x = Tensor<float>::zeros({ 2, 4 });
    for (int axis : { 2, 99, -3, -99 }) {
        LayerNormalizationOptions<float> o;
        o.axis = { axis };
        LayerNormalization<float> l(o);
        const std::string m = message_of<ValueError>([&] { l(x); });
        CHECK(contains(m, "is out of bounds"));
        CHECK(contains(m, l.name()));
    }
    for (std::vector<int> axis : { std::vector<int>{ -1, 1 }, std::vector<int>{ 1, 1 } }) {
        LayerNormalizationOptions<float> o;
        o.axis = axis;
        LayerNormalization<float> l(o);
        CHECK(contains(message_of<ValueError>([&] { l(x); }), "Duplicate axes are not allowed"));
    }
    CHECK(contains(message_of<ValueError>(
                       [] { LayerNormalization<float>::from_config({ { "axis", { { "axis", -1 } } } }); }),
                   "Expected an int or a list/tuple of ints for the argument 'axis'"));
    // The op names itself and the parameter that does not fit.
    const std::string m = message_of<ShapeError>([&] {
        layer_norm(x, Tensor<float>::zeros({ 3 }), Tensor<float>(), LayerNormSpec{});
    });
    CHECK(contains(m, "layer_norm: gamma has shape (3,)"));
    CHECK(contains(m, "hold 4 elements"));
}

TEST_CASE("gradcheck: layer_norm over axis sets, with and without gamma/beta, rms_scaling")
{
    unsigned seed = 100;
    for (const auto& c : axis_cases())
        for (int mode = 0; mode < 4; ++mode) {
            CAPTURE(shape_str(c.shape));
            CAPTURE(mode);
            const std::size_t C = params_size(c.shape, c.sorted);
            std::vector<Tensor<double>> in{ random_tensor<double>(c.shape, seed++, -2.0, 3.0) };
            if (mode != 1)
                in.push_back(random_tensor<double>({ C }, seed++, 0.5, 1.5));
            if (mode == 0)
                in.push_back(random_tensor<double>({ C }, seed++));
            const LayerNormSpec spec{ c.axes, 1e-3, mode == 3 };
            check_gradients(
                [&](const std::vector<Tensor<double>>& v) {
                    return layer_norm(v[0], v.size() > 1 ? v[1] : Tensor<double>(),
                                      v.size() > 2 ? v[2] : Tensor<double>(), spec);
                },
                in);
        }
}

TEST_CASE("gradcheck: layer_norm accumulates (x and gamma used twice, through the layer)")
{
    LayerNormalization<double> layer;
    layer.build_once({ none_dim, 6 });
    Tensor<double> x = random_tensor<double>({ 4, 6 }, 9);
    check_gradients(
        [&](const std::vector<Tensor<double>>& v) {
            Tensor<double> y = layer(v[0]);
            return add(mul(y, v[0]), layer(mul_scalar(v[0], 2.0)));
        },
        { x });
    const std::vector<Variable<double>> w = layer.trainable_weights();
    GradcheckResult r = gradcheck(
        [&] {
            Tensor<double> y = layer(x);
            return add(y, mul(y, layer(x)));
        },
        { w[0].tensor(), w[1].tensor() });
    INFO(r.report());
    CHECK(r.passed);
}

TEST_CASE("layer_norm: a large mean (1e4, spread 1e-2) keeps float32's precision of the spread")
{
    // Rows of 1024: values 1e4 + 1e-2 u. E[x^2] - E[x]^2 in float would lose every digit.
    Tensor<float> x = random_tensor<float>({ 8, 1024 }, 11, -1.0, 1.0);
    for (auto& v : x.mutable_value())
        v = 1e4f + 1e-2f * v;
    Tensor<float> y = layer_norm(x, Tensor<float>(), Tensor<float>(), LayerNormSpec{ { -1 }, 1e-9, false });
    const auto ref = reference(x, Tensor<float>(), Tensor<float>(), { 1 }, 1e-9, false);
    double worst = 0;
    for (std::size_t i = 0; i < ref.size(); ++i)
        worst = std::max(worst, static_cast<double>(std::fabs(y.data()[i] - ref[i])));
    // |xhat| <= ~2; float rounding of x itself at 1e4 is 5e-4 of the spread 1e-2... measured in
    // units of the output: the inputs are exact floats, so only the computation's rounding counts.
    CHECK(worst < 2e-5);
}

TEST_CASE("layer_norm: forward and gradients are bit-identical for 1 and 2 threads")
{
    const int saved = max_threads();
    auto run = [](int threads) {
        set_num_threads(threads);
        Tensor<float> x = random_tensor<float>({ 96, 1000 }, 21, -3.0, 5.0);
        Variable<float> g("gamma", random_tensor<float>({ 1000 }, 22, 0.5, 1.5).value());
        Variable<float> b("beta", random_tensor<float>({ 1000 }, 23).value());
        GradientTape<float> tape;
        tape.watch(x);
        Tensor<float> y = layer_norm<float>(x, g, b, LayerNormSpec{});
        Tensor<float> dy = random_tensor<float>({ 96, 1000 }, 24);
        auto grads = tape.gradient(y, { x, g.tensor(), b.tensor() }, dy);
        std::vector<std::vector<float>> out{ std::vector<float>(y.data(), y.data() + y.size()) };
        for (auto& t : grads)
            out.emplace_back(t.data(), t.data() + t.size());
        return out;
    };
    const auto one = run(1), two = run(2);
    set_num_threads(saved);
    REQUIRE(one.size() == two.size());
    for (std::size_t k = 0; k < one.size(); ++k)
        CHECK(std::memcmp(one[k].data(), two[k].data(), one[k].size() * sizeof(float)) == 0);
}

TEST_CASE("LayerNormalization: configs of tf.keras and Keras 3 load and round-trip")
{
    // tf.keras 2 (written after build: axis a list of non-negative ints, dtype a string).
    const json tfk = json::parse(R"({"name": "layer_normalization", "trainable": true, "dtype": "float32",
        "axis": [2], "epsilon": 0.001, "center": true, "scale": false,
        "beta_initializer": {"class_name": "Zeros", "config": {}},
        "gamma_initializer": {"class_name": "Ones", "config": {}},
        "beta_regularizer": {"class_name": "L2", "config": {"l2": 0.02}}, "gamma_regularizer": null,
        "beta_constraint": null, "gamma_constraint": null})");
    auto l = layer_from_config<float>("LayerNormalization", tfk);
    Tensor<float> y = (*l)(random_tensor<float>({ 2, 3, 4 }, 5));
    CHECK(y.shape() == shape_t{ 2, 3, 4 });
    CHECK(l->weights().size() == 1);
    CHECK(l->weights()[0].name() == "beta");
    CHECK(l->losses().size() == 1);

    // Keras 3 (axis a list, rms_scaling, initializers as module dicts) and back again.
    const json k3 = json::parse(R"({"name": "ln3", "trainable": true,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null},
        "axis": [-2, -1], "epsilon": 0.01, "center": true, "scale": true, "rms_scaling": false,
        "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {}, "registered_name": null},
        "beta_regularizer": null, "gamma_regularizer": null, "beta_constraint": null,
        "gamma_constraint": {"module": "keras.constraints", "class_name": "NonNeg", "config": {}, "registered_name": null}})");
    auto l3 = std::dynamic_pointer_cast<LayerNormalization<double>>(layer_from_config<double>("LayerNormalization", k3));
    REQUIRE(l3);
    json c = l3->get_config();
    CHECK(c["axis"] == json::array({ -2, -1 })); // unbuilt: as given
    CHECK(c["epsilon"] == 0.01);
    CHECK(c["rms_scaling"] == false);
    CHECK(c["gamma_constraint"]["class_name"] == "NonNeg");
    (*l3)(random_tensor<double>({ 2, 3, 4 }, 6));
    c = l3->get_config();
    CHECK(c["axis"] == json::array({ 1, 2 })); // built: Keras's sorted non-negative axes
    auto again = LayerNormalization<double>::from_config(c);
    CHECK(again->get_config().dump() == json(c).dump());
    CHECK(LayerNormalization<float>().get_config()["axis"] == -1); // an int stays an int
}
