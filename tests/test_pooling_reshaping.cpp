// Pooling and reshaping layers over spatial data: MaxPooling1D/2D, AveragePooling1D/2D and the
// global poolings (framework/pooling.hpp); ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D,
// RepeatVector, Permute (framework/resampling.hpp) and SpatialDropout1D/2D. Keras's documented
// values, hand-computed cases, gradient checks in double for every option combination, masks,
// errors and configs in every Keras form.
// ctest-labels: sanitize
#include "framework/parallel.hpp"
#include "framework/pooling.hpp"
#include "framework/random.hpp"
#include "framework/resampling.hpp"
#include "framework/sequential.hpp"
#include "layers/flatten.hpp"
#include "layers/layer_config.hpp"
#include "layers/pooling/global_pooling.hpp"
#include "layers/pooling/pooling.hpp"
#include "layers/registry.hpp"
#include "layers/regularization/spatial_dropout.hpp"
#include "layers/reshaping/cropping.hpp"
#include "layers/reshaping/permute.hpp"
#include "layers/reshaping/repeat_vector.hpp"
#include "layers/reshaping/up_sampling.hpp"
#include "layers/reshaping/zero_padding.hpp"
#include "tests/helpers.hpp"
#include "tests/layer_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include <xtensor/xmath.hpp>

using namespace xtape;
using xtape::testing::arr;
using xtape::testing::check_close;
using xtape::testing::check_layer_gradients;
using xtape::testing::check_round_trip;
using xtape::testing::error_of;
using xtape::testing::random_tensor;
using D = double;

namespace {

/// (batch, h, w, c) -> (batch, c, h, w), or the 1-D (batch, steps, c) -> (batch, c, steps).
Tensor<D> to_channels_first(const Tensor<D>& x)
{
    return x.dim() == 4 ? transpose(x, { 0, 3, 1, 2 }) : transpose(x, { 0, 2, 1 });
}
Tensor<D> to_channels_last(const Tensor<D>& x)
{
    return x.dim() == 4 ? transpose(x, { 0, 2, 3, 1 }) : transpose(x, { 0, 2, 1 });
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
    CHECK(!p.supports_masking());

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

TEST_CASE("AveragePooling2D: Keras's documented examples; same padding averages the cells inside the input")
{
    const Tensor<D> x33(arr({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, { 1, 3, 3, 1 }));
    const Tensor<D> x34(arr({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, { 1, 3, 4, 1 }));
    for (const std::string fmt : { "channels_last", "channels_first" }) {
        CAPTURE(fmt);
        const bool cf = fmt == "channels_first";
        auto run = [&](const PoolingOptions& o, const Tensor<D>& x) {
            AveragePooling2D<D> layer(o);
            const Tensor<D> y = layer(cf ? to_channels_first(x) : x);
            return cf ? to_channels_last(y) : y;
        };
        // tf.keras's AveragePooling2D docstring values.
        check_close(run(pool_opts({ 2, 2 }, { 1, 1 }, "valid", fmt), x33).value(), arr({ 3, 4, 6, 7 }, { 1, 2, 2, 1 }));
        check_close(run(pool_opts({ 2, 2 }, { 2, 2 }, "valid", fmt), x34).value(), arr({ 3.5, 5.5 }, { 1, 1, 2, 1 }));
        // The right column and bottom row pool 2 cells, the corner 1: padding is not counted.
        check_close(run(pool_opts({ 2, 2 }, { 1, 1 }, "same", fmt), x33).value(),
                    arr({ 3, 4, 4.5, 6, 7, 7.5, 7.5, 8.5, 9 }, { 1, 3, 3, 1 }));
        // 3x3 strides 2 same on 3x3: out 2, padding (2-1)*2+3-3 = 2, one cell before and one after,
        // so the windows [-1, 2) and [1, 4) hold the cells [0, 2) and [1, 3): four cells each.
        check_close(run(pool_opts({ 3 }, { 2 }, "same", fmt), x33).value(),
                    arr({ 3, 4, 6, 7 }, { 1, 2, 2, 1 }));
    }
}

TEST_CASE("MaxPooling1D and AveragePooling1D: Keras's documented examples, both formats, configs")
{
    const Tensor<D> x(arr({ 1, 2, 3, 4, 5 }, { 1, 5, 1 }));
    for (const std::string fmt : { "channels_last", "channels_first" }) {
        CAPTURE(fmt);
        const bool cf = fmt == "channels_first";
        auto run = [&](bool is_max, const PoolingOptions& o) {
            std::shared_ptr<Layer<D>> l;
            if (is_max)
                l = std::make_shared<MaxPooling1D<D>>(o);
            else
                l = std::make_shared<AveragePooling1D<D>>(o);
            const Tensor<D> y = (*l)(cf ? to_channels_first(x) : x);
            return cf ? to_channels_last(y) : y;
        };
        check_close(run(true, pool_opts({ 2 }, { 1 }, "valid", fmt)).value(), arr({ 2, 3, 4, 5 }, { 1, 4, 1 }));
        check_close(run(true, pool_opts({ 2 }, { 2 }, "valid", fmt)).value(), arr({ 2, 4 }, { 1, 2, 1 }));
        check_close(run(true, pool_opts({ 2 }, { 1 }, "same", fmt)).value(), arr({ 2, 3, 4, 5, 5 }, { 1, 5, 1 }));
        check_close(run(false, pool_opts({ 2 }, { 1 }, "valid", fmt)).value(),
                    arr({ 1.5, 2.5, 3.5, 4.5 }, { 1, 4, 1 }));
        check_close(run(false, pool_opts({ 2 }, { 2 }, "valid", fmt)).value(), arr({ 1.5, 3.5 }, { 1, 2, 1 }));
        check_close(run(false, pool_opts({ 2 }, { 1 }, "same", fmt)).value(),
                    arr({ 1.5, 2.5, 3.5, 4.5, 5 }, { 1, 5, 1 }));
    }
    // Several channels in each layout.
    MaxPooling1D<D> m(pool_opts({ 3 }, { 2 }, "valid", "channels_first"));
    check_close(m(Tensor<D>(arr({ 1, 5, 2, 0, 3, -1, -5, -2, 0, -3 }, { 1, 2, 5 }))).value(),
                arr({ 5, 3, -1, 0 }, { 1, 2, 2 }));
    AveragePooling1D<D> a(pool_opts({ 2 }, {}, "valid"));
    check_close(a(Tensor<D>(arr({ 1, 10, 3, 30, 5, 50 }, { 1, 3, 2 }))).value(), arr({ 2, 20 }, { 1, 1, 2 }));
    CHECK(a.compute_output_shape({ none_dim, 7, 4 }) == dims_t{ none_dim, 3, 4 });
    check_layer_gradients(m, random_tensor({ 2, 3, 8 }, 31));
    check_layer_gradients(a, random_tensor({ 2, 8, 3 }, 32));

    // issue_9560's MaxPooling1D config (tf.keras 2.2.4-tf), Keras 1's pool_length / stride / border_mode.
    auto t = layer_from_config<float>("MaxPooling1D", json::parse(R"({"name": "max_pooling1d", "trainable": true,
        "dtype": "float32", "strides": [4], "pool_size": [4], "padding": "valid", "data_format": "channels_last"})"));
    CHECK(t->compute_output_shape({ none_dim, 2029, 32 }) == dims_t{ none_dim, 507, 32 });
    check_round_trip<float>(*t);
    auto k1 = AveragePooling1D<float>::from_config(
        json::parse(R"({"name": "averagepooling1d_1", "trainable": true, "pool_length": 3, "stride": null,
                        "border_mode": "same"})"));
    CHECK(k1->pool_size() == std::vector<std::size_t>{ 3 });
    CHECK(k1->strides() == std::vector<std::size_t>{ 3 });
    CHECK(k1->padding() == "same");
    CHECK(k1->get_config()["pool_size"] == json({ 3 }));
    // pretrainedResnet's AveragePooling2D.
    auto r = layer_from_config<float>("AveragePooling2D",
                                      json::parse(R"({"name": "average_pooling2d", "trainable": true, "dtype":
        "float32", "pool_size": [8, 8], "padding": "valid", "strides": [8, 8], "data_format": "channels_last"})"));
    CHECK(r->compute_output_shape({ none_dim, 8, 8, 64 }) == dims_t{ none_dim, 1, 1, 64 });
    CHECK_THROWS_AS(MaxPooling1D<float>::from_config(json::parse(R"({"pool_size": [2, 2]})")), ValueError);
    CHECK_THROWS_AS(MaxPooling1D<float>(pool_opts({ 2 }, {}, "valid"))(Tensor<float>::zeros({ 2, 4, 4, 1 })),
                    ShapeError);
}

// ---- global pooling -----------------------------------------------------------------------------------

TEST_CASE("Global pooling: hand-computed values, keepdims, both formats, gradients")
{
    // (1, 2, 3, 2): channel 0 holds 1..6, channel 1 holds -6, 5, 0, 2, -1, 3.
    const Tensor<D> x(arr({ 1, -6, 2, 5, 3, 0, 4, 2, 5, -1, 6, 3 }, { 1, 2, 3, 2 }));
    for (bool cf : { false, true })
        for (bool keep : { false, true }) {
            CAPTURE(cf);
            CAPTURE(keep);
            GlobalPoolingOptions o;
            o.data_format = cf ? "channels_first" : "channels_last";
            o.keepdims = keep;
            const Tensor<D> in = cf ? to_channels_first(x) : x;
            GlobalAveragePooling2D<D> avg(o);
            GlobalMaxPooling2D<D> mx(o);
            const shape_t want = !keep ? shape_t{ 1, 2 } : cf ? shape_t{ 1, 2, 1, 1 } : shape_t{ 1, 1, 1, 2 };
            check_close(avg(in).value(), arr({ 3.5, 0.5 }, want));
            check_close(mx(in).value(), arr({ 6, 5 }, want));
            CHECK(avg.compute_output_shape(dims_of(in.shape())) == dims_of(want));
            check_layer_gradients(avg, random_tensor(in.shape(), 41));
            check_layer_gradients(mx, random_tensor(in.shape(), 42));
            // 1-D: the rows of x as steps, (1, 6, 2) or (1, 2, 6).
            const Tensor<D> x1 = reshape(x, { 1, 6, 2 });
            const Tensor<D> in1 = cf ? to_channels_first(x1) : x1;
            GlobalAveragePooling1D<D> avg1(o);
            GlobalMaxPooling1D<D> mx1(o);
            const shape_t want1 = !keep ? shape_t{ 1, 2 } : cf ? shape_t{ 1, 2, 1 } : shape_t{ 1, 1, 2 };
            check_close(avg1(in1).value(), arr({ 3.5, 0.5 }, want1));
            check_close(mx1(in1).value(), arr({ 6, 5 }, want1));
            check_layer_gradients(avg1, random_tensor(in1.shape(), 43));
            check_layer_gradients(mx1, random_tensor(in1.shape(), 44));
        }
    // The max gradient goes to the first maximum.
    const Tensor<D> ties(arr({ 2, 7, 2, 7 }, { 1, 2, 2 }));
    GradientTape<D> tape;
    tape.watch(ties);
    const auto g = tape.gradient(global_max_pool(ties, false, false), std::vector<Tensor<D>>{ ties });
    check_close(g[0].value(), arr({ 1, 1, 0, 0 }, { 1, 2, 2 }));
    // Many steps, in parallel: 1 and 2 threads give the same bits; sums accumulate in double.
    for (bool cf : { false, true }) {
        const Tensor<float> big = random_tensor<float>({ 8, 64, 64, 16 }, 45);
        auto run = [&](int threads) {
            set_num_threads(threads);
            return array_t<float>(global_average_pool(big, cf, false).value());
        };
        const array_t<float> one = run(1), two = run(2);
        set_num_threads(2);
        CHECK(one == two);
    }
}

TEST_CASE("GlobalAveragePooling1D: a mask averages over the unmasked steps (Keras 3), no mask passes on")
{
    // Steps 0 and 2 of sample 0 count, all of sample 1 but the last.
    const Tensor<D> x(arr({ 1, 10, 2, 20, 4, 40, 3, 30, 5, 50, 7, 70 }, { 2, 3, 2 }));
    const Tensor<D> mask(arr({ 1, 0, 1, 1, 1, 0 }, { 2, 3 }));
    GlobalAveragePooling1D<D> gap;
    check_close(gap(x, false, mask).value(), arr({ 2.5, 25, 4, 40 }, { 2, 2 }));
    check_close(gap(x).value(), arr({ 7.0 / 3, 70.0 / 3, 5, 50 }, { 2, 2 }));
    CHECK(!gap.compute_mask(x, mask).defined());
    check_layer_gradients(gap, random_tensor({ 2, 3, 2 }, 51), false, false, mask);
    // channels_first: the mask is still (batch, steps).
    GlobalPoolingOptions o;
    o.data_format = "channels_first";
    o.keepdims = true;
    GlobalAveragePooling1D<D> gcf(o);
    check_close(gcf(to_channels_first(x), false, mask).value(), arr({ 2.5, 25, 4, 40 }, { 2, 2, 1 }));
    check_layer_gradients(gcf, random_tensor({ 2, 2, 3 }, 52), false, false, mask);
    // Every step masked: Keras's 0 / 0.
    const Tensor<D> none(arr({ 0, 0, 0, 1, 1, 1 }, { 2, 3 }));
    const Tensor<D> y = gap(x, false, none);
    CHECK(std::isnan(y.value()(0, 0)));
    CHECK(y.value()(1, 1) == doctest::Approx(50));
    // The max and the 2-D average ignore a mask, as Keras 3 does.
    GlobalMaxPooling1D<D> gmp;
    check_close(gmp(x, false, mask).value(), arr({ 4, 40, 7, 70 }, { 2, 2 }));
    CHECK_THROWS_AS(global_average_pool(x, false, false, Tensor<D>(arr({ 1, 1 }, { 2, 1 }))), ShapeError);
}

TEST_CASE("Global pooling: errors and configs in every Keras form")
{
    reset_layer_names();
    GlobalAveragePooling2D<float> g;
    CHECK(g.name() == "global_average_pooling2d");
    const std::string e = error_of([&] { g(Tensor<float>::zeros({ 2, 3, 4 })); });
    CHECK(e.find("global_average_pooling2d") != std::string::npos);
    CHECK(e.find("expected ndim=4, found ndim=3") != std::string::npos);
    CHECK_THROWS_AS(g(Tensor<float>::zeros({ 2, 3, 4 })), ShapeError);
    CHECK_THROWS_AS(GlobalMaxPooling1D<float>(GlobalPoolingOptions{ "NCW" }), ValueError);
    // GAPError's layer (tf.keras 2.2.4: no keepdims key).
    auto t = layer_from_config<float>("GlobalAveragePooling1D",
                                      json::parse(R"({"name": "global_average_pooling1d_5", "trainable": true,
                                                      "data_format": "channels_last"})"));
    CHECK(t->compute_output_shape({ none_dim, 398, 512 }) == dims_t{ none_dim, 512 });
    const json c = t->get_config();
    CHECK(c["keepdims"] == false);
    CHECK(c["data_format"] == "channels_last");
    check_round_trip<float>(*t);
    GlobalPoolingOptions o;
    o.data_format = "channels_first";
    o.keepdims = true;
    check_round_trip<float>(GlobalMaxPooling2D<float>(o));
    // Keras 1: dim_ordering.
    auto k1 = GlobalMaxPooling2D<float>::from_config(json::parse(R"({"name": "g", "dim_ordering": "th"})"));
    CHECK(k1->data_format() == "channels_first");
    CHECK(k1->compute_output_shape({ none_dim, 5, 7, 7 }) == dims_t{ none_dim, 5 });
    for (const char* alias : { "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D",
                               "AvgPool1D", "AvgPool2D", "MaxPool1D" })
        CHECK(is_registered_layer<double>(alias));
}

// ---- padding and cropping -----------------------------------------------------------------------------

namespace {
/// np.arange(prod(shape)).reshape(shape), as Keras's docstrings build their inputs.
Tensor<D> arange(const shape_t& shape)
{
    array_t<D> a = array_t<D>::from_shape(shape);
    for (std::size_t i = 0; i < a.size(); ++i)
        a.data()[i] = static_cast<D>(i);
    return Tensor<D>(a);
}
} // namespace

TEST_CASE("zero_pad and crop: hand-computed boxes, gradients, errors")
{
    const Tensor<D> x = arange({ 2, 3 });
    check_close(zero_pad(x, { { 1, 0 }, { 0, 2 } }).value(),
                arr({ 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 5, 0, 0 }, { 3, 5 }));
    check_close(crop(x, { { 0, 1 }, { 1, 1 } }).value(), arr({ 1 }, { 1, 1 }));
    check_close(crop(zero_pad(x, { { 2, 1 }, { 3, 0 } }), { { 2, 1 }, { 3, 0 } }).value(), x.value());
    const Tensor<D> r = random_tensor({ 2, 4, 3, 5 }, 61);
    xtape::testing::check_gradients([](const std::vector<Tensor<D>>& in) { return zero_pad(in[0], { { 0, 0 }, { 2, 1 }, { 0, 3 }, { 1, 0 } }); },
                                    { r });
    xtape::testing::check_gradients([](const std::vector<Tensor<D>>& in) { return crop(in[0], { { 0, 1 }, { 1, 2 }, { 0, 0 }, { 2, 2 } }); },
                                    { r });
    CHECK_THROWS_AS(zero_pad(x, { { 1, 1 } }), ValueError);
    CHECK_THROWS_AS(crop(x, { { 0, 0 }, { 2, 1 } }), ShapeError);
}

TEST_CASE("ZeroPadding1D/2D: Keras's documented examples, channels_first, gradients, configs")
{
    ZeroPadding1D<D> p1({ 2, 2 });
    check_close(p1(arange({ 2, 2, 3 })).value(),
                arr({ 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0,
                      0, 0, 0, 0, 0, 0, 6, 7, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0 },
                    { 2, 6, 3 }));
    ZeroPadding2D<D> p2;
    check_close(p2(arange({ 1, 1, 2, 2 })).value(),
                arr({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, { 1, 3, 4, 2 }));
    // channels_first pads the last two axes; asymmetric widths.
    ZeroPadding2D<D> cf({ { 0, 1 }, { 1, 0 } }, "channels_first");
    check_close(cf(arange({ 1, 2, 1, 2 })).value(), arr({ 0, 0, 1, 0, 0, 0, 0, 2, 3, 0, 0, 0 }, { 1, 2, 2, 3 }));
    CHECK(cf.compute_output_shape({ none_dim, 2, none_dim, 5 }) == dims_t{ none_dim, 2, none_dim, 6 });
    ZeroPadding1D<D> cf1({ 1, 0 }, "channels_first");
    check_close(cf1(arange({ 1, 2, 2 })).value(), arr({ 0, 0, 1, 0, 2, 3 }, { 1, 2, 3 }));
    check_layer_gradients(cf, random_tensor({ 2, 3, 2, 4 }, 62));
    check_layer_gradients(p1, random_tensor({ 2, 3, 2 }, 63));
    CHECK(!p2.supports_masking());
    CHECK_THROWS_AS(p2(Tensor<D>::zeros({ 1, 2, 2 })), ShapeError);

    // wgan_discriminator's layer (Keras 2.1.3), Keras 3's forms, Keras 1's 4-tuple and dictionaries.
    auto w = layer_from_config<float>("ZeroPadding2D", json::parse(R"({"name": "zero_padding2d_1", "trainable": true,
        "padding": [[0, 1], [0, 1]], "data_format": "channels_last"})"));
    CHECK(w->compute_output_shape({ none_dim, 7, 7, 64 }) == dims_t{ none_dim, 8, 8, 64 });
    check_round_trip<float>(*w);
    CHECK(w->get_config()["padding"] == json::parse("[[0, 1], [0, 1]]"));
    CHECK(ZeroPadding2D<float>::from_config(json::parse(R"({"padding": 3})"))->padding() ==
          pad_widths_t{ { 3, 3 }, { 3, 3 } });
    CHECK(ZeroPadding2D<float>::from_config(json::parse(R"({"padding": [1, 2]})"))->padding() ==
          pad_widths_t{ { 1, 1 }, { 2, 2 } });
    auto k1 = ZeroPadding2D<float>::from_config(json::parse(R"({"padding": [1, 2, 3, 4], "dim_ordering": "th"})"));
    CHECK(k1->padding() == pad_widths_t{ { 1, 2 }, { 3, 4 } });
    CHECK(k1->data_format() == "channels_first");
    CHECK(ZeroPadding2D<float>::from_config(json::parse(R"({"padding": {"top_pad": 1, "right_pad": 2}})"))
              ->padding() == pad_widths_t{ { 1, 0 }, { 0, 2 } });
    CHECK(ZeroPadding1D<float>::from_config(json::parse(R"({"padding": 2})"))->padding() == pad_widths_t{ { 2, 2 } });
    CHECK(ZeroPadding1D<float>::from_config(json::parse(R"({"padding": {"left_pad": 3}})"))->padding() ==
          pad_widths_t{ { 3, 0 } });
    ZeroPadding1D<float> z1({ 1, 3 });
    CHECK(z1.get_config()["padding"] == json({ 1, 3 }));
    check_round_trip<float>(z1);
    CHECK_THROWS_AS(ZeroPadding2D<float>::from_config(json::parse(R"({"padding": [1, 2, 3]})")), ValueError);
    CHECK_THROWS_AS(ZeroPadding1D<float>::from_config(json::parse(R"({"padding": -1})")), ValueError);
}

TEST_CASE("Cropping1D/2D: Keras's documented examples, channels_first, errors, gradients, configs")
{
    Cropping1D<D> c1(std::make_pair(std::size_t(1), std::size_t(1)));
    check_close(c1(arange({ 2, 3, 2 })).value(), arr({ 2, 3, 8, 9 }, { 2, 1, 2 }));
    Cropping2D<D> c2({ { 2, 2 }, { 4, 4 } });
    CHECK(c2(arange({ 2, 28, 28, 3 })).shape() == shape_t{ 2, 24, 20, 3 });
    // channels_first: x[:, :, 1:, 0:-1] of a 3x3 plane.
    Cropping2D<D> cf({ { 1, 0 }, { 0, 1 } }, "channels_first");
    check_close(cf(arange({ 1, 1, 3, 3 })).value(), arr({ 3, 4, 6, 7 }, { 1, 1, 2, 2 }));
    check_layer_gradients(cf, random_tensor({ 2, 2, 4, 3 }, 64));
    check_layer_gradients(c1, random_tensor({ 2, 4, 3 }, 65));
    // Errors: Keras's messages with the layer's name.
    const std::string e1 = error_of([&] { c1(Tensor<D>::zeros({ 1, 2, 3 })); });
    CHECK(e1.find("must be smaller than the input length") != std::string::npos);
    CHECK(e1.find("cropping1d") != std::string::npos);
    CHECK_THROWS_AS(c1(Tensor<D>::zeros({ 1, 2, 3 })), ShapeError);
    CHECK(error_of([&] { cf.compute_output_shape({ none_dim, 3, 1, 9 }); })
              .find("should be smaller than the corresponding spatial dimension") != std::string::npos);
    CHECK(cf.compute_output_shape({ none_dim, 3, none_dim, 9 }) == dims_t{ none_dim, 3, none_dim, 8 });
    CHECK(!cf.supports_masking());
    // Configs.
    CHECK(c1.get_config()["cropping"] == json({ 1, 1 }));
    CHECK(!c1.get_config().contains("data_format"));
    check_round_trip<D>(c1);
    check_round_trip<D>(cf);
    CHECK(cf.get_config()["cropping"] == json::parse("[[1, 0], [0, 1]]"));
    CHECK(Cropping2D<float>::from_config(json::parse(R"({"cropping": 2})"))->cropping() ==
          pad_widths_t{ { 2, 2 }, { 2, 2 } });
    CHECK(Cropping2D<float>::from_config(json::parse(R"({"cropping": [[1, 2], [3, 4]], "dim_ordering": "th"})"))
              ->data_format() == "channels_first");
    CHECK(Cropping1D<float>::from_config(json::parse(R"({"cropping": [0, 2]})"))->cropping() == pad_widths_t{ { 0, 2 } });
}

// ---- up-sampling, RepeatVector, Permute ---------------------------------------------------------------------

TEST_CASE("repeat_elements: values on several axes, gradients, thread count")
{
    check_close(repeat_elements(arange({ 2, 2 }), { 2, 3 }).value(),
                arr({ 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 3, 3, 3 }, { 4, 6 }));
    check_close(repeat_elements(arange({ 3 }), { 2 }).value(), arr({ 0, 0, 1, 1, 2, 2 }, { 6 }));
    for (const std::vector<std::size_t>& reps : std::vector<std::vector<std::size_t>>{
             { 1, 2, 3, 1 }, { 1, 1, 2, 2 }, { 2, 1, 1, 3 }, { 1, 3, 1, 1 } }) {
        CAPTURE(shape_str(reps));
        xtape::testing::check_gradients(
            [&](const std::vector<Tensor<D>>& in) { return repeat_elements(in[0], reps); }, { random_tensor({ 2, 3, 2, 4 }, 66) });
    }
    CHECK_THROWS_AS(repeat_elements(arange({ 2, 2 }), { 2 }), ValueError);
    CHECK_THROWS_AS(repeat_elements(arange({ 2, 2 }), { 2, 0 }), ValueError);
    const Tensor<float> big = random_tensor<float>({ 8, 32, 32, 16 }, 67);
    auto run = [&](int threads) {
        set_num_threads(threads);
        GradientTape<float> tape;
        tape.watch(big);
        const Tensor<float> y = repeat_elements(big, { 1, 2, 2, 1 });
        auto g = tape.gradient(mul(y, random_tensor<float>(y.shape(), 68)), std::vector<Tensor<float>>{ big });
        return array_t<float>(g[0].value());
    };
    const array_t<float> one = run(1), two = run(2);
    set_num_threads(2);
    CHECK(one == two);
}

TEST_CASE("UpSampling1D/2D: Keras's documented examples, channels_first, bilinear, gradients, configs")
{
    UpSampling1D<D> u1;
    check_close(u1(arange({ 2, 2, 3 })).value(),
                arr({ 0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 6, 7, 8, 9, 10, 11, 9, 10, 11 }, { 2, 4, 3 }));
    UpSampling2D<D> u2({ 1, 2 });
    check_close(u2(arange({ 2, 2, 1, 3 })).value(),
                arr({ 0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8, 6, 7, 8, 9, 10, 11, 9, 10, 11 }, { 2, 2, 2, 3 }));
    UpSampling2D<D> cf({ 2, 1 }, "channels_first");
    check_close(cf(arange({ 1, 2, 1, 2 })).value(), arr({ 0, 1, 0, 1, 2, 3, 2, 3 }, { 1, 2, 2, 2 }));
    CHECK(cf.compute_output_shape({ none_dim, 2, 5, none_dim }) == dims_t{ none_dim, 2, 10, none_dim });
    check_layer_gradients(u1, random_tensor({ 2, 3, 2 }, 69));
    check_layer_gradients(u2, random_tensor({ 2, 2, 3, 2 }, 70));
    check_layer_gradients(cf, random_tensor({ 2, 2, 3, 2 }, 71));

    // Bilinear, tf.image.resize's half-pixel centres: [0, 4] -> [0, 1, 3, 4], separably on both axes.
    for (bool channels_first : { false, true }) {
        CAPTURE(channels_first);
        UpSampling2D<D> b({ 2, 2 }, channels_first ? "channels_first" : "channels_last", "Bilinear");
        CHECK(b.interpolation() == "bilinear");
        const Tensor<D> x(arr({ 0, 4, 8, 12 }, { 1, 2, 2, 1 }));
        const Tensor<D> in = channels_first ? to_channels_first(x) : x;
        const Tensor<D> y = b(in);
        check_close((channels_first ? to_channels_last(y) : y).value(),
                    arr({ 0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12 }, { 1, 4, 4, 1 }));
        UpSampling2D<D> b3({ 3, 2 }, channels_first ? "channels_first" : "channels_last", "bilinear");
        check_layer_gradients(b3, random_tensor(channels_first ? shape_t{ 2, 3, 3, 2 } : shape_t{ 2, 3, 2, 3 }, 72));
    }
    CHECK_THROWS_AS(UpSampling2D<float>({ 2, 2 }, "channels_last", "bicubic"), NotImplementedError);
    CHECK_THROWS_AS(UpSampling2D<float>({ 2, 2 }, "channels_last", "nearest-ish"), ValueError);
    CHECK_THROWS_AS(UpSampling1D<float>(0), ValueError);
    CHECK_THROWS_AS(u1(Tensor<D>::zeros({ 2, 3 })), ShapeError);
    CHECK(!u2.supports_masking());

    // dcgan_generator's layer (Keras 2.1.3: no interpolation key), Keras 1's length and dim_ordering.
    auto d = layer_from_config<float>("UpSampling2D", json::parse(R"({"name": "up_sampling2d_1", "trainable": true,
        "size": [2, 2], "data_format": "channels_last"})"));
    CHECK(d->compute_output_shape({ none_dim, 7, 7, 128 }) == dims_t{ none_dim, 14, 14, 128 });
    CHECK(d->get_config()["interpolation"] == "nearest");
    check_round_trip<float>(*d);
    CHECK(UpSampling2D<float>::from_config(json::parse(R"({"size": 3, "dim_ordering": "th"})"))->size() ==
          std::vector<std::size_t>{ 3, 3 });
    CHECK(UpSampling1D<float>::from_config(json::parse(R"({"length": 3})"))->size() == 3);
    check_round_trip<D>(u1);
    CHECK(u1.get_config()["size"] == 2);
}

TEST_CASE("RepeatVector and Permute: values, shapes, errors, gradients, configs")
{
    RepeatVector<D> rv(3);
    check_close(rv(arange({ 2, 2 })).value(), arr({ 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3 }, { 2, 3, 2 }));
    CHECK(rv.compute_output_shape({ none_dim, 51 }) == dims_t{ none_dim, 3, 51 });
    check_layer_gradients(rv, random_tensor({ 3, 4 }, 73));
    CHECK_THROWS_AS(rv(Tensor<D>::zeros({ 2, 2, 2 })), ShapeError);
    CHECK_THROWS_AS(RepeatVector<float>(0), ValueError);
    // GAPError's RepeatVector (tf.keras 2.2.4).
    auto g = layer_from_config<float>("RepeatVector",
                                      json::parse(R"({"name": "repeat_vector_5", "trainable": true, "n": 400})"));
    CHECK(g->compute_output_shape({ none_dim, 512 }) == dims_t{ none_dim, 400, 512 });
    check_round_trip<float>(*g);
    CHECK(!rv.supports_masking());

    // Keras's docstring: Permute((2, 1)) turns (None, 10, 64) into (None, 64, 10).
    Permute<D> p({ 2, 1 });
    CHECK(p.compute_output_shape({ none_dim, 10, 64 }) == dims_t{ none_dim, 64, 10 });
    check_close(p(arange({ 1, 2, 3 })).value(), arr({ 0, 3, 1, 4, 2, 5 }, { 1, 3, 2 }));
    Permute<D> p3({ 3, 1, 2 });
    const Tensor<D> x = random_tensor({ 2, 3, 4, 5 }, 74);
    const Tensor<D> y = p3(x);
    REQUIRE(y.shape() == shape_t{ 2, 5, 3, 4 });
    CHECK(y.value()(1, 4, 2, 3) == x.value()(1, 2, 3, 4));
    check_layer_gradients(p3, x);
    CHECK(error_of([] { Permute<float>({ 0, 1 }); }).find("must be consecutive and start from 1") != std::string::npos);
    CHECK_THROWS_AS(Permute<float>({ 1, 1 }), ValueError);
    CHECK_THROWS_AS(p(Tensor<D>::zeros({ 2, 2 })), ShapeError);
    CHECK(p3.get_config()["dims"] == json({ 3, 1, 2 }));
    check_round_trip<D>(p3);
}

// ---- SpatialDropout ---------------------------------------------------------------------------------------

TEST_CASE("SpatialDropout1D/2D: one draw per sample and channel, Keras's scaling, seeds, masks, configs")
{
    const double rate = 0.4;
    for (int axes : { 1, 2 })
        for (bool cf : { false, true }) {
            if (axes == 1 && cf)
                continue;
            CAPTURE(axes);
            CAPTURE(cf);
            std::shared_ptr<Layer<D>> layer;
            if (axes == 1)
                layer = std::make_shared<SpatialDropout1D<D>>(rate, 7);
            else
                layer = std::make_shared<SpatialDropout2D<D>>(rate, cf ? "channels_first" : "channels_last", 7);
            const std::size_t n = 64, c = 32, s = 6;
            const shape_t shape = axes == 1 ? shape_t{ n, s, c } : cf ? shape_t{ n, c, 2, 3 } : shape_t{ n, 2, 3, c };
            const Tensor<D> x = Tensor<D>::full(shape, 1.0);
            const Tensor<D> y = (*layer)(x, true);
            // Per (sample, channel): all spatial values equal, either 0 or 1 / (1 - rate).
            std::size_t dropped = 0;
            for (std::size_t b = 0; b < n; ++b)
                for (std::size_t ch = 0; ch < c; ++ch) {
                    std::vector<D> vals;
                    for (std::size_t k = 0; k < s; ++k) {
                        const std::size_t i = axes == 1 || !cf ? (b * s + k) * c + ch : (b * c + ch) * s + k;
                        vals.push_back(y.value().data()[i]);
                    }
                    for (D v : vals)
                        CHECK(v == vals[0]);
                    CHECK((vals[0] == 0.0 || vals[0] == doctest::Approx(1.0 / (1.0 - rate))));
                    dropped += vals[0] == 0.0;
                }
            // 2048 draws at rate 0.4: 819 expected, sd 22.
            CHECK(dropped > 700);
            CHECK(dropped < 940);
            // Inference is the identity; a mask passes through.
            CHECK((*layer)(x, false).value() == x.value());
            const Tensor<D> mask = Tensor<D>::full({ n, s }, 1.0);
            CHECK(layer->compute_mask(x, mask).node() == mask.node());
        }
    // The same seed draws the same maps; the gradient is the same mask.
    SpatialDropout2D<D> a(0.5, "channels_last", 11), b(0.5, "channels_last", 11);
    const Tensor<D> x = random_tensor({ 4, 3, 3, 5 }, 75);
    CHECK(a(x, true).value() == b(x, true).value());
    Tensor<D> xv = x;
    GradientTape<D> tape;
    tape.watch(xv);
    const Tensor<D> y = a(xv, true);
    const auto gr = tape.gradient(y, std::vector<Tensor<D>>{ xv });
    for (std::size_t i = 0; i < x.size(); ++i)
        CHECK(gr[0].value().data()[i] * x.value().data()[i] == doctest::Approx(y.value().data()[i]));
    // set_random_seed fixes unseeded layers.
    set_random_seed(3);
    SpatialDropout1D<D> u(0.5);
    set_random_seed(3);
    SpatialDropout1D<D> v(0.5);
    CHECK(u(random_tensor({ 4, 3, 5 }, 76), true).value() == v(random_tensor({ 4, 3, 5 }, 76), true).value());

    CHECK_THROWS_AS(SpatialDropout1D<float>(1.5), ValueError);
    CHECK_THROWS_AS(SpatialDropout1D<float>(0.5)(Tensor<float>::zeros({ 2, 3 }), true), ShapeError);
    // Configs: Keras 3 (rate, seed, data_format), Keras 1 (p, dim_ordering).
    SpatialDropout2D<float> s2(0.25, "channels_first", 5);
    const json c = s2.get_config();
    CHECK(c["rate"] == 0.25);
    CHECK(c["seed"] == 5);
    CHECK(c["data_format"] == "channels_first");
    check_round_trip<float>(s2);
    check_round_trip<float>(SpatialDropout1D<float>(0.1));
    auto k1 = layer_from_config<float>("SpatialDropout2D", json::parse(R"({"name": "s", "p": 0.3, "dim_ordering": "th"})"));
    auto* k1s = dynamic_cast<SpatialDropout2D<float>*>(k1.get());
    REQUIRE(k1s);
    CHECK(k1s->rate() == doctest::Approx(0.3));
    CHECK(k1s->data_format() == "channels_first");
}

// ---- masks through a model ------------------------------------------------------------------------------

TEST_CASE("masks: Keras 3's rules through a Sequential model")
{
    // Steps 0 and 2 of sample 0 count, steps 0 and 1 of sample 1.
    const Tensor<D> x(arr({ 1, 10, 2, 20, 4, 40, 3, 30, 5, 50, 7, 70 }, { 2, 3, 2 }));
    const Tensor<D> mask(arr({ 1, 0, 1, 1, 1, 0 }, { 2, 3 }));
    const array_t<D> masked_mean = arr({ 2.5, 25, 4, 40 }, { 2, 2 });
    const array_t<D> plain_mean = arr({ 7.0 / 3, 70.0 / 3, 5, 50 }, { 2, 2 });
    // SpatialDropout1D passes the mask on (and is the identity in inference).
    Sequential<D> a({ std::make_shared<SpatialDropout1D<D>>(0.5, 1), std::make_shared<GlobalAveragePooling1D<D>>() });
    check_close(a(x, false, mask).value(), masked_mean);
    // Layers that do not support masking stop it: the average then runs over every step.
    for (const LayerPtr<D>& stop : std::vector<LayerPtr<D>>{
             std::make_shared<ZeroPadding1D<D>>(std::make_pair(std::size_t(0), std::size_t(0))),
             std::make_shared<Cropping1D<D>>(std::make_pair(std::size_t(0), std::size_t(0))),
             std::make_shared<UpSampling1D<D>>(1), std::make_shared<MaxPooling1D<D>>(pool_opts({ 1 }, {}, "valid")),
             std::make_shared<AveragePooling1D<D>>(pool_opts({ 1 }, {}, "valid")),
             std::make_shared<Permute<D>>(std::vector<long>{ 1, 2 }) }) {
        CAPTURE(stop->class_name());
        CHECK(!stop->supports_masking());
        Sequential<D> b({ stop, std::make_shared<GlobalAveragePooling1D<D>>() });
        check_close(b(x, false, mask).value(), plain_mean);
    }
    // Flatten, global pooling and RepeatVector end a mask too.
    CHECK(!Flatten<D>().supports_masking());
    CHECK(!GlobalMaxPooling1D<D>().supports_masking());
    CHECK(!GlobalAveragePooling1D<D>().compute_mask(x, mask).defined());
}
