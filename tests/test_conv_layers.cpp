// The convolution layers: Keras's weights, configs (Keras 3 keys on write, Keras 1/2 names on
// read), argument errors, gradient checks in double through every layer kind and data format,
// BatchNormalization after them (axis -1 and 1) training, and the real Keras files with
// convolutions (stored outputs and known weights).
#include "framework/io/hdf5.hpp"
#include "framework/io/npy.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/activation.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/convolutional/base_conv.hpp"
#include "layers/dense.hpp"
#include "layers/flatten.hpp"
#include "layers/fold_batch_norm.hpp"
#include "layers/input_layer.hpp"
#include "layers/registry.hpp"
#include "saving/keras_h5.hpp"
#include "saving/keras_h5_legacy_kernels.hpp"
#include "tests/helpers.hpp"
#include "tests/layer_helpers.hpp"

#include <doctest/doctest.h>
#include <xtensor/xview.hpp>

#include <cmath>
#include <functional>

using namespace xtape;
using xtape::testing::contains;
using xtape::testing::error_of;
using xtape::testing::check_layer_gradients;
using xtape::testing::check_round_trip;
using xtape::testing::keras_file;
using xtape::testing::random_tensor;
using D = double;

namespace {

ConvLayerOptions<D> opts(long filters, std::vector<std::size_t> k)
{
    ConvLayerOptions<D> o;
    o.filters = filters;
    o.kernel_size = std::move(k);
    return o;
}

PredictOptions<float> quiet()
{
    PredictOptions<float> p;
    p.verbose = 0;
    return p;
}

double max_abs_diff(const array_t<float>& a, const array_t<float>& b)
{
    REQUIRE(shape_of(a) == shape_of(b));
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
    return m;
}

} // namespace

TEST_CASE("Conv2D: Keras's weights, names, output shapes and config keys")
{
    reset_layer_names();
    Conv2D<float> c(32, { 3 }, "same", "relu");
    CHECK(c.name() == "conv2d");
    c.build_once({ none_dim, 28, 28, 3 });
    const auto w = c.weights();
    REQUIRE(w.size() == 2);
    CHECK(w[0].name() == "kernel");
    CHECK(w[0].shape() == shape_t{ 3, 3, 3, 32 });
    CHECK(w[1].name() == "bias");
    CHECK(w[1].shape() == shape_t{ 32 });
    CHECK(c.compute_output_shape({ none_dim, 28, 28, 3 }) == dims_t{ none_dim, 28, 28, 32 });
    const json cfg = c.get_config();
    for (const char* key : { "name", "trainable", "dtype", "filters", "kernel_size", "strides", "padding", "data_format",
                             "dilation_rate", "groups", "activation", "use_bias", "kernel_initializer",
                             "bias_initializer", "kernel_regularizer", "bias_regularizer", "activity_regularizer",
                             "kernel_constraint", "bias_constraint" })
        CHECK_MESSAGE(cfg.contains(key), key);
    CHECK(cfg["kernel_size"] == json::array({ 3, 3 }));
    CHECK(cfg["strides"] == json::array({ 1, 1 }));
    CHECK(cfg["data_format"] == "channels_last");
    check_round_trip<float>(c);

    Conv2D<float> s(8, { 3, 3 });
    CHECK(s.name() == "conv2d_1");
    ConvLayerOptions<float> o;
    o.filters = 4;
    o.kernel_size = { 3 };
    o.strides = { 2 };
    o.data_format = "channels_first";
    Conv2D<float> cf(o);
    CHECK(cf.compute_output_shape({ none_dim, 3, 9, 8 }) == dims_t{ none_dim, 4, 4, 3 });
    o.padding = "same";
    Conv2D<float> cfs(o);
    CHECK(cfs.compute_output_shape({ none_dim, 3, 9, 8 }) == dims_t{ none_dim, 4, 5, 4 });
}

TEST_CASE("convolution layers: weights of every kind in Keras's order and shapes")
{
    reset_layer_names();
    ConvLayerOptions<float> o;
    o.filters = 6;
    o.kernel_size = { 3 };
    o.depth_multiplier = 2;
    DepthwiseConv2D<float> dw(o);
    dw.build_once({ none_dim, 8, 8, 4 });
    CHECK(dw.name() == "depthwise_conv2d");
    CHECK(dw.weights()[0].name() == "depthwise_kernel");
    CHECK(dw.weights()[0].shape() == shape_t{ 3, 3, 4, 2 });
    CHECK(dw.weights()[1].shape() == shape_t{ 8 });
    CHECK(dw.compute_output_shape({ none_dim, 8, 8, 4 }) == dims_t{ none_dim, 6, 6, 8 });
    SeparableConv2D<float> sep(o);
    sep.build_once({ none_dim, 8, 8, 4 });
    CHECK(sep.name() == "separable_conv2d");
    REQUIRE(sep.weights().size() == 3);
    CHECK(sep.weights()[0].shape() == shape_t{ 3, 3, 4, 2 });
    CHECK(sep.weights()[1].name() == "pointwise_kernel");
    CHECK(sep.weights()[1].shape() == shape_t{ 1, 1, 8, 6 });
    CHECK(sep.weights()[2].shape() == shape_t{ 6 });
    o.strides = { 2 };
    Conv2DTranspose<float> tr(o);
    tr.build_once({ none_dim, 5, 5, 4 });
    CHECK(tr.name() == "conv2d_transpose");
    CHECK(tr.weights()[0].shape() == shape_t{ 3, 3, 6, 4 });
    CHECK(tr.compute_output_shape({ none_dim, 5, 5, 4 }) == dims_t{ none_dim, 11, 11, 6 });
    CHECK(tr.get_config()["output_padding"].is_null());
    Conv1D<float> c1(3, { 5 });
    c1.build_once({ none_dim, 20, 2 });
    CHECK(c1.weights()[0].shape() == shape_t{ 5, 2, 3 });
    Conv3D<float> c3(2, { 2, 3, 1 });
    c3.build_once({ none_dim, 4, 5, 6, 3 });
    CHECK(c3.weights()[0].shape() == shape_t{ 2, 3, 1, 3, 2 });
    for (const Layer<float>* l : std::vector<const Layer<float>*>{ &dw, &sep, &tr, &c1, &c3 })
        check_round_trip<float>(*l);
}

TEST_CASE("convolution layers: Keras's argument errors")
{
    CHECK(error_of([] { Conv2D<float>(0, { 3 }); }).find("Invalid value for argument `filters`. Expected a strictly "
                                                        "positive value. Received filters=0.") != std::string::npos);
    CHECK(error_of([] { Conv2D<float>(4, { 0, 3 }); }).find("The argument `kernel_size` cannot contain 0") !=
          std::string::npos);
    CHECK(error_of([] { Conv2D<float>(4, { 3, 3, 3 }); }).find("must be a tuple of 2 integers") != std::string::npos);
    CHECK(error_of([] { Conv2D<float>(4, { 3 }, "causal"); }).find("The `padding` argument must be one of") !=
          std::string::npos);
    CHECK_NOTHROW(Conv1D<float>(4, { 3 }, "causal"));
    ConvLayerOptions<float> o;
    o.filters = 6;
    o.kernel_size = { 3 };
    o.groups = 4;
    CHECK(error_of([&] { Conv2D<float> c(o); })
              .find("The number of filters must be evenly divisible by the number of groups. Received: groups=4, "
                    "filters=6.") != std::string::npos);
    o.groups = 3;
    Conv2D<float> g(o);
    CHECK(error_of([&] { g.build_once({ none_dim, 5, 5, 4 }); })
              .find("The number of input channels must be evenly divisible by the number of groups") !=
          std::string::npos);
    o.groups = 1;
    o.strides = { 2 };
    o.dilation_rate = { 2 };
    CHECK(error_of([&] { Conv2D<float> c(o); }).find("`strides > 1` not supported in conjunction with `dilation_rate > 1`") !=
          std::string::npos);
    Conv2D<float> c(4, { 3 }, "valid", "linear", "c");
    c(Tensor<float>::zeros({ 1, 5, 5, 2 }));
    CHECK(error_of([&] { c(Tensor<float>::zeros({ 1, 5, 5, 3 })); })
              .find("Input 0 of layer \"c\" is incompatible with the layer: expected axis -1 of input shape to have "
                    "value 2") != std::string::npos);
    CHECK(error_of([&] { c(Tensor<float>::zeros({ 5, 5, 2 })); }).find("expected ndim=4, found ndim=3") !=
          std::string::npos);
}

TEST_CASE("convolution layers: Keras 1 and Keras 2 configs")
{
    // Keras 1.2.2's Convolution2D (as conv2d_theano_1.h5 stores it)
    const json k1 = { { "name", "convolution2d_1" }, { "trainable", true }, { "nb_filter", 6 }, { "nb_row", 3 },
                      { "nb_col", 2 }, { "init", "glorot_uniform" }, { "activation", "relu" },
                      { "border_mode", "same" }, { "subsample", { 2, 1 } }, { "dim_ordering", "th" },
                      { "W_regularizer", nullptr }, { "b_regularizer", nullptr }, { "activity_regularizer", nullptr },
                      { "W_constraint", nullptr }, { "b_constraint", nullptr }, { "bias", false } };
    LayerPtr<float> l = layer_from_config<float>("Convolution2D", k1);
    const json c = l->get_config();
    CHECK(l->class_name() == "Conv2D");
    CHECK(c["filters"] == 6);
    CHECK(c["kernel_size"] == json::array({ 3, 2 }));
    CHECK(c["strides"] == json::array({ 2, 1 }));
    CHECK(c["padding"] == "same");
    CHECK(c["data_format"] == "channels_first");
    CHECK(c["activation"] == "relu");
    CHECK(c["use_bias"] == false);
    // Keras 1's Convolution1D
    const json k1d = { { "name", "c1" }, { "nb_filter", 4 }, { "filter_length", 5 }, { "border_mode", "valid" },
                       { "subsample_length", 2 }, { "activation", "linear" } };
    LayerPtr<float> l1 = layer_from_config<float>("Convolution1D", k1d);
    CHECK(l1->class_name() == "Conv1D");
    CHECK(l1->get_config()["kernel_size"] == json::array({ 5 }));
    CHECK(l1->get_config()["strides"] == json::array({ 2 }));
    // Keras 2 (2.1.3 cnn_batch_norm): no groups key, lists for tuples
    const json k2 = { { "name", "conv2d_1" }, { "filters", 1 }, { "kernel_size", { 3, 3 } }, { "strides", { 1, 1 } },
                      { "padding", "valid" }, { "data_format", "channels_last" }, { "dilation_rate", { 1, 1 } },
                      { "activation", "linear" }, { "use_bias", true },
                      { "kernel_initializer", { { "class_name", "VarianceScaling" },
                                                { "config", { { "scale", 1.0 }, { "mode", "fan_avg" },
                                                              { "distribution", "uniform" }, { "seed", nullptr } } } } },
                      { "bias_initializer", { { "class_name", "Zeros" }, { "config", json::object() } } } };
    LayerPtr<float> l2 = layer_from_config<float>("Conv2D", k2);
    CHECK(l2->get_config()["groups"] == 1);
    // Keras 3 DepthwiseConv2D keys
    const json dw = { { "name", "dw" }, { "kernel_size", { 3, 3 } }, { "depth_multiplier", 2 }, { "use_bias", false },
                      { "padding", "same" } };
    LayerPtr<float> l3 = layer_from_config<float>("DepthwiseConv2D", dw);
    CHECK(l3->get_config()["depth_multiplier"] == 2);
    CHECK(l3->get_config().contains("depthwise_initializer"));
}

TEST_CASE("convolution layers: Keras 1 Deconvolution2D keeps its output_shape and kernel layout (tf and th)")
{
    // A Keras 1.2.2 file as Keras 1 wrote it: Deconvolution2D(3, 2, 2, output_shape=..., subsample=(2, 2))
    // on a 2x2 input with 2 channels. Its kernel is Convolution2D's (rows, cols, stack, filters) for "tf"
    // and (filters, stack, rows, cols) for "th"; TensorFlow's conv2d_transpose gives
    // y[i * 2 + r, j * 2 + c, f] = b[f] + sum_s x[i, j, s] W[r, c, s, f] (no kernel flip).
    const std::size_t F = 3, S = 2;
    array_t<float> x = xt::arange<float>(1.f, 9.f);
    x.reshape({ 1, 2, 2, S });
    x(0, 1, 0, 1) = -2.f;
    array_t<float> w_tf = xt::arange<float>(-11.f, 13.f);
    w_tf.reshape({ 2, 2, S, F });
    const array_t<float> b = { 0.5f, -1.f, 2.f };
    for (const std::string ordering : { "tf", "th" }) {
        for (const long size : { 4L, 5L }) { // 4 is Keras 2's default size, 5 needs output_padding 1
            CAPTURE(ordering);
            CAPTURE(size);
            const bool th = ordering == "th";
            xtape::testing::TempDir tmp("deconv2d_k1");
            const std::string path = tmp.file("k1.h5");
            json output_shape = th ? json::array({ nullptr, F, size, size }) : json::array({ nullptr, size, size, F });
            json layer = { { "class_name", "Deconvolution2D" },
                           { "config",
                             { { "name", "deconvolution2d_1" }, { "trainable", true },
                               { "batch_input_shape", json::array({ nullptr, 2, 2, 2 }) }, { "input_dtype", "float32" },
                               { "nb_filter", F }, { "nb_row", 2 }, { "nb_col", 2 }, { "init", "glorot_uniform" },
                               { "activation", "linear" }, { "border_mode", "valid" }, { "subsample", { 2, 2 } },
                               { "dim_ordering", ordering }, { "W_regularizer", nullptr }, { "b_regularizer", nullptr },
                               { "activity_regularizer", nullptr }, { "W_constraint", nullptr },
                               { "b_constraint", nullptr }, { "bias", true }, { "output_shape", output_shape } } } };
            const json model_config = { { "class_name", "Sequential" }, { "config", json::array({ layer }) } };
            {
                io::H5File f = io::H5File::create(path);
                io::H5Group root = f.root();
                root.write_string_attribute("keras_version", "1.2.2");
                root.write_string_attribute("model_config", model_config.dump());
                io::H5Group mw = root.create_group("model_weights");
                mw.write_string_array_attribute("layer_names", { "deconvolution2d_1" });
                io::H5Group d = mw.create_group("deconvolution2d_1");
                d.write_string_array_attribute("weight_names", { "deconvolution2d_1_W", "deconvolution2d_1_b" });
                d.write_dataset<float>("deconvolution2d_1_W", th ? array_t<float>(xt::transpose(w_tf, { 3, 2, 0, 1 })) : w_tf);
                d.write_dataset<float>("deconvolution2d_1_b", b);
                f.close();
            }
            auto m = load_model<float>(path);
            const array_t<float> xin = th ? array_t<float>(xt::transpose(x, { 0, 3, 1, 2 })) : x;
            array_t<float> y = m->predict(xin, quiet());
            if (th)
                y = array_t<float>(xt::transpose(y, { 0, 2, 3, 1 }));
            REQUIRE(shape_of(y) == shape_t{ 1, std::size_t(size), std::size_t(size), F });
            array_t<float> expected = xt::zeros<float>({ std::size_t(size), std::size_t(size), F });
            for (std::size_t r = 0; r < std::size_t(size); ++r)
                for (std::size_t c = 0; c < std::size_t(size); ++c)
                    for (std::size_t f = 0; f < F; ++f)
                        expected(r, c, f) = b(f);
            for (std::size_t i = 0; i < 2; ++i)
                for (std::size_t j = 0; j < 2; ++j)
                    for (std::size_t r = 0; r < 2; ++r)
                        for (std::size_t c = 0; c < 2; ++c)
                            for (std::size_t f = 0; f < F; ++f)
                                for (std::size_t s = 0; s < S; ++s)
                                    expected(i * 2 + r, j * 2 + c, f) += x(0, i, j, s) * w_tf(r, c, s, f);
            CHECK(max_abs_diff(array_t<float>(xt::view(y, 0)), expected) == 0.0);
            // It saves as Keras 3's Conv2DTranspose, output_shape turned into output_padding.
            const auto& l = *m->layers().back();
            CHECK(l.class_name() == "Conv2DTranspose");
            const json c = l.get_config();
            CHECK(c["data_format"] == (th ? "channels_first" : "channels_last"));
            if (size == 4)
                CHECK(c["output_padding"].is_null());
            else
                CHECK(c["output_padding"] == json::array({ 1, 1 }));
        }
    }
    // A size conv2d_transpose cannot reach is an error naming the layer and the sizes it can give.
    const json bad = { { "name", "dc" }, { "nb_filter", 1 }, { "nb_row", 3 }, { "nb_col", 3 }, { "border_mode", "valid" },
                       { "subsample", { 2, 2 } }, { "dim_ordering", "tf" }, { "output_shape", { nullptr, 27, 25, 1 } } };
    LayerPtr<float> l = layer_from_config<float>("Deconvolution2D", bad);
    CHECK(l->compute_output_shape({ -1, 12, 12, 3 }) == dims_t{ -1, 27, 25, 1 }); // Keras 1 reports output_shape
    CHECK_THROWS_AS(l->build_once({ -1, 12, 12, 3 }), ValueError);
    const std::string msg = error_of([&] { l->build_once({ -1, 12, 12, 3 }); });
    CHECK(contains(msg, "\"dc\""));
    CHECK(contains(msg, "output_shape size 27"));
    CHECK(contains(msg, "expected a size in [25, 26]"));
    // "same": sizes (n - 1) * s + 1 .. n * s
    const json same = { { "name", "ds" }, { "nb_filter", 1 }, { "nb_row", 3 }, { "nb_col", 3 }, { "border_mode", "same" },
                        { "subsample", { 2, 2 } }, { "dim_ordering", "tf" }, { "output_shape", { nullptr, 23, 24, 1 } } };
    LayerPtr<float> ls = layer_from_config<float>("Deconvolution2D", same);
    ls->build_once({ -1, 12, 12, 3 });
    CHECK(ls->get_config()["output_padding"] == json::array({ 0, 1 }));
}

TEST_CASE("convolution layers: gradient checks in double for every kind and both data formats")
{
    unsigned seed = 40;
    for (const char* fmt : { "channels_last", "channels_first" }) {
        const bool cf = std::string(fmt) == "channels_first";
        CAPTURE(fmt);
        auto x2 = [&](std::size_t c, std::size_t h, std::size_t w) {
            return random_tensor(cf ? shape_t{ 2, c, h, w } : shape_t{ 2, h, w, c }, seed++);
        };
        {
            auto o = opts(4, { 3 });
            o.data_format = fmt;
            o.padding = "same";
            o.strides = { 2 };
            o.activation = "tanh";
            Conv2D<D> l(o);
            check_layer_gradients(l, x2(3, 5, 6));
        }
        {
            auto o = opts(4, { 3 });
            o.data_format = fmt;
            o.groups = 2;
            o.dilation_rate = { 2 };
            Conv2D<D> l(o);
            check_layer_gradients(l, x2(4, 6, 6));
        }
        {
            auto o = opts(3, { 3 });
            o.data_format = fmt;
            o.padding = "causal";
            o.dilation_rate = { 2 };
            Conv1D<D> l(o);
            check_layer_gradients(l, random_tensor(cf ? shape_t{ 2, 2, 9 } : shape_t{ 2, 9, 2 }, seed++));
        }
        {
            auto o = opts(0, { 3 });
            o.data_format = fmt;
            o.depth_multiplier = 2;
            o.padding = "same";
            DepthwiseConv2D<D> l(o);
            check_layer_gradients(l, x2(3, 5, 5));
        }
        {
            auto o = opts(4, { 3 });
            o.data_format = fmt;
            o.depth_multiplier = 2;
            o.strides = { 2 };
            SeparableConv2D<D> l(o);
            check_layer_gradients(l, x2(3, 7, 6));
        }
        {
            auto o = opts(3, { 3, 2 });
            o.data_format = fmt;
            o.strides = { 2 };
            o.padding = "same";
            o.output_padding = { 1 };
            Conv2DTranspose<D> l(o);
            check_layer_gradients(l, x2(2, 3, 4));
        }
        {
            auto o = opts(2, { 2 });
            o.data_format = fmt;
            o.padding = "same";
            Conv3D<D> l(o);
            check_layer_gradients(l, random_tensor(cf ? shape_t{ 1, 2, 3, 4, 3 } : shape_t{ 1, 3, 4, 3, 2 }, seed++));
        }
    }
}

TEST_CASE("convolution layers: SeparableConv2D equals DepthwiseConv2D then a 1x1 Conv2D")
{
    auto o = opts(5, { 3 });
    o.depth_multiplier = 2;
    o.padding = "same";
    SeparableConv2D<D> sep(o);
    const Tensor<D> x = random_tensor({ 2, 6, 6, 3 }, 9);
    const array_t<D> y = sep(x).value();
    auto odw = opts(0, { 3 });
    odw.depth_multiplier = 2;
    odw.padding = "same";
    odw.use_bias = false;
    DepthwiseConv2D<D> dw(odw);
    Conv2D<D> pw(opts(5, { 1 }));
    dw.build_once({ none_dim, 6, 6, 3 });
    pw.build_once({ none_dim, 6, 6, 6 });
    const auto w = sep.get_weights();
    dw.set_weights({ w[0] });
    pw.set_weights({ w[1], w[2] });
    const array_t<D> want = pw(dw(x)).value();
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(y.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-12));
}

TEST_CASE("convolution layers: Conv2D + BatchNormalization (axis -1 and 1) + relu trains")
{
    for (const char* fmt : { "channels_last", "channels_first" }) {
        CAPTURE(fmt);
        reset_layer_names();
        const bool cf = std::string(fmt) == "channels_first";
        auto m = std::make_shared<Sequential<float>>("cnn");
        m->add(std::make_shared<InputLayer<float>>(cf ? dims_t{ 2, 8, 8 } : dims_t{ 8, 8, 2 }));
        ConvLayerOptions<float> o;
        o.filters = 6;
        o.kernel_size = { 3 };
        o.padding = "same";
        o.data_format = fmt;
        o.use_bias = false;
        m->add(std::make_shared<Conv2D<float>>(o));
        BatchNormalizationOptions<float> bo;
        bo.axis = { cf ? 1 : -1 };
        m->add(std::make_shared<BatchNormalization<float>>(bo));
        m->add(std::make_shared<Activation<float>>("relu"));
        m->add(std::make_shared<Flatten<float>>());
        m->add(std::make_shared<Dense<float>>(2, "softmax"));
        m->compile("adam", "sparse_categorical_crossentropy", { "accuracy" });
        // label: is the mean of channel 0 above that of channel 1
        const std::size_t n = 64;
        array_t<float> x = array_t<float>(xt::cast<float>(random_tensor(cf ? shape_t{ n, 2, 8, 8 } : shape_t{ n, 8, 8, 2 }, 3).value()));
        array_t<float> y = array_t<float>::from_shape({ n });
        for (std::size_t i = 0; i < n; ++i) {
            double s = 0;
            for (std::size_t p = 0; p < 64; ++p)
                s += cf ? x.data()[i * 128 + p] - x.data()[i * 128 + 64 + p] : x.data()[i * 128 + 2 * p] - x.data()[i * 128 + 2 * p + 1];
            y(i) = s > 0 ? 1.f : 0.f;
        }
        FitOptions<float> fo;
        fo.epochs = 30;
        fo.batch_size = 16;
        fo.verbose = 0;
        auto h = m->fit(x, y, fo);
        const auto& loss = h->history.at("loss");
        MESSAGE(std::string(fmt) << ": loss " << loss.front() << " -> " << loss.back());
        CHECK(loss.back() < 0.5 * loss.front());
        // the moving statistics moved away from their initial values
        const auto bn = m->layers()[1]->get_weights();
        CHECK(xt::amax(xt::abs(bn[2]))() > 1e-3);
    }
}

TEST_CASE("convolution layers: Keras 1 / Theano kernels are converted as Keras 2 loads them")
{
    using keras_h5::convert_legacy_kernel;
    using keras_h5::needs_legacy_kernel_conversion;
    const json th = { { "data_format", "channels_first" }, { "filters", 3 }, { "kernel_size", { 2, 2 } } };
    const json tf = { { "data_format", "channels_last" }, { "filters", 3 }, { "kernel_size", { 2, 2 } } };
    CHECK(needs_legacy_kernel_conversion("Conv2D", th, "1.2.2", ""));
    CHECK_FALSE(needs_legacy_kernel_conversion("Conv2D", tf, "1.2.2", ""));
    CHECK_FALSE(needs_legacy_kernel_conversion("Conv2D", th, "2.1.3", "tensorflow"));
    CHECK(needs_legacy_kernel_conversion("Conv2D", tf, "2.1.3", "theano"));
    CHECK_FALSE(needs_legacy_kernel_conversion("Dense", tf, "2.1.3", "theano"));
    // Keras 1 "th": (filters 3, stack 2, rows 2, cols 2) -> (rows, cols, stack, filters)
    array_t<float> k = xt::arange<float>(24.f);
    k.reshape({ 3, 2, 2, 2 });
    std::vector<array_t<float>> v{ k };
    convert_legacy_kernel<float>("Conv2D", th, v, "1.2.2", "");
    REQUIRE(shape_of(v[0]) == shape_t{ 2, 2, 2, 3 });
    for (std::size_t f = 0; f < 3; ++f)
        for (std::size_t s = 0; s < 2; ++s)
            for (std::size_t r = 0; r < 2; ++r)
                for (std::size_t c = 0; c < 2; ++c)
                    CHECK(v[0](r, c, s, f) == k(f, s, r, c));
    // Theano backend: spatial axes reversed, channel axes kept
    array_t<float> t = xt::arange<float>(24.f);
    t.reshape({ 2, 3, 2, 2 });
    std::vector<array_t<float>> v2{ t };
    convert_legacy_kernel<float>("Conv2D", tf, v2, "2.1.3", "theano");
    for (std::size_t r = 0; r < 2; ++r)
        for (std::size_t c = 0; c < 3; ++c)
            CHECK(xt::view(v2[0], r, c) == xt::view(t, 1 - r, 2 - c));
    // Keras 1.2 Convolution1D: (length 4, 1, input 2, filters 3) -> (4, 2, 3)
    const json c1 = { { "filters", 3 }, { "kernel_size", { 4 } }, { "data_format", "channels_last" } };
    array_t<float> k1 = xt::arange<float>(24.f);
    k1.reshape({ 4, 1, 2, 3 });
    std::vector<array_t<float>> v3{ k1 };
    convert_legacy_kernel<float>("Conv1D", c1, v3, "1.2.2", "");
    REQUIRE(shape_of(v3[0]) == shape_t{ 4, 2, 3 });
    CHECK(v3[0](3, 1, 2) == k1(3, 0, 1, 2));
}

// ---- real Keras files ---------------------------------------------------------------------------

TEST_CASE("conv real files: conv1d channels_first / channels_last reproduce their stored outputs" *
          xtape::testing::real_files())
{
    if (!xtape::testing::have_keras_models())
        return;
    const std::string dir = "dl4j-test-resources/examples/conv1d/conv1d_k2_s1_d1_";
    for (const char* fmt : { "cf", "cl" }) {
        INFO(fmt);
        auto m = load_model<float>(keras_file(dir + fmt + "_valid_model.h5"));
        io::H5File f = io::H5File::open_read(keras_file(dir + fmt + "_valid_inputs_and_outputs.h5"));
        io::H5Group root = f.root();
        const json in = json::parse(root.read_string_attribute("inputs"));
        const json out = json::parse(root.read_string_attribute("outputs"));
        const array_t<float> x = root.read_dataset<float>("inputs/" + in.at("inputs").at(0).get<std::string>());
        const array_t<float> want =
            root.read_dataset<float>("predictions/" + out.at("outputs").at(0).get<std::string>());
        const double diff = max_abs_diff(m->predict(x, quiet()), want);
        MESSAGE(std::string(fmt) << ": max |xtape - Keras| = " << diff);
        CHECK(diff < 1e-6);
    }
}

TEST_CASE("conv real files: cnn_batch_norm (Conv2D, BN, relu, Conv2D, Flatten, Dense) reproduces predictions.npy" *
          xtape::testing::real_files())
{
    if (!xtape::testing::have_keras_models())
        return;
    const std::string dir = "dl4j-test-resources/fullconfigs/cnn/";
    auto m = load_model<float>(keras_file(dir + "cnn_batch_norm.h5"));
    const array_t<float> x = array_t<float>(xt::cast<float>(io::read_npy<double>(keras_file(dir + "input.npy"))));
    const array_t<float> want = io::read_npy<float>(keras_file(dir + "predictions.npy"));
    const double diff = max_abs_diff(m->predict(x, quiet()), want);
    MESSAGE("cnn_batch_norm: max |xtape - Keras| = " << diff);
    CHECK(diff < 1e-5);
}

TEST_CASE("conv real files: conv2d files with known weights (Keras 1/2, TensorFlow/Theano)" *
          xtape::testing::real_files())
{
    if (!xtape::testing::have_keras_models())
        return;
    array_t<double> kernel = xt::arange<double>(270.0);
    kernel.reshape({ 3, 3, 5, 6 });
    const array_t<double> bias = xt::arange<double>(6.0);
    // Keras 2 loading a Theano-written file into TensorFlow flips the kernel (convert_kernel):
    // Theano convolved, TensorFlow correlates. Keras 1.2.2 files carry no backend attribute.
    array_t<double> flipped = xt::view(kernel, xt::range(xt::placeholders::_, xt::placeholders::_, -1), xt::range(xt::placeholders::_, xt::placeholders::_, -1), xt::all(), xt::all());
    for (const char* f : { "conv2d_tensorflow_1.h5", "conv2d_theano_1.h5", "conv2d_tensorflow_2.h5", "conv2d_theano_2.h5" }) {
        INFO(f);
        auto m = load_model<double>(keras_file(std::string("dl4j-test-resources/weights/") + f));
        REQUIRE(m->layers().size() == 1);
        CHECK(m->layers()[0]->class_name() == "Conv2D");
        const auto w = m->get_weights();
        REQUIRE(w.size() == 2);
        CHECK(w[0] == (std::string(f) == "conv2d_theano_2.h5" ? flipped : kernel));
        CHECK(w[1] == bias);
        // one output element by hand: position (0, 0) of channel 2 over the 3x3x5 window
        const array_t<double> x = xt::cast<double>(random_tensor({ 1, 5, 5, 5 }, 3).value());
        const array_t<double> y = m->predict(x, PredictOptions<double>{ 32, 0, {} });
        CHECK(shape_of(y) == shape_t{ 1, 3, 3, 6 });
        double s = bias(2);
        for (std::size_t i = 0; i < 3; ++i)
            for (std::size_t j = 0; j < 3; ++j)
                for (std::size_t c = 0; c < 5; ++c)
                    s += x(0, i, j, c) * w[0](i, j, c, 2);
        CHECK(y(0, 0, 0, 2) == doctest::Approx(s).epsilon(1e-12));
    }
}

TEST_CASE("conv real files: Keras 1 th kernels are transposed to Keras 2's layout" * xtape::testing::real_files())
{
    if (!xtape::testing::have_keras_models())
        return;
    // batch_to_conv2d_*: Dense -> Reshape -> BN -> Conv2D(5, 3x3); they load and predict finite values
    for (const char* f : { "batch_to_conv2d_tensorflow_1.h5", "batch_to_conv2d_theano_1.h5",
                           "batch_to_conv2d_tensorflow_2.h5", "batch_to_conv2d_theano_2.h5" }) {
        INFO(f);
        auto m = load_model<float>(keras_file(std::string("dl4j-test-resources/weights/") + f));
        const auto ws = m->layers().back()->weights();
        CHECK(ws[0].shape() == shape_t{ 3, 3, 10, 5 });
        const array_t<float> y = m->predict(array_t<float>(xt::cast<float>(random_tensor({ 2, 100 }, 1).value())), quiet());
        CHECK(shape_of(y) == shape_t{ 2, 5, 5, 5 });
        CHECK(xt::all(xt::isfinite(y)));
    }
}

TEST_CASE("conv real files: batchNormError / batchNormError2 / str_ww_ref_model load and predict" *
          xtape::testing::real_files())
{
    if (!xtape::testing::have_keras_models())
        return;
    struct F {
        const char* path;
        shape_t x;
    };
    for (const F& f : { F{ "dl4j-test-resources/tfkeras/batchNormError.h5", { 2, 25, 25 } },
                        F{ "dl4j-test-resources/tfkeras/batchNormError2.h5", { 2, 25, 25 } },
                        F{ "mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5",
                           { 2, 30, 1, 40 } } }) {
        INFO(f.path);
        auto m = load_model<float>(keras_file(f.path));
        const array_t<float> y = m->predict(array_t<float>(xt::cast<float>(random_tensor(f.x, 5).value())), quiet());
        CHECK(xt::all(xt::isfinite(y)));
        MESSAGE(std::string(f.path) << ": output " << shape_str(shape_of(y)));
    }
}

// ---- batch-norm folding ---------------------------------------------------------------------------

namespace {

/// Gives every BatchNormalization of `m` non-trivial statistics and affine weights.
void randomize_bn(Model<float>& m, unsigned seed)
{
    for (const auto& l : m.layers()) {
        if (l->class_name() != "BatchNormalization")
            continue;
        std::vector<array_t<float>> w;
        for (const auto& v : l->weights()) {
            const bool var = v.name() == "moving_variance" || v.name() == "gamma";
            w.push_back(array_t<float>(xt::cast<float>(random_tensor(v.shape(), seed++, var ? 0.3 : -1.0, var ? 2.0 : 1.0).value())));
        }
        l->set_weights(w);
    }
}

/// max |a - b| relative to max |b| (the outputs' scale).
double max_rel_diff(const array_t<float>& a, const array_t<float>& b)
{
    REQUIRE(shape_of(a) == shape_of(b));
    double m = 0, scale = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
        scale = std::max(scale, std::abs(double(b.data()[i])));
    }
    INFO("output scale " << scale);
    CHECK(scale > 1e-3);
    return m / scale;
}

} // namespace

TEST_CASE("fold_batch_norm: Dense, Conv2D (both formats) and DepthwiseConv2D followed by BN fold; predictions agree")
{
    reset_layer_names();
    auto m = std::make_shared<Sequential<float>>("to_fold");
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 8, 8, 3 }));
    ConvLayerOptions<float> c;
    c.filters = 4;
    c.kernel_size = { 3 };
    c.use_bias = false;
    m->add(std::make_shared<Conv2D<float>>(c));                  // folds (no bias)
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<Activation<float>>("relu"));
    ConvLayerOptions<float> d;
    d.kernel_size = { 3 };
    d.depth_multiplier = 2;
    d.padding = "same";
    m->add(std::make_shared<DepthwiseConv2D<float>>(d));         // folds (bias kept)
    m->add(std::make_shared<BatchNormalization<float>>());
    ConvLayerOptions<float> r;
    r.filters = 5;
    r.kernel_size = { 2 };
    r.activation = "relu";
    m->add(std::make_shared<Conv2D<float>>(r));                  // activation in between: stays
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<Flatten<float>>());
    m->add(std::make_shared<Dense<float>>(6));                   // folds
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<Dense<float>>(3, "softmax"));
    randomize_bn(*m, 10);
    const array_t<float> x = array_t<float>(xt::cast<float>(random_tensor({ 7, 8, 8, 3 }, 4).value()));
    const array_t<float> before = m->predict(x, quiet());
    std::vector<std::string> folded;
    auto f = fold_batch_norm<float>(*m, &folded);
    CHECK(folded == std::vector<std::string>{ "conv2d <- batch_normalization", "depthwise_conv2d <- batch_normalization_1",
                                              "dense <- batch_normalization_3" });
    CHECK(f->layers().size() == m->layers().size() - 3);
    const array_t<float> after = f->predict(x, quiet());
    const double diff = max_rel_diff(after, before);
    MESSAGE("folded Sequential: max relative difference " << diff);
    CHECK(diff < 1e-5);
    // saved and loaded as an ordinary Keras file
    xtape::testing::TempDir tmp("fold");
    save_model(*f, tmp.file("folded.h5"));
    auto back = load_model<float>(tmp.file("folded.h5"));
    CHECK(max_abs_diff(back->predict(x, quiet()), after) == 0.0);

    // channels_first with BN on axis 1 folds; axis -1 after channels_first does not
    reset_layer_names();
    for (int axis : { 1, -1 }) {
        auto cf = std::make_shared<Sequential<float>>("cf");
        cf->add(std::make_shared<InputLayer<float>>(dims_t{ 3, 6, 6 }));
        ConvLayerOptions<float> o;
        o.filters = 4;
        o.kernel_size = { 3 };
        o.data_format = "channels_first";
        cf->add(std::make_shared<Conv2D<float>>(o));
        BatchNormalizationOptions<float> bo;
        bo.axis = { axis };
        cf->add(std::make_shared<BatchNormalization<float>>(bo));
        randomize_bn(*cf, 20);
        const array_t<float> xc = array_t<float>(xt::cast<float>(random_tensor({ 5, 3, 6, 6 }, 5).value()));
        std::vector<std::string> fcf;
        auto g = fold_batch_norm<float>(*cf, &fcf);
        CHECK(fcf.size() == (axis == 1 ? 1u : 0u));
        CHECK(max_rel_diff(g->predict(xc, quiet()), cf->predict(xc, quiet())) < 1e-5);
    }
}

TEST_CASE("fold_batch_norm: str_ww_ref_model (Functional, trained BN after 1x1 Conv2D) folds and predicts the same" *
          xtape::testing::real_files())
{
    if (!xtape::testing::have_keras_models())
        return;
    auto m = load_model<float>(
        keras_file("mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5"), false);
    std::vector<std::string> folded;
    auto f = fold_batch_norm<float>(*m, &folded);
    CHECK(folded.size() == 4);
    // Compared before the final softmax (a saturated softmax would hide differences).
    auto logits = [](const Model<float>& model) {
        json spec = model_to_json(model);
        spec["config"]["layers"].back()["config"]["activation"] = "linear";
        auto copy = model_from_config<float>(spec, [](const json& l) { return layer_from_config<float>(l); });
        for (std::size_t i = 0; i < copy->layers().size(); ++i)
            copy->layers()[i]->set_weights(model.layers()[i]->get_weights());
        return copy;
    };
    const array_t<float> x = array_t<float>(xt::cast<float>(random_tensor({ 16, 30, 1, 40 }, 6).value()));
    const double diff = max_rel_diff(logits(*f)->predict(x, quiet()), logits(*m)->predict(x, quiet()));
    MESSAGE("str_ww_ref_model folded (" << folded.size() << " pairs): max relative difference " << diff);
    CHECK(diff < 1e-5);
}
