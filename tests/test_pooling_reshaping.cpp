// Pooling and reshaping layers over spatial data: MaxPooling1D/2D, AveragePooling1D/2D and the
// global poolings (framework/pooling.hpp), with Keras's documented values, hand-computed cases,
// gradient checks in double for every option combination, errors and configs in every Keras form.
// ctest-labels: sanitize
#include "framework/parallel.hpp"
#include "framework/pooling.hpp"
#include "layers/layer_config.hpp"
#include "layers/pooling/pooling.hpp"
#include "layers/registry.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <xtensor/xmath.hpp>

using namespace xtape;
using xtape::testing::random_tensor;
using D = double;

namespace {

array_t<D> arr(std::initializer_list<D> v, const shape_t& shape)
{
    array_t<D> a = array_t<D>::from_shape(shape);
    REQUIRE(v.size() == a.size());
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

void check_close(const array_t<D>& got, const array_t<D>& want, double tol = 1e-12)
{
    REQUIRE(shape_of(got) == shape_of(want));
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(tol).scale(1.0));
    }
}

/// (batch, h, w, c) -> (batch, c, h, w), or the 1-D (batch, steps, c) -> (batch, c, steps).
Tensor<D> to_channels_first(const Tensor<D>& x)
{
    return x.dim() == 4 ? transpose(x, { 0, 3, 1, 2 }) : transpose(x, { 0, 2, 1 });
}
Tensor<D> to_channels_last(const Tensor<D>& x)
{
    return x.dim() == 4 ? transpose(x, { 0, 2, 3, 1 }) : transpose(x, { 0, 2, 1 });
}

/// Gradient check through a layer with respect to its input (the loss is a fixed weighting of
/// the output, so every output element's gradient is checked, not only their sum).
void check_layer_gradients(Layer<D>& layer, const Tensor<D>& x, bool training = false,
                           const Tensor<D>& mask = Tensor<D>())
{
    const Tensor<D> y0 = layer(x, training, mask);
    const Tensor<D> w = random_tensor(y0.shape(), 777, 0.5, 1.5);
    GradcheckResult r = gradcheck([&]() { return sum(mul(layer(x, training, mask), w)); }, { x }, { "input" });
    INFO(layer.name() << "\n" << r.report());
    CHECK(r.passed);
    REQUIRE(r.entries.size() == 1);
    CHECK(r.entries[0].checked == x.size());
}

/// get_config -> from_config (through the registry) -> get_config gives the same config.
template <class T>
void check_round_trip(const Layer<T>& layer)
{
    const json c1 = layer.get_config();
    LayerPtr<T> copy = layer_from_config<T>(layer.class_name(), c1);
    const json c2 = copy->get_config();
    CAPTURE(c1.dump());
    CAPTURE(c2.dump());
    CHECK(c1 == c2);
    CHECK(copy->class_name() == layer.class_name());
}

std::string error_of(const std::function<void()>& f)
{
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

PoolingOptions pool_opts(std::vector<long> pool, std::vector<long> strides, std::string padding,
                         std::string data_format = "channels_last")
{
    PoolingOptions o;
    o.pool_size = std::move(pool);
    o.strides = std::move(strides);
    o.padding = std::move(padding);
    o.data_format = std::move(data_format);
    return o;
}

} // namespace

// ---- windowed pooling ---------------------------------------------------------------------------------

TEST_CASE("MaxPooling2D: Keras's documented examples, both data formats")
{
    const Tensor<D> x33(arr({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, { 1, 3, 3, 1 }));
    const Tensor<D> x34(arr({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, { 1, 3, 4, 1 }));
    for (const std::string fmt : { "channels_last", "channels_first" }) {
        CAPTURE(fmt);
        const bool cf = fmt == "channels_first";
        auto run = [&](const PoolingOptions& o, const Tensor<D>& x) {
            MaxPooling2D<D> layer(o);
            const Tensor<D> y = layer(cf ? to_channels_first(x) : x);
            return cf ? to_channels_last(y) : y;
        };
        // keras.layers.MaxPooling2D docstring: strides 1 valid, strides 2 valid, strides 1 same.
        check_close(run(pool_opts({ 2, 2 }, { 1, 1 }, "valid", fmt), x33).value(), arr({ 5, 6, 8, 9 }, { 1, 2, 2, 1 }));
        check_close(run(pool_opts({ 2, 2 }, { 2, 2 }, "valid", fmt), x34).value(), arr({ 6, 8 }, { 1, 1, 2, 1 }));
        check_close(run(pool_opts({ 2, 2 }, { 1, 1 }, "same", fmt), x33).value(),
                    arr({ 5, 6, 6, 8, 9, 9, 8, 9, 9 }, { 1, 3, 3, 1 }));
    }
}

TEST_CASE("MaxPooling2D: hand-computed windows with several channels, same padding split as TensorFlow")
{
    // One 4x4 image, channel 0 as below and channel 1 its negation.
    const std::vector<D> img = { 1, 3, 2, 0, 4, 2, 1, 5, 0, 6, 7, 1, 2, 1, 3, 8 };
    array_t<D> a = array_t<D>::from_shape({ 1, 4, 4, 2 });
    for (std::size_t i = 0; i < 16; ++i) {
        a.data()[2 * i] = img[i];
        a.data()[2 * i + 1] = -img[i];
    }
    const Tensor<D> x(a);
    // 2x2, strides 2: the maxima of each quadrant, and minus the minima for channel 1.
    MaxPooling2D<D> p;
    check_close(p(x).value(), arr({ 4, -1, 5, 0, 6, 0, 8, -1 }, { 1, 2, 2, 2 }));
    // 3x3, strides 2, same: out 2, padding total (2-1)*2+3-4 = 1, all of it after, so the windows
    // are rows/cols [0,3) and [2,4).
    MaxPooling2D<D> q(pool_opts({ 3 }, { 2 }, "same"));
    check_close(q(x).value(), arr({ 7, 0, 7, 0, 7, 0, 8, -1 }, { 1, 2, 2, 2 }));
    CHECK(q.pool_size() == std::vector<std::size_t>{ 3, 3 });
    CHECK(q.strides() == std::vector<std::size_t>{ 2, 2 });
    // 3x3 strides 1 same on a 3-wide axis: padding 1 before and 1 after, rows [i-1, i+2).
    const Tensor<D> x33(arr({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, { 1, 3, 3, 1 }));
    MaxPooling2D<D> r(pool_opts({ 3, 1 }, { 1, 1 }, "SAME")); // padding in any case, as Keras
    check_close(r(x33).value(), arr({ 4, 5, 6, 7, 8, 9, 7, 8, 9 }, { 1, 3, 3, 1 }));
    CHECK(r.padding() == "same");
    // Strides larger than the pool skip cells: rows {0}, {2}; cols {0}, {3}.
    MaxPooling2D<D> s(pool_opts({ 1 }, { 2, 3 }, "valid"));
    check_close(s(x).value(), arr({ 1, -1, 0, 0, 0, 0, 1, -1 }, { 1, 2, 2, 2 }));
}

TEST_CASE("max_pool: the gradient goes to the first maximum of each window, as TensorFlow's")
{
    // Ties: the 2x2 window holds 3, 3 / 3, 1; row-major order makes (0, 0) the first maximum.
    for (bool cf : { false, true }) {
        CAPTURE(cf);
        Tensor<D> x(arr({ 3, 3, 3, 1 }, { 1, 2, 2, 1 }));
        if (cf)
            x = Tensor<D>(arr({ 3, 3, 3, 1 }, { 1, 1, 2, 2 }));
        PoolSpec spec{ { 2, 2 }, { 2, 2 }, false, cf };
        GradientTape<D> tape;
        tape.watch(x);
        const Tensor<D> y = max_pool(x, spec);
        const auto g = tape.gradient(mul_scalar(y, 5.0), std::vector<Tensor<D>>{ x });
        check_close(g[0].value(), arr({ 5, 0, 0, 0 }, x.shape()));
    }
}

TEST_CASE("max_pool and average_pool: gradient checks over formats, paddings, strides, 1 and 2 axes")
{
    struct Case {
        std::vector<std::size_t> pool, strides;
        bool same;
    };
    // strides equal to, below (overlapping windows) and above the pool; odd sizes leave cells out.
    const std::vector<Case> cases2 = { { { 2, 2 }, { 2, 2 }, false }, { { 3, 2 }, { 1, 2 }, false },
                                       { { 2, 3 }, { 3, 1 }, false }, { { 2, 2 }, { 2, 2 }, true },
                                       { { 3, 3 }, { 2, 1 }, true },  { { 1, 2 }, { 3, 2 }, true } };
    const std::vector<Case> cases1 = { { { 2 }, { 2 }, false }, { { 3 }, { 1 }, false }, { { 2 }, { 3 }, true },
                                       { { 4 }, { 2 }, true } };
    int seed = 100;
    for (bool cf : { false, true })
        for (bool is_max : { true, false }) {
            for (const auto& c : cases2) {
                CAPTURE(cf);
                CAPTURE(is_max);
                CAPTURE(shape_str(c.pool));
                CAPTURE(shape_str(c.strides));
                CAPTURE(c.same);
                const PoolSpec spec{ c.pool, c.strides, c.same, cf };
                const Tensor<D> x = random_tensor(cf ? shape_t{ 2, 3, 5, 7 } : shape_t{ 2, 5, 7, 3 }, ++seed);
                xtape::testing::check_gradients(
                    [&](const std::vector<Tensor<D>>& in) { return is_max ? max_pool(in[0], spec) : average_pool(in[0], spec); },
                    { x });
            }
            for (const auto& c : cases1) {
                CAPTURE(cf);
                CAPTURE(is_max);
                CAPTURE(shape_str(c.pool));
                const PoolSpec spec{ c.pool, c.strides, c.same, cf };
                const Tensor<D> x = random_tensor(cf ? shape_t{ 2, 3, 9 } : shape_t{ 2, 9, 3 }, ++seed);
                xtape::testing::check_gradients(
                    [&](const std::vector<Tensor<D>>& in) { return is_max ? max_pool(in[0], spec) : average_pool(in[0], spec); },
                    { x });
            }
        }
}

TEST_CASE("max_pool and average_pool: gradients accumulate, float matches double, thread count does not matter")
{
    const PoolSpec spec{ { 3, 3 }, { 2, 2 }, true, false };
    // x used twice: both contributions add up.
    const Tensor<D> x = random_tensor({ 2, 6, 6, 3 }, 5);
    for (bool is_max : { true, false }) {
        GradientTape<D> tape;
        tape.watch(x);
        auto op = [&](const Tensor<D>& t) { return is_max ? max_pool(t, spec) : average_pool(t, spec); };
        const Tensor<D> y = add(op(x), op(x));
        const auto g2 = tape.gradient(y, std::vector<Tensor<D>>{ x });
        GradientTape<D> tape1;
        tape1.watch(x);
        const auto g1 = tape1.gradient(op(x), std::vector<Tensor<D>>{ x });
        check_close(g2[0].value(), 2.0 * g1[0].value());
    }
    // A problem large enough to run in parallel: 1 and 2 threads give the same bits.
    for (bool cf : { false, true })
        for (bool is_max : { true, false }) {
            const PoolSpec s{ { 3, 3 }, { 1, 2 }, true, cf };
            const Tensor<float> xf = random_tensor<float>({ 4, 16, 40, 24 }, 9);
            auto run = [&](int threads) {
                set_num_threads(threads);
                GradientTape<float> tape;
                tape.watch(xf);
                const Tensor<float> y = is_max ? max_pool(xf, s) : average_pool(xf, s);
                const Tensor<float> w = random_tensor<float>(y.shape(), 10);
                auto g = tape.gradient(mul(y, w), std::vector<Tensor<float>>{ xf });
                return std::make_pair(array_t<float>(y.value()), array_t<float>(g[0].value()));
            };
            const auto one = run(1), two = run(2);
            set_num_threads(2);
            CHECK(one.first == two.first);
            CHECK(one.second == two.second);
            // float runs the same kernels as double.
            const Tensor<D> xd(array_t<D>(xt::cast<D>(xf.value())));
            const Tensor<D> yd = is_max ? max_pool(xd, s) : average_pool(xd, s);
            CHECK(xt::allclose(xt::cast<D>(one.first), yd.value(), 1e-6, 1e-6));
        }
}

TEST_CASE("MaxPooling2D: shapes, errors, masks and configs")
{
    reset_layer_names();
    MaxPooling2D<float> p;
    CHECK(p.name() == "max_pooling2d");
    CHECK(p.compute_output_shape({ none_dim, 28, 28, 32 }) == dims_t{ none_dim, 14, 14, 32 });
    CHECK(p.compute_output_shape({ none_dim, none_dim, 7, 3 }) == dims_t{ none_dim, none_dim, 3, 3 });
    MaxPooling2D<float> cf(pool_opts({ 2 }, {}, "same", "channels_first"));
    CHECK(cf.compute_output_shape({ 8, 3, 7, 5 }) == dims_t{ 8, 3, 4, 3 });
    // Any spatial size after the first call (Keras fixes only the rank).
    CHECK(p(Tensor<float>::zeros({ 2, 6, 6, 1 })).shape() == shape_t{ 2, 3, 3, 1 });
    CHECK(p(Tensor<float>::zeros({ 1, 5, 9, 1 })).shape() == shape_t{ 1, 2, 4, 1 });
    // Errors name the layer and the shapes, as Keras's messages do.
    const std::string rank = error_of([&] { p(Tensor<float>::zeros({ 2, 6, 6 })); });
    CHECK(rank.find("max_pooling2d") != std::string::npos);
    CHECK(rank.find("expected ndim=4, found ndim=3") != std::string::npos);
    CHECK_THROWS_AS(p(Tensor<float>::zeros({ 2, 6, 6 })), ShapeError);
    const std::string small = error_of([&] { p(Tensor<float>::zeros({ 2, 1, 6, 1 })); });
    CHECK(small.find("Computed output size would be zero or negative") != std::string::npos);
    CHECK(small.find("(2, 1, 6, 1)") != std::string::npos);
    CHECK_THROWS_AS(p(Tensor<float>::zeros({ 2, 1, 6, 1 })), ShapeError);
    CHECK_THROWS_AS(MaxPooling2D<float>(pool_opts({ 2, 2, 2 }, {}, "valid")), ValueError);
    CHECK_THROWS_AS(MaxPooling2D<float>(pool_opts({ 0 }, {}, "valid")), ValueError);
    CHECK_THROWS_AS(MaxPooling2D<float>(pool_opts({ 2 }, { -1 }, "valid")), ValueError);
    CHECK(error_of([] { MaxPooling2D<float>(pool_opts({ 2 }, {}, "full")); }).find("'valid', 'same'") !=
          std::string::npos);
    CHECK_THROWS_AS(MaxPooling2D<float>(pool_opts({ 2 }, {}, "valid", "nhwc")), ValueError);
    // The mask stops here (Keras 3: pooling does not support masking).
    CHECK(!p.compute_mask(Tensor<float>::zeros({ 2, 6, 6, 1 }), Tensor<float>::full({ 2, 6, 6 }, 1.f)).defined());

    // Keras 3's config, and back.
    const json c = cf.get_config();
    CHECK(c["pool_size"] == json({ 2, 2 }));
    CHECK(c["strides"] == json({ 2, 2 }));
    CHECK(c["padding"] == "same");
    CHECK(c["data_format"] == "channels_first");
    check_round_trip<float>(cf);
    check_round_trip<float>(p);
    // tf.keras 2 (the layer of issue_9560's files, 1-D there) and Keras 1 (border_mode, dim_ordering).
    auto k2 = layer_from_config<float>(
        "MaxPooling2D", json::parse(R"({"name": "max_pooling2d_1", "trainable": true, "dtype": "float32",
          "strides": [1, 2], "pool_size": [3, 2], "padding": "valid", "data_format": "channels_last"})"));
    auto* k2p = dynamic_cast<MaxPooling2D<float>*>(k2.get());
    REQUIRE(k2p);
    CHECK(k2p->name() == "max_pooling2d_1");
    CHECK(k2p->pool_size() == std::vector<std::size_t>{ 3, 2 });
    CHECK(k2p->strides() == std::vector<std::size_t>{ 1, 2 });
    auto k1 = MaxPooling2D<float>::from_config(json::parse(
        R"({"name": "maxpooling2d_1", "trainable": true, "pool_size": [2, 2], "strides": null,
            "border_mode": "same", "dim_ordering": "th"})"));
    CHECK(k1->strides() == std::vector<std::size_t>{ 2, 2 });
    CHECK(k1->padding() == "same");
    CHECK(k1->data_format() == "channels_first");
    CHECK(MaxPooling2D<float>::from_config(json::parse(R"({"name": "m", "dim_ordering": "tf"})"))->data_format() ==
          "channels_last");
    CHECK(dynamic_cast<MaxPooling2D<float>*>(layer_from_config<float>("MaxPool2D", json::object()).get()));

    // Through the layer, in double, both formats.
    MaxPooling2D<D> gl(pool_opts({ 3, 2 }, { 2, 1 }, "same"));
    check_layer_gradients(gl, random_tensor({ 2, 5, 4, 3 }, 21));
    MaxPooling2D<D> gf(pool_opts({ 2 }, {}, "valid", "channels_first"));
    check_layer_gradients(gf, random_tensor({ 2, 3, 5, 4 }, 22));
}
