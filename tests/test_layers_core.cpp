// Keras's core layers: Dense, Activation, ReLU, LeakyReLU, Softmax, Dropout, Flatten, Reshape,
// InputLayer and the registry. Three kinds of test: hand-computed values (and Keras's documented
// examples), gradient checks in double through each layer, and configs in every Keras form.
// ctest-labels: sanitize
#include "framework/initializer.hpp"
#include "framework/parallel.hpp"
#include "framework/random.hpp"
#include "layers/activation.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/flatten.hpp"
#include "layers/input_layer.hpp"
#include "layers/layer_config.hpp"
#include "layers/leaky_relu.hpp"
#include "layers/registry.hpp"
#include "layers/relu.hpp"
#include "layers/reshape.hpp"
#include "layers/softmax.hpp"
#include "tests/helpers.hpp"
#include "tests/layer_helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

using namespace xtape;
using xtape::testing::arr;
using xtape::testing::check_close;
using xtape::testing::check_layer_gradients;
using xtape::testing::check_round_trip;
using xtape::testing::error_of;
using xtape::testing::random_tensor;
using D = double;

namespace {

json read_json(const std::string& path)
{
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path);
    return json::parse(in);
}

const std::vector<std::string> core_activations = { "linear",      "relu",      "sigmoid", "tanh",
                                                    "softmax",     "elu",       "selu",    "softplus",
                                                    "softsign",    "gelu",      "swish",   "hard_sigmoid",
                                                    "log_softmax", "leaky_relu" };

} // namespace

// ---- Dense ------------------------------------------------------------------------------------

TEST_CASE("Dense: forward against a hand-computed case, with and without relu")
{
    Dense<D> lin(2, "linear", true, "lin");
    Dense<D> rl(2, "relu", true, "rl");
    const Tensor<D> x(arr({ 1, 2, 3, -1, 0, 1 }, { 2, 3 }));
    lin.build_once({ none_dim, 3 });
    rl.build_once({ none_dim, 3 });
    const array_t<D> k = arr({ 1, -1, 0, 2, 0.5, -3 }, { 3, 2 });
    const array_t<D> b = arr({ 0.25, -0.5 }, { 2 });
    lin.set_weights({ k, b });
    rl.set_weights({ k, b });
    // row 0: [1*1+2*0+3*0.5, 1*-1+2*2+3*-3] + b = [2.5, -6] + b; row 1: [-1+0.5, 1+0-3] + b = [-0.5, -2] + b
    check_close(lin(x).value(), arr({ 2.75, -6.5, -0.25, -2.5 }, { 2, 2 }));
    check_close(rl(x).value(), arr({ 2.75, 0, 0, 0 }, { 2, 2 }));
}

TEST_CASE("Dense: builds kernel (in, units) then bias (units), Keras's order and names")
{
    reset_layer_names();
    Dense<float> d(512, "relu");
    CHECK(d.name() == "dense");
    CHECK_FALSE(d.built());
    CHECK(d.weights().empty());
    d(Tensor<float>::zeros({ 4, 784 }));
    CHECK(d.built());
    REQUIRE(d.weights().size() == 2);
    CHECK(d.weights()[0].name() == "kernel");
    CHECK(d.weights()[1].name() == "bias");
    CHECK(d.weights()[0].shape() == shape_t{ 784, 512 });
    CHECK(d.weights()[1].shape() == shape_t{ 512 });
    CHECK(d.weight_path(d.kernel()) == "dense/kernel");
    CHECK(d.count_params() == 784u * 512u + 512u);
    CHECK(d.build_input_shape() == dims_t{ none_dim, 784 });
    // Keras's default bias initializer is zeros; glorot_uniform's limit is sqrt(6 / (784 + 512)).
    const auto& bv = d.bias().value();
    CHECK(std::all_of(bv.begin(), bv.end(), [](float v) { return v == 0.0f; }));
    const float limit = std::sqrt(6.0f / (784 + 512));
    float lo = 1, hi = -1;
    for (float v : d.kernel().value()) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    CHECK(lo >= -limit);
    CHECK(hi <= limit);
    CHECK(hi - lo > limit); // not a constant

    Dense<float> nb(3, "linear", false);
    nb(Tensor<float>::zeros({ 2, 5 }));
    REQUIRE(nb.weights().size() == 1);
    CHECK(nb.count_params() == 15u);
    CHECK_THROWS_AS(nb.bias(), RuntimeError);
    Dense<float> unbuilt(3);
    CHECK_THROWS_AS(unbuilt.kernel(), RuntimeError);
}

TEST_CASE("Dense: auto names count per class, as Keras's uids")
{
    reset_layer_names();
    Dense<float> a(1), b(1), c(1);
    CHECK(a.name() == "dense");
    CHECK(b.name() == "dense_1");
    CHECK(c.name() == "dense_2");
    Dense<float> named(1, "linear", true, "head");
    CHECK(named.name() == "head");
    Dense<float> d(1);
    CHECK(d.name() == "dense_3");
    CHECK(ReLU<float>().name() == "re_lu");
    CHECK(LeakyReLU<float>().name() == "leaky_re_lu");
    CHECK(Softmax<float>().name() == "softmax");
    CHECK(Activation<float>("relu").name() == "activation");
    CHECK(Dropout<float>(0.5).name() == "dropout");
    CHECK(Flatten<float>().name() == "flatten");
    CHECK(Reshape<float>({ 2, 2 }).name() == "reshape");
    CHECK(InputLayer<float>({ 3 }).name() == "input_layer");
    CHECK(InputLayer<float>({ 3 }).name() == "input_layer_1");
}

TEST_CASE("Dense: wrong inputs give ShapeError naming the layer and both shapes")
{
    reset_layer_names();
    Dense<float> d(10);
    d(Tensor<float>::zeros({ 32, 784 }));
    const std::string msg = error_of([&] { d(Tensor<float>::zeros({ 32, 10 })); });
    CHECK(msg ==
          "Input 0 of layer \"dense\" is incompatible with the layer: expected axis -1 of input shape to "
          "have value 784, but received input with shape (32, 10)");
    CHECK_THROWS_AS(d(Tensor<float>::zeros({ 32, 10 })), ShapeError);
    CHECK_THROWS_AS(d(Tensor<float>::zeros({ 784 })), ShapeError);
    // Any rank >= 2 with the right last axis is accepted after building (Keras's min_ndim=2).
    CHECK(d(Tensor<float>::zeros({ 2, 3, 784 })).shape() == shape_t{ 2, 3, 10 });

    Dense<float> e(4);
    const std::string m1 = error_of([&] { e(Tensor<float>::zeros({ 5 })); });
    CHECK(m1.find("expected min_ndim=2, found ndim=1") != std::string::npos);
    CHECK(m1.find("\"dense_1\"") != std::string::npos);
    CHECK_THROWS_AS(Dense<float>(0), ValueError);
    CHECK_THROWS_AS(Dense<float>(-3), ValueError);
    CHECK_THROWS_AS(Dense<float>(3, "no_such_activation"), KeyError);
}

TEST_CASE("Dense: compute_output_shape")
{
    Dense<float> d(7);
    CHECK(d.compute_output_shape({ none_dim, 5 }) == dims_t{ none_dim, 7 });
    CHECK(d.compute_output_shape({ 2, 3, 5 }) == dims_t{ 2, 3, 7 });
    CHECK(d(Tensor<float>::zeros({ 2, 3, 5 })).shape() == shape_t{ 2, 3, 7 });
}

TEST_CASE("Dense: gradcheck with each activation (input, kernel, bias)")
{
    for (const auto& act : core_activations) {
        if (!is_activation_name(act)) {
            FAIL_CHECK("activation() does not know '" << act << "'");
            continue;
        }
        CAPTURE(act);
        Dense<D> d(4, act);
        check_layer_gradients(d, random_tensor({ 3, 5 }, 11));
    }
    Dense<D> nb(3, "tanh", false);
    check_layer_gradients(nb, random_tensor({ 2, 4 }, 12));
    Dense<D> r3(3, "sigmoid");
    check_layer_gradients(r3, random_tensor({ 2, 3, 4 }, 13));
}

TEST_CASE("Dense: the fused relu path equals relu(linear(x)) in values and gradients")
{
    for (bool use_bias : { true, false }) {
        for (const shape_t& xs : { shape_t{ 6, 5 }, shape_t{ 2, 3, 5 } }) {
            CAPTURE(use_bias);
            Dense<D> d(4, "relu", use_bias);
            const Tensor<D> x = random_tensor(xs, 14);
            const Tensor<D> w = random_tensor(d(x).shape(), 15); // weights the outputs in the loss
            const Tensor<D> b = use_bias ? d.bias().tensor() : Tensor<D>();
            std::vector<Tensor<D>> sources{ x, d.kernel().tensor() };
            if (use_bias)
                sources.push_back(b);
            std::vector<Tensor<D>> g_fused, g_ref;
            Tensor<D> y_fused, y_ref;
            {
                GradientTape<D> tape;
                tape.watch(x);
                y_fused = d(x);
                g_fused = tape.gradient(sum(mul(y_fused, w)), sources);
            }
            {
                GradientTape<D> tape;
                tape.watch(x);
                y_ref = relu(linear(x, d.kernel().tensor(), b));
                g_ref = tape.gradient(sum(mul(y_ref, w)), sources);
            }
            check_close(y_fused.value(), y_ref.value());
            std::size_t zeros = 0;
            for (D v : y_fused.value())
                zeros += v == 0;
            CHECK(zeros > 0); // the relu clamps something
            CHECK(zeros < y_fused.size());
            for (std::size_t i = 0; i < sources.size(); ++i)
                check_close(g_fused[i].value(), g_ref[i].value());
        }
    }
}

TEST_CASE("Dense: regularizers enter losses() and their gradients are right")
{
    DenseOptions<D> o;
    o.units = 3;
    o.activation = "tanh";
    o.kernel_regularizer = get_regularizer<D>("l2");
    o.bias_regularizer = get_regularizer<D>(json{ { "class_name", "L1" }, { "config", { { "l1", 0.05 } } } });
    o.activity_regularizer =
      get_regularizer<D>(json{ { "class_name", "L1L2" }, { "config", { { "l1", 0.01 }, { "l2", 0.02 } } } });
    o.bias_initializer =
      get_initializer<D>(json{ { "class_name", "RandomUniform" },
                               { "config", { { "minval", -1 }, { "maxval", 1 }, { "seed", 3 } } } });
    Dense<D> d(o);
    const Tensor<D> x = random_tensor({ 4, 5 }, 21);
    const Tensor<D> y = d(x);
    auto losses = d.losses();
    REQUIRE(losses.size() == 3); // Keras's order: the activity penalty of the last call, then kernel, bias
    const array_t<D>& k = d.kernel().value();
    const array_t<D>& b = d.bias().value();
    double l2 = 0, l1 = 0, act = 0;
    for (D v : k)
        l2 += v * v;
    for (D v : b)
        l1 += std::abs(v);
    for (D v : y.value())
        act += 0.01 * std::abs(v) + 0.02 * v * v;
    CHECK(losses[0].item() == doctest::Approx(act / 4)); // divided by the batch size, as Keras
    CHECK(losses[1].item() == doctest::Approx(0.01 * l2));
    CHECK(losses[2].item() == doctest::Approx(0.05 * l1));
    check_layer_gradients(d, x, /*with_losses=*/true);

    // A frozen layer has no trainable weights, so no weight penalties.
    d.set_trainable(false);
    d(x);
    CHECK(d.losses().size() == 1);
}

TEST_CASE("Dense: constraints are attached to the variables")
{
    DenseOptions<float> o;
    o.units = 2;
    o.kernel_constraint = get_constraint<float>("non_neg");
    Dense<float> d(o);
    d(Tensor<float>::zeros({ 1, 3 }));
    REQUIRE(d.kernel().constraint());
    CHECK(d.kernel().constraint()->class_name() == "NonNeg");
    CHECK_FALSE(d.bias().constraint());
}

TEST_CASE("Dense: get/set_weights validation names the layer and the shapes")
{
    reset_layer_names();
    Dense<float> d(3);
    d(Tensor<float>::zeros({ 1, 2 }));
    auto w = d.get_weights();
    REQUIRE(w.size() == 2);
    CHECK(shape_of(w[0]) == shape_t{ 2, 3 });
    w[0].fill(1.5f);
    d.set_weights(w);
    CHECK(d.kernel().value()(1, 2) == 1.5f);

    const std::string count_msg = error_of([&] { d.set_weights({ w[0] }); });
    CHECK(count_msg.find("dense") != std::string::npos);
    CHECK(count_msg.find("length 1") != std::string::npos);
    CHECK_THROWS_AS(d.set_weights({ w[0] }), ValueError);

    const std::vector<array_t<float>> bad{ array_t<float>(xt::zeros<float>({ 3, 2 })), w[1] };
    const std::string shape_msg = error_of([&] { d.set_weights(bad); });
    CHECK(shape_msg.find("dense") != std::string::npos);
    CHECK(shape_msg.find("(2, 3)") != std::string::npos);
    CHECK(shape_msg.find("(3, 2)") != std::string::npos);
    CHECK_THROWS_AS(d.set_weights(bad), ShapeError);
    CHECK(d.kernel().value()(1, 2) == 1.5f); // a rejected set_weights changes nothing
}

TEST_CASE("Dense: trainable flag")
{
    Dense<float> d(3);
    d(Tensor<float>::zeros({ 1, 2 }));
    CHECK(d.trainable_weights().size() == 2);
    CHECK(d.non_trainable_weights().empty());
    d.set_trainable(false);
    CHECK(d.trainable_weights().empty());
    CHECK(d.non_trainable_weights().size() == 2);
    CHECK(d.weights().size() == 2);
    CHECK(d.get_config()["trainable"] == false);
    auto copy = Dense<float>::from_config(d.get_config());
    CHECK_FALSE(copy->trainable());
    d.set_trainable(true);
    CHECK(d.trainable_weights().size() == 2);
}

TEST_CASE("Dense: get_config has Keras 3's keys and round-trips")
{
    reset_layer_names();
    Dense<float> d(64, "relu");
    const json c = d.get_config();
    for (const char* key : { "name",
                             "trainable",
                             "dtype",
                             "units",
                             "activation",
                             "use_bias",
                             "kernel_initializer",
                             "bias_initializer",
                             "kernel_regularizer",
                             "bias_regularizer",
                             "kernel_constraint",
                             "bias_constraint" })
        CHECK_MESSAGE(c.contains(key), key);
    CHECK(c["name"] == "dense");
    CHECK(c["units"] == 64);
    CHECK(c["activation"] == "relu");
    CHECK(c["use_bias"] == true);
    CHECK(c["kernel_initializer"]["class_name"] == "GlorotUniform");
    CHECK(c["kernel_initializer"]["module"] == "keras.initializers");
    CHECK(c["bias_initializer"]["class_name"] == "Zeros");
    CHECK(c["kernel_regularizer"].is_null());
    CHECK_FALSE(c.contains("activity_regularizer"));
    check_round_trip<float>(d);

    DenseOptions<double> o;
    o.units = 5;
    o.activation = "softmax";
    o.use_bias = false;
    o.kernel_initializer = get_initializer<double>("he_normal");
    o.kernel_regularizer = get_regularizer<double>("l1_l2");
    o.activity_regularizer = get_regularizer<double>("l2");
    o.kernel_constraint =
      get_constraint<double>(json{ { "class_name", "MaxNorm" }, { "config", { { "max_value", 3 } } } });
    o.bias_constraint = get_constraint<double>("unit_norm");
    o.name = "out";
    o.trainable = false;
    Dense<double> full(o);
    const json fc = full.get_config();
    CHECK(fc["activity_regularizer"]["class_name"] == "L2");
    CHECK(fc["kernel_constraint"]["class_name"] == "MaxNorm");
    check_round_trip<double>(full);
}

TEST_CASE("Dense: legacy configs (Keras 1, tf.keras 2, Keras 3 dicts)")
{
    // Keras 1.2.2, as in mnist_mlp_th_keras_1_config.json
    const json k1 =
      json::parse(R"({"W_constraint": null, "b_constraint": null, "name": "dense_1", "output_dim": 512,
        "activity_regularizer": null, "trainable": true, "init": "glorot_uniform", "bias": true,
        "input_dtype": "float32", "input_dim": 784, "b_regularizer": null,
        "W_regularizer": {"l2": 0.01, "name": "L1L2Regularizer", "l1": 0.0}, "activation": "linear",
        "batch_input_shape": [null, 784]})");
    auto d1 = Dense<float>::from_config(k1);
    CHECK(d1->name() == "dense_1");
    CHECK(d1->units() == 512);
    CHECK(d1->use_bias());
    CHECK(d1->activation() == "linear");
    CHECK(batch_input_shape_from_config(k1) == dims_t{ none_dim, 784 });
    const json c1 = d1->get_config();
    CHECK(c1["kernel_regularizer"]["class_name"] == "L1L2");
    CHECK(c1["kernel_initializer"]["class_name"] == "GlorotUniform");
    auto nb = Dense<float>::from_config(json{ { "output_dim", 3 }, { "bias", false }, { "input_dim", 7 } });
    CHECK_FALSE(nb->use_bias());
    CHECK(batch_input_shape_from_config(json{ { "input_dim", 7 } }) == dims_t{ none_dim, 7 });

    // tf.keras 2.3.1, as in ReLU_0_config.json
    const json k2 = json::parse(R"({"name": "dense", "trainable": true, "batch_input_shape": [null, 16],
        "dtype": "float32", "units": 32, "activation": "linear", "use_bias": true,
        "kernel_initializer": {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg",
        "distribution": "uniform", "seed": null}}, "bias_initializer": {"class_name": "Zeros", "config": {}},
        "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null,
        "kernel_constraint": null, "bias_constraint": null})");
    auto d2 = Dense<float>::from_config(k2);
    CHECK(d2->units() == 32);
    CHECK(d2->get_config()["kernel_initializer"]["class_name"] == "VarianceScaling");

    // Keras 3: initializer dicts with module/registered_name, a DTypePolicy dict
    const json k3 = json::parse(R"({"name": "dense_7", "trainable": false,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": null},
        "units": 10, "activation": "softmax", "use_bias": true,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                               "config": {"seed": 5}, "registered_name": null},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                             "registered_name": null},
        "kernel_regularizer": {"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.001},
        "registered_name": null}, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
        "quantization_config": null})");
    auto d3 = Dense<float>::from_config(k3);
    CHECK(d3->name() == "dense_7");
    CHECK_FALSE(d3->trainable());
    CHECK(d3->activation() == "softmax");
    const json c3 = d3->get_config();
    CHECK(c3["kernel_initializer"]["config"]["seed"] == 5);
    CHECK(c3["kernel_regularizer"]["config"]["l2"].get<double>() == doctest::Approx(0.001));
    // A Keras 3 activation serialized as a function dict.
    auto d4 = Dense<float>::from_config(json{ { "units", 2 },
                                              { "activation",
                                                { { "module", "keras.activations" },
                                                  { "class_name", "function" },
                                                  { "config", "relu" },
                                                  { "registered_name", "function" } } } });
    CHECK(d4->activation() == "relu");
    auto d5 = Dense<float>::from_config(json{ { "units", 2 }, { "activation", nullptr } });
    CHECK(d5->activation() == "linear");
    CHECK_THROWS_AS(Dense<float>::from_config(json{ { "activation", "relu" } }), ValueError);
    CHECK_THROWS_AS(Dense<float>::from_config(json{ { "units", 2 }, { "activation", "warp" } }), KeyError);
}

// ---- activation layers ---------------------------------------------------------------------------

TEST_CASE("Activation: Keras's example, gradients, config")
{
    Activation<D> a("relu");
    check_close(a(Tensor<D>(arr({ -3, -1, 0, 2 }, { 4 }))).value(), arr({ 0, 0, 0, 2 }, { 4 }));
    Activation<D> s("sigmoid");
    check_close(s(Tensor<D>(arr({ 0 }, { 1 }))).value(), arr({ 0.5 }, { 1 }));
    for (const auto& act : core_activations) {
        if (!is_activation_name(act))
            continue;
        CAPTURE(act);
        Activation<D> layer(act);
        check_layer_gradients(layer, random_tensor({ 3, 4 }, 31));
        check_round_trip<D>(layer);
    }
    // Shape-agnostic: a second call with another shape is fine.
    CHECK(a(Tensor<D>::zeros({ 2, 3, 4 })).shape() == shape_t{ 2, 3, 4 });
    auto k1 = Activation<float>::from_config(json::parse(R"({"activation": "softmax", "trainable": true,
                                                             "name": "activation_2"})"));
    CHECK(k1->activation() == "softmax");
    CHECK(k1->name() == "activation_2");
    CHECK_THROWS_AS(Activation<float>("nope"), KeyError);
    CHECK_THROWS_AS(Activation<float>::from_config(json{ { "name", "a" } }), KeyError);
}

TEST_CASE("ReLU: Keras's documented example and every parameter")
{
    const Tensor<D> x(arr({ -10, -5, 0, 5, 10 }, { 5 }));
    ReLU<D> r(10.0, 0.5, 0.0);
    check_close(r(x).value(), arr({ -5, -2.5, 0, 5, 10 }, { 5 }));
    ReLU<D> plain;
    check_close(plain(x).value(), arr({ 0, 0, 0, 5, 10 }, { 5 }));
    ReLU<D> capped(6.0);
    check_close(capped(x).value(), arr({ 0, 0, 0, 5, 6 }, { 5 }));
    ReLU<D> thr(std::nullopt, 0.0, 6.0);
    check_close(thr(x).value(), arr({ 0, 0, 0, 0, 10 }, { 5 }));
    ReLU<D> leak_thr(std::nullopt, 0.1, 2.0);
    // below the threshold: 0.1 * (x - 2)
    check_close(leak_thr(x).value(), arr({ -1.2, -0.7, -0.2, 5, 10 }, { 5 }));

    // Inputs kept away from the kinks at 0, threshold and max_value.
    Tensor<D> g = Tensor<D>(arr({ -3.1, -0.7, 0.4, 1.3, 2.6, 4.2, 5.7, 7.3 }, { 2, 4 }));
    for (auto* layer : { &r, &plain, &capped, &thr, &leak_thr }) {
        ReLU<D> fresh(layer->max_value(), layer->negative_slope(), layer->threshold());
        check_layer_gradients(fresh, g);
        check_round_trip<D>(fresh);
    }
    CHECK_THROWS_AS(ReLU<float>(-1.0), ValueError);
    CHECK_THROWS_AS(ReLU<float>(std::nullopt, -0.1), ValueError);
    CHECK_THROWS_AS(ReLU<float>(std::nullopt, 0.0, -1.0), ValueError);

    const json k2 =
      json::parse(R"({"name": "re_lu_1", "trainable": true, "dtype": "float32", "max_value": null,
                                    "negative_slope": 0.0, "threshold": 0.0})");
    auto from2 = ReLU<float>::from_config(k2);
    CHECK(from2->name() == "re_lu_1");
    CHECK_FALSE(from2->max_value());
    CHECK(from2->get_config()["max_value"].is_null());
    auto six = ReLU<float>::from_config(json{ { "max_value", 6 } });
    CHECK(*six->max_value() == 6.0);
}

TEST_CASE("LeakyReLU: default 0.3, Keras's example, Keras 1/2 'alpha'")
{
    LeakyReLU<D> def;
    CHECK(def.negative_slope() == 0.3);
    const Tensor<D> x(arr({ -10, -5, 0, 5, 10 }, { 5 }));
    LeakyReLU<D> half(0.5);
    check_close(half(x).value(), arr({ -5, -2.5, 0, 5, 10 }, { 5 }));
    check_close(def(x).value(), arr({ -3, -1.5, 0, 5, 10 }, { 5 }));
    check_layer_gradients(half, random_tensor({ 3, 4 }, 41));
    check_round_trip<D>(half);
    auto k1 = LeakyReLU<float>::from_config(
      json::parse(R"({"alpha": 0.3, "trainable": true, "name": "leakyrelu_1"})"));
    CHECK(k1->negative_slope() == doctest::Approx(0.3));
    CHECK(k1->name() == "leakyrelu_1");
    CHECK(k1->get_config()["negative_slope"].get<double>() == doctest::Approx(0.3));
    CHECK_FALSE(k1->get_config().contains("alpha"));
    auto k3 = LeakyReLU<float>::from_config(json{ { "negative_slope", 0.1 } });
    CHECK(k3->negative_slope() == doctest::Approx(0.1));
    CHECK(LeakyReLU<float>::from_config(json::object())->negative_slope() == doctest::Approx(0.3));
    CHECK_THROWS_AS(LeakyReLU<float>(-0.1), ValueError);
}

TEST_CASE("Softmax: Keras's example, axes, mask, gradients")
{
    Softmax<D> s;
    check_close(s(Tensor<D>(arr({ 1, 2, 1 }, { 3 }))).value(),
                arr({ 0.21194156, 0.57611688, 0.21194156 }, { 3 }),
                1e-7);
    const Tensor<D> x = random_tensor({ 2, 3, 4 }, 51);
    for (int axis : { -1, 0, 1, 2 }) {
        CAPTURE(axis);
        Softmax<D> layer(axis);
        const Tensor<D> y = layer(x);
        // sums along the axis are 1
        Tensor<D> t = sum(y, axes_t{ axis });
        for (D v : t.value())
            CHECK(v == doctest::Approx(1.0));
        check_layer_gradients(layer, x);
        check_round_trip<D>(layer);
    }
    // Several axes normalize over both together.
    Softmax<D> two(axes_t{ 1, 2 });
    const Tensor<D> y2 = two(x);
    for (std::size_t b = 0; b < 2; ++b) {
        double total = 0;
        for (std::size_t i = 0; i < 12; ++i)
            total += y2.value().data()[b * 12 + i];
        CHECK(total == doctest::Approx(1.0));
    }
    check_layer_gradients(two, x);
    check_round_trip<D>(two);
    CHECK(two.get_config()["axis"] == json::array({ 1, 2 }));
    CHECK(Softmax<float>::from_config(json{ { "axis", json::array({ -1 }) } })->get_config()["axis"] ==
          json::array({ -1 }));

    // Mask: masked positions get (almost) zero probability; the rest renormalize.
    const Tensor<D> logits(arr({ 1, 2, 3, 4 }, { 1, 4 }));
    const Tensor<D> mask(arr({ 1, 0, 1, 0 }, { 1, 4 }));
    const Tensor<D> ym = s(logits, false, mask);
    const double e1 = std::exp(1.0), e3 = std::exp(3.0);
    check_close(ym.value(), arr({ e1 / (e1 + e3), 0, e3 / (e1 + e3), 0 }, { 1, 4 }), 1e-9);
    // gradient with a mask
    Softmax<D> sm;
    const Tensor<D> xm = random_tensor({ 2, 4 }, 52);
    const Tensor<D> m2(arr({ 1, 1, 0, 1, 0, 1, 1, 1 }, { 2, 4 }));
    auto f = [&](const std::vector<Tensor<D>>& in) { return sm(in[0], false, m2); };
    xtape::testing::check_gradients(f, { xm });

    Softmax<D> bad(3);
    CHECK_THROWS_AS(bad(x), ShapeError);
}

// ---- Dropout ------------------------------------------------------------------------------------

TEST_CASE("Dropout: identity in inference, inverted scaling in training")
{
    Dropout<D> d(0.3, 42);
    const Tensor<D> x = Tensor<D>::full({ 200, 500 }, 1.0);
    const Tensor<D> inf = d(x, false);
    CHECK(inf.node() == x.node()); // no copy, no noise
    const Tensor<D> y = d(x, true);
    std::size_t zeros = 0, off_scale = 0;
    double total = 0;
    for (D v : y.value()) {
        if (v == 0)
            ++zeros;
        else if (std::abs(v - 1.0 / 0.7) > 1e-12)
            ++off_scale;
        total += v;
    }
    CHECK(off_scale == 0);
    const double n = static_cast<double>(x.size());
    // 100,000 Bernoulli draws: the standard deviation of the fraction is 0.0014.
    CHECK(zeros / n == doctest::Approx(0.3).epsilon(0.02));
    CHECK(total / n == doctest::Approx(1.0).epsilon(0.01));

    Dropout<D> none(0.0);
    CHECK(none(x, true).node() == x.node());
    Dropout<D> all(1.0, 1);
    const Tensor<D> dropped = all(x, true);
    CHECK(std::all_of(dropped.value().begin(), dropped.value().end(), [](D v) { return v == 0.0; }));
    CHECK_THROWS_AS(Dropout<float>(1.5), ValueError);
    CHECK_THROWS_AS(Dropout<float>(-0.1), ValueError);
}

TEST_CASE("Dropout: seeded masks reproduce, successive calls differ, thread count does not matter")
{
    const Tensor<float> x = Tensor<float>::full({ 64, 700 }, 1.0f);
    Dropout<float> a(0.5, 7), b(0.5, 7), c(0.5, 8);
    const array_t<float> a1 = a(x, true).value(), a2 = a(x, true).value();
    CHECK(a1 == b(x, true).value());
    CHECK(a2 == b(x, true).value());
    CHECK(a1 != a2);
    CHECK(a1 != c(x, true).value());

    // Unseeded layers draw their seed from the global generator.
    set_random_seed(123);
    Dropout<float> u1(0.5);
    const array_t<float> r1 = u1(x, true).value();
    set_random_seed(123);
    Dropout<float> u2(0.5);
    CHECK(r1 == u2(x, true).value());

    const int threads = max_threads();
    set_num_threads(1);
    Dropout<float> t1(0.4, 99);
    const array_t<float> one = t1(x, true).value();
    set_num_threads(2);
    Dropout<float> t2(0.4, 99);
    CHECK(one == t2(x, true).value());
    set_num_threads(threads);
}

TEST_CASE("Dropout: backward multiplies by the same mask; gradcheck of the op")
{
    Dropout<D> d(0.5, 3);
    const Tensor<D> x = random_tensor({ 8, 9 }, 61, 0.5, 1.5);
    GradientTape<D> tape;
    tape.watch(x);
    const Tensor<D> y = d(x, true);
    const Tensor<D> g = tape.gradient(sum(y), std::vector<Tensor<D>>{ x })[0];
    std::size_t kept = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const D m = y.value().data()[i] / x.value().data()[i]; // 0 or 2
        CHECK(g.value().data()[i] == doctest::Approx(m));
        kept += m != 0;
    }
    CHECK(kept > 0);
    CHECK(kept < x.size());

    // The op with a fixed generator state is deterministic, so it can be checked numerically.
    auto f = [](const std::vector<Tensor<D>>& in) {
        rng_t rng(2024);
        return dropout(in[0], 0.4, {}, rng);
    };
    xtape::testing::check_gradients(f, { random_tensor({ 5, 6 }, 62) });
    auto fn = [](const std::vector<Tensor<D>>& in) {
        rng_t rng(2025);
        return dropout(in[0], 0.4, { 1, 6 }, rng);
    };
    xtape::testing::check_gradients(fn, { random_tensor({ 5, 6 }, 63) });
}

TEST_CASE("Dropout: noise_shape shares the mask along broadcast axes")
{
    DropoutOptions o;
    o.rate = 0.5;
    o.noise_shape = dims_t{ none_dim, 1, 6 };
    o.seed = 11;
    Dropout<D> d(o);
    const Tensor<D> x = Tensor<D>::full({ 4, 5, 6 }, 1.0);
    const array_t<D> y = d(x, true).value();
    std::size_t differ = 0, zeros = 0;
    for (std::size_t b = 0; b < 4; ++b)
        for (std::size_t t = 0; t < 5; ++t)
            for (std::size_t c = 0; c < 6; ++c) {
                differ += y(b, t, c) != y(b, 0, c);
                zeros += y(b, t, c) == 0;
            }
    CHECK(differ == 0);
    CHECK(zeros > 0);
    CHECK(zeros < 120);
    check_round_trip<D>(d);
    CHECK(d.get_config()["noise_shape"] == json::parse("[null, 1, 6]"));
    CHECK(d.get_config()["seed"] == 11);

    DropoutOptions bad;
    bad.rate = 0.5;
    bad.noise_shape = dims_t{ 4, 3 };
    Dropout<D> wrong(bad);
    CHECK_THROWS_AS(wrong(Tensor<D>::zeros({ 4, 5 }), true), ShapeError);
    bad.noise_shape = dims_t{ 0, 3 };
    CHECK_THROWS_AS(Dropout<D>{ bad }, ValueError);
}

TEST_CASE("Dropout: configs (Keras 1 'p', Keras 2/3 'rate')")
{
    auto k1 =
      Dropout<float>::from_config(json::parse(R"({"p": 0.2, "trainable": true, "name": "dropout_1"})"));
    CHECK(k1->rate() == doctest::Approx(0.2));
    CHECK(k1->name() == "dropout_1");
    auto k2 = Dropout<float>::from_config(
      json::parse(R"({"name": "dropout", "trainable": true, "dtype": "float32", "rate": 0.25,
                        "noise_shape": null, "seed": null})"));
    CHECK(k2->rate() == doctest::Approx(0.25));
    CHECK_FALSE(k2->seed());
    CHECK_FALSE(k2->noise_shape());
    const json c = k2->get_config();
    CHECK(c["seed"].is_null());
    CHECK(c["noise_shape"].is_null());
    check_round_trip<float>(*k2);
    CHECK_THROWS_AS(Dropout<float>::from_config(json{ { "name", "x" } }), ValueError);
}

// ---- Flatten, Reshape ---------------------------------------------------------------------------

TEST_CASE("Flatten: shapes, channels_first order, gradients, config")
{
    Flatten<D> f;
    const Tensor<D> x = random_tensor({ 2, 3, 4 }, 71);
    const Tensor<D> y = f(x);
    CHECK(y.shape() == shape_t{ 2, 12 });
    array_t<D> flat = array_t<D>::from_shape({ 2, 12 });
    std::copy(x.value().begin(), x.value().end(), flat.begin());
    check_close(y.value(), flat);
    CHECK(f.compute_output_shape({ none_dim, 3, 4 }) == dims_t{ none_dim, 12 });
    CHECK(f.compute_output_shape({ none_dim, none_dim, 4 }) == dims_t{ none_dim, none_dim });
    CHECK(f.compute_output_shape({ none_dim }) == dims_t{ none_dim, 1 });
    Flatten<D> f1;
    CHECK(f1(Tensor<D>(arr({ 1, 2, 3, 4, 5 }, { 5 }))).shape() == shape_t{ 5, 1 });
    CHECK_THROWS_AS(f1(Tensor<D>::scalar(1.0)), ShapeError);
    check_layer_gradients(f, x);

    // channels_first (batch, c, h, w) flattens in (h, w, c) order.
    Flatten<D> cf("channels_first");
    const Tensor<D> xc(arr({ 0, 1, 2, 3, 10, 11, 12, 13 }, { 1, 2, 2, 2 }));
    check_close(cf(xc).value(), arr({ 0, 10, 1, 11, 2, 12, 3, 13 }, { 1, 8 }));
    check_layer_gradients(cf, random_tensor({ 2, 3, 2, 2 }, 72));
    check_round_trip<D>(cf);
    CHECK(cf.get_config()["data_format"] == "channels_first");
    CHECK(Flatten<float>::from_config(json::parse(R"({"trainable": true, "name": "flatten_1"})"))
            ->data_format() == "channels_last");
    CHECK_THROWS_AS(Flatten<float>("nchw"), ValueError);
}

TEST_CASE("Reshape: target shapes, -1 inference, errors, gradients, config")
{
    reset_layer_names();
    Reshape<D> r({ 3, 4 });
    const Tensor<D> x = random_tensor({ 2, 12 }, 81);
    CHECK(r(x).shape() == shape_t{ 2, 3, 4 });
    check_layer_gradients(r, x);
    Reshape<D> inf({ -1, 2, 2 });
    CHECK(inf(x).shape() == shape_t{ 2, 3, 2, 2 });
    CHECK(inf.compute_output_shape({ none_dim, 12 }) == dims_t{ none_dim, 3, 2, 2 });
    CHECK(inf.compute_output_shape({ none_dim, none_dim }) == dims_t{ none_dim, none_dim, 2, 2 });
    check_round_trip<D>(inf);
    CHECK(inf.get_config()["target_shape"] == json::array({ -1, 2, 2 }));

    CHECK_THROWS_AS(Reshape<D>({ -1, -1 }), ValueError);
    CHECK_THROWS_AS(Reshape<D>({ 0, 3 }), ValueError);
    Reshape<D> wrong({ 5, 2 });
    const std::string msg = error_of([&] { wrong(x); });
    CHECK(msg.find("\"" + wrong.name() + "\"") != std::string::npos);
    CHECK(msg.find("input_shape=(12,)") != std::string::npos);
    CHECK(msg.find("target_shape=(5, 2)") != std::string::npos);
    CHECK_THROWS_AS(wrong(x), ShapeError);
    Reshape<D> indivisible({ -1, 5 });
    CHECK_THROWS_AS(indivisible(x), ShapeError);

    // Keras 1 and tf.keras configs, as in batch_to_conv2d and dcgan_generator.
    auto k = Reshape<float>::from_config(json::parse(R"({"target_shape": [7, 7, 10], "trainable": true,
                                                         "name": "reshape_1"})"));
    CHECK(k->target_shape() == dims_t{ 7, 7, 10 });
    CHECK(k->compute_output_shape({ none_dim, 490 }) == dims_t{ none_dim, 7, 7, 10 });
    CHECK_THROWS_AS(Reshape<float>::from_config(json{ { "name", "r" } }), KeyError);
}

// ---- InputLayer ---------------------------------------------------------------------------------

TEST_CASE("InputLayer: shape, identity, checks, config forms")
{
    reset_layer_names();
    InputLayer<float> in({ 784 });
    CHECK(in.name() == "input_layer");
    CHECK(in.built());
    CHECK(in.batch_shape() == dims_t{ none_dim, 784 });
    CHECK(in.compute_output_shape(in.batch_shape()) == dims_t{ none_dim, 784 });
    CHECK(in.weights().empty());
    const Tensor<float> x = Tensor<float>::zeros({ 32, 784 });
    CHECK(in(x).node() == x.node());
    const std::string msg = error_of([&] { in(Tensor<float>::zeros({ 32, 10 })); });
    CHECK(msg.find("input_layer") != std::string::npos);
    CHECK(msg.find("(None, 784)") != std::string::npos);
    CHECK(msg.find("(32, 10)") != std::string::npos);
    CHECK_THROWS_AS(in(Tensor<float>::zeros({ 784 })), ShapeError);

    const json c = in.get_config();
    CHECK(c ==
          json::parse(R"({"batch_shape": [null, 784], "dtype": "float32", "sparse": false, "ragged": false,
                               "name": "input_layer", "optional": false})"));
    check_round_trip<float>(in);

    auto seq = InputLayer<float>::with_batch_shape({ none_dim, none_dim, 8 }, "tokens");
    CHECK(seq->name() == "tokens");
    CHECK((*seq)(Tensor<float>::zeros({ 2, 5, 8 })).shape() == shape_t{ 2, 5, 8 });
    CHECK((*seq)(Tensor<float>::zeros({ 2, 9, 8 })).shape() == shape_t{ 2, 9, 8 });

    // Keras 2 / tf.keras
    auto k2 = InputLayer<float>::from_config(json::parse(
      R"({"batch_input_shape": [null, 25, 25], "dtype": "float32", "sparse": false, "name": "input_1"})"));
    CHECK(k2->batch_shape() == dims_t{ none_dim, 25, 25 });
    CHECK(k2->name() == "input_1");
    // Keras 3 with a fixed batch size
    auto k3 = InputLayer<float>::from_config(json::parse(R"({"batch_shape": [16, 3], "dtype": "float32",
                                                             "sparse": false, "ragged": false, "name": "x"})"));
    CHECK(k3->batch_shape() == dims_t{ 16, 3 });
    auto sh = InputLayer<float>::from_config(json::parse(R"({"shape": [4], "batch_size": 2})"));
    CHECK(sh->batch_shape() == dims_t{ 2, 4 });
    CHECK_THROWS_AS(InputLayer<float>::from_config(json::parse(R"({"name": "x"})")), ValueError);
    CHECK_THROWS_AS(
      InputLayer<float>::from_config(json::parse(R"({"shape": [3], "batch_shape": [null, 3]})")), ValueError);
    CHECK_THROWS_AS(InputLayer<float>::from_config(json::parse(R"({"shape": [3], "sparse": true})")),
                    NotImplementedError);
    CHECK_THROWS_AS(InputLayer<float>({ 0 }), ValueError);
}

// ---- registry -----------------------------------------------------------------------------------

namespace {
template<class T>
class Doubler : public Layer<T>
{
public:
    explicit Doubler(const std::string& name)
      : Layer<T>("Doubler", name)
    {
    }
    static std::shared_ptr<Doubler> from_config(const json& c)
    {
        return std::make_shared<Doubler>(c.value("name", ""));
    }

protected:
    Tensor<T> call(const Tensor<T>& x, bool, const Tensor<T>&) override { return mul_scalar(x, T(2)); }
};
} // namespace

TEST_CASE("registry: built-in layers by Keras class name, unknown names, user layers")
{
    for (const char* name : { "InputLayer",
                              "Dense",
                              "Activation",
                              "ReLU",
                              "LeakyReLU",
                              "Softmax",
                              "Dropout",
                              "Flatten",
                              "Reshape",
                              "BatchNormalization" }) {
        CAPTURE(name);
        CHECK(is_registered_layer<float>(name));
        CHECK(is_registered_layer<double>(name));
    }
    auto d = layer_from_config<float>("Dense", json{ { "units", 3 }, { "name", "d" } });
    CHECK(d->class_name() == "Dense");
    CHECK(d->name() == "d");
    auto s = layer_from_config<float>(json::parse(R"({"module": "keras.layers", "class_name": "Dropout",
        "config": {"rate": 0.5, "name": "drop"}, "registered_name": null})"));
    CHECK(s->class_name() == "Dropout");

    const std::string lstm = error_of([] { layer_from_config<float>("LSTM", json::object()); });
    CHECK(lstm.find("Unknown layer: 'LSTM'") != std::string::npos);
    CHECK(lstm.find("does not support") != std::string::npos);
    CHECK_THROWS_AS(layer_from_config<float>("LSTM", json::object()), NotImplementedError);
    const std::string foo = error_of([] { layer_from_config<float>("FooBar", json::object()); });
    CHECK(foo.find("Unknown layer: 'FooBar'") != std::string::npos);
    CHECK_THROWS_AS(layer_from_config<float>("FooBar", json::object()), KeyError);
    CHECK_THROWS_AS(layer_from_config<float>(json{ { "config", json::object() } }), ValueError);

    register_layer<D>("Doubler", [](const json& c) -> LayerPtr<D> { return Doubler<D>::from_config(c); });
    CHECK(is_registered_layer<D>("Doubler"));
    CHECK_FALSE(is_registered_layer<float>("Doubler"));
    auto user =
      layer_from_config<D>(json{ { "class_name", "Doubler" }, { "config", { { "name", "twice" } } } });
    CHECK(user->name() == "twice");
    check_close((*user)(Tensor<D>(arr({ 1, 2 }, { 2 }))).value(), arr({ 2, 4 }, { 2 }));
    auto names = registered_layers<D>();
    CHECK(std::find(names.begin(), names.end(), "Doubler") != names.end());
}

TEST_CASE("registry: every layer of the real Keras configs in keras-models")
{
    const std::string root = std::string(XTAPE_SOURCE_DIR) + "/../shared/keras-models/";
    if (!std::ifstream(root + "README.md").good()) {
        MESSAGE("keras-models test data not found at " << root << "; skipped");
        return;
    }
    const std::vector<std::string> files = {
        "dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_th_keras_1_config.json",
        "dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_tf_keras_2_config.json",
        "dl4j-test-resources/examples/activations/ReLU_0_config.json",
        "dl4j-test-resources/examples/simple_sparse_xent/simple_sparse_xent_mlp_keras_2_config.json",
        "dl4j-test-resources/configs/keras1/mlp_config.json",
        "dl4j-test-resources/configs/keras2/keras2_mlp_config.json",
    };
    std::size_t built = 0;
    for (const auto& file : files) {
        CAPTURE(file);
        const json model = read_json(root + file);
        const json& cfg = model["config"];
        const json layers = cfg.is_array() ? cfg : cfg["layers"];
        for (const auto& l : layers) {
            const std::string cls = l["class_name"];
            CAPTURE(cls);
            LayerPtr<float> layer = layer_from_config<float>(cls, l["config"]);
            CHECK(layer->name() == l["config"]["name"].get<std::string>());
            check_round_trip<float>(*layer);
            ++built;
        }
    }
    CHECK(built == 33);
}
