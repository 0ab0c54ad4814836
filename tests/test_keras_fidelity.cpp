// ctest-labels: sanitize
// Keras fidelity (issue 17): legacy optimizer settings (tf.keras 2 / Keras 2's `decay`, Nadam's
// schedule_decay, defaults by the version that wrote a config), layer configs checked as Keras
// checks them (unknown keys, one dtype rule, errors instead of undefined conversions), and
// Keras's rule for `trainable` changed after compile.
#include "framework/gradcheck_model.hpp"
#include "framework/graph/functional.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "layers/registry.hpp"
#include "optim/registry.hpp"
#include "saving/keras_h5.hpp"
#include "tests/helpers.hpp"
#include "tests/keras_files.hpp"
#include "tests/saving_helpers.hpp"

#include <doctest/doctest.h>

#include <xtensor/xbuilder.hpp>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <typeinfo>

using namespace xtape;
using xtape::testing::contains;
using xtape::testing::expect_error;
using xtape::testing::max_abs_diff;
using xtape::testing::quiet_fit;
using xtape::testing::quiet_predict;
using xtape::testing::small_data;
using xtape::testing::SmallData;
using xtape::testing::TempDir;

// Everything in this file lives in one namespace: the unity build puts several test files in one
// translation unit.
namespace test_keras_fidelity {

Variable<double> scalar_var(double v) { return Variable<double>("w", array_t<double>{ v }); }

Tensor<double> scalar_grad(double g) { return Tensor<double>(array_t<double>{ g }); }

json optimizer_config(const std::string& cls, json config) { return json{ { "class_name", cls }, { "config", config } }; }

/// Input(6) -> Dense(8, relu) -> Dense(3, softmax), compiled with `optimizer`.
std::shared_ptr<Sequential<float>> two_dense(const OptimizerSpec<float>& optimizer)
{
    reset_layer_names();
    set_random_seed(11);
    auto m = std::make_shared<Sequential<float>>("two_dense");
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    m->add(std::make_shared<Dense<float>>(8, "relu", true, "d1"));
    m->add(std::make_shared<Dense<float>>(3, "softmax", true, "d2"));
    m->compile(optimizer, "sparse_categorical_crossentropy");
    return m;
}

/// The slot of kind `kind` (0: momentum, 1: velocity for Adam) that `opt` keeps for `v`.
array_t<float> slot_value(const OptimizerBase<float>& opt, const Variable<float>& v, std::size_t kind)
{
    const auto& built = opt.built_variables();
    for (std::size_t j = 0; j < built.size(); ++j)
        if (built[j].same_as(v))
            return opt.variables()[1 + kind * built.size() + j].value();
    FAIL("no slot for variable " << v.name());
    return {};
}

OptimizerBase<float>& base_of(Model<float>& m)
{
    auto* b = dynamic_cast<OptimizerBase<float>*>(m.optimizer().get());
    REQUIRE(b != nullptr);
    return *b;
}


// ---- legacy optimizer settings -------------------------------------------------------------------

TEST_CASE("fidelity: tf.keras 2's decay divides the learning rate by 1 + decay * iterations")
{
    // SGD(0.1, decay=0.5), g = 1 every step: the steps are 0.1 / (1 + 0.5 t) for t = 0, 1, 2,
    // i.e. 0.1, 0.0666..., 0.05 (tf.keras's _decayed_lr counts the steps before this one).
    auto sgd = get_optimizer<double>(optimizer_config("SGD", { { "learning_rate", 0.1 }, { "decay", 0.5 } }));
    Variable<double> w = scalar_var(1.0);
    const double want[] = { 0.9, 0.9 - 0.1 / 1.5, 0.9 - 0.1 / 1.5 - 0.05 };
    for (double expected : want) {
        sgd->apply_gradients({ scalar_grad(1.0) }, { w });
        CHECK(w.value()(0) == doctest::Approx(expected).epsilon(1e-15));
    }
    // The hyperparameter (what Keras 2's callbacks read and set) stays undecayed.
    CHECK(sgd->learning_rate() == doctest::Approx(0.1));
    auto* base = dynamic_cast<OptimizerBase<double>*>(sgd.get());
    REQUIRE(base);
    CHECK(base->decayed_learning_rate() == doctest::Approx(0.1 / 2.5));

    // Adam with decay equals Adam whose rate is set to lr / (1 + decay t) before each step.
    auto decayed = get_optimizer<double>(
      optimizer_config("Adam", { { "lr", 0.01 }, { "decay", 1e-1 }, { "epsilon", 1e-7 } })); // Keras 2's "lr"
    Adam<double> manual(0.01);
    Variable<double> a = scalar_var(1.0), b = scalar_var(1.0);
    for (int t = 0; t < 4; ++t) {
        const double g = 0.3 - 0.2 * t;
        decayed->apply_gradients({ scalar_grad(g) }, { a });
        manual.set_learning_rate(0.01 / (1.0 + 0.1 * t));
        manual.apply_gradients({ scalar_grad(g) }, { b });
        CHECK(a.value()(0) == doctest::Approx(b.value()(0)).epsilon(1e-14));
    }
    // It round-trips through get_config; Keras 3's config (no decay) means none; negative refused.
    CHECK(decayed->get_config()["decay"] == doctest::Approx(0.1));
    auto again = get_optimizer<double>(serialize_optimizer(*decayed));
    CHECK(dynamic_cast<OptimizerBase<double>&>(*again).decay() == doctest::Approx(0.1));
    CHECK_FALSE(Adam<double>().get_config().contains("decay"));
    expect_error<ValueError>([] { get_optimizer<double>(optimizer_config("SGD", { { "decay", -0.1 } })); },
                             { "decay cannot be less than 0" });
}

TEST_CASE("fidelity: a model saved at iteration N with decay resumes with Keras's learning rate there")
{
    TempDir tmp("fidelity_decay");
    auto a = two_dense(OptimizerSpec<float>(optimizer_config("Adam", { { "learning_rate", 0.01 }, { "decay", 0.05 } })));
    SmallData d = small_data();
    a->fit(d.x, d.y, quiet_fit(2)); // 40 samples in batches of 8: 10 steps
    REQUIRE(a->optimizer()->iterations() == 10);
    save_model(*a, tmp.file("a.h5"));
    auto b = load_model<float>(tmp.file("a.h5"));
    REQUIRE(b->compiled());
    CHECK(b->optimizer()->iterations() == 10);
    CHECK(base_of(*b).decay() == doctest::Approx(0.05));
    CHECK(base_of(*b).decayed_learning_rate() == doctest::Approx(0.01 / (1 + 0.05 * 10)));
    // Both go on identically.
    a->fit(d.x, d.y, quiet_fit(3, 2));
    b->fit(d.x, d.y, quiet_fit(3, 2));
    CHECK(max_abs_diff(a->predict(d.x, quiet_predict()), b->predict(d.x, quiet_predict())) == 0.0);
}

TEST_CASE("fidelity: Nadam's schedule_decay (Keras 1/2) and tf.keras 2's legacy `decay` for it")
{
    // One step from w = 1, g = 0.5, lr = 0.1 with mu(s) = 0.9 (1 - 0.5 * 0.96^(0.004 s)) (Keras 2's
    // momentum_cache_t, tf.keras's legacy Nadam): u_product = mu(1),
    // m_hat = mu(2) * m / (1 - mu(1) mu(2)) + (1 - mu(1)) g / (1 - mu(1)), v_hat = g^2.
    auto mu = [](double s, double sd) { return 0.9 * (1 - 0.5 * std::pow(0.96, sd * s)); };
    auto step = [&](double sd) {
        const double g = 0.5, m = 0.1 * g, u1 = mu(1, sd), u2 = mu(2, sd);
        const double m_hat = u2 * m / (1 - u1 * u2) + (1 - u1) * g / (1 - u1);
        return 1.0 - 0.1 * m_hat / (std::sqrt(g * g) + 1e-7);
    };
    const json keras2 = optimizer_config("Nadam", { { "lr", 0.1 }, { "schedule_decay", 0.004 }, { "epsilon", 1e-7 } });
    const json tf2 = optimizer_config("Nadam", { { "name", "Nadam" }, { "learning_rate", 0.1 }, { "decay", 0.004 } });
    const json keras3 = optimizer_config("Nadam", { { "learning_rate", 0.1 } });
    for (const json& spec : { keras2, tf2 }) {
        CAPTURE(spec);
        auto opt = get_optimizer<double>(spec);
        Variable<double> w = scalar_var(1.0);
        opt->apply_gradients({ scalar_grad(0.5) }, { w });
        CHECK(w.value()(0) == doctest::Approx(step(0.004)).epsilon(1e-14));
        // tf.keras's legacy Nadam never decayed the rate itself, and writes the schedule as `decay`.
        CHECK(dynamic_cast<Nadam<double>&>(*opt).decay() == 0.0);
        CHECK(opt->get_config()["decay"] == doctest::Approx(0.004));
    }
    auto k3 = get_optimizer<double>(keras3);
    Variable<double> w = scalar_var(1.0);
    k3->apply_gradients({ scalar_grad(0.5) }, { w });
    CHECK(w.value()(0) == doctest::Approx(step(1.0)).epsilon(1e-14));
    CHECK(std::abs(step(1.0) - step(0.004)) > 1e-4); // the two schedules differ visibly
    CHECK_FALSE(k3->get_config().contains("decay"));
}

TEST_CASE("fidelity: optimizer defaults follow the Keras version that wrote the config")
{
    const json empty = json::object();
    auto cfg = [&](const char* cls, const std::string& version) {
        return get_optimizer<double>(optimizer_config(cls, empty), version)->get_config();
    };
    // Adagrad: accumulators from 0 and lr 0.01 in Keras 1/2; 0.1 and 0.001 in tf.keras 2 and Keras 3.
    for (const char* v : { "1.2.2", "2.0.6", "2.1.3", "2.3.1" }) {
        CAPTURE(v);
        CHECK(cfg("Adagrad", v)["initial_accumulator_value"] == 0.0);
        CHECK(cfg("Adagrad", v)["learning_rate"] == doctest::Approx(0.01));
        CHECK(cfg("Nadam", v)["learning_rate"] == doctest::Approx(0.002));
        CHECK(cfg("Nadam", v)["decay"] == doctest::Approx(0.004)); // schedule_decay
    }
    for (const char* v : { "2.2.4-tf", "2.4.0", "2.14.0", "3.3.3", "" }) {
        CAPTURE(v);
        CHECK(cfg("Adagrad", v)["initial_accumulator_value"] == doctest::Approx(0.1));
        CHECK(cfg("Adagrad", v)["learning_rate"] == doctest::Approx(0.001));
        CHECK_FALSE(cfg("Nadam", v).contains("decay"));
    }
    // epsilon: 1e-8 in Keras 1, the backend's 1e-7 after (Keras 2 wrote None for it).
    for (const char* cls : { "Adam", "RMSprop", "Adagrad", "Nadam" }) {
        CAPTURE(cls);
        CHECK(cfg(cls, "1.2.2")["epsilon"] == doctest::Approx(1e-8));
        CHECK(cfg(cls, "2.1.3")["epsilon"] == doctest::Approx(1e-7));
        CHECK(cfg(cls, "")["epsilon"] == doctest::Approx(1e-7));
        CHECK(get_optimizer<double>(optimizer_config(cls, { { "epsilon", nullptr } }), "2.1.3")->get_config()["epsilon"] ==
              doctest::Approx(1e-7));
    }
    // rho, SGD's and Adam's rates never changed; a value in the config always wins.
    CHECK(cfg("RMSprop", "1.2.2")["rho"] == doctest::Approx(0.9));
    CHECK(cfg("SGD", "1.2.2")["learning_rate"] == doctest::Approx(0.01));
    CHECK(get_optimizer<double>(optimizer_config("Adagrad", { { "initial_accumulator_value", 0.3 } }), "1.2.2")
            ->get_config()["initial_accumulator_value"] == doctest::Approx(0.3));
}

// ---- layer configs -------------------------------------------------------------------------------

TEST_CASE("fidelity: an unknown key in a layer config is Keras's TypeError naming the layer, key and class")
{
    const json dense = { { "name", "d7" }, { "units", 3 } };
    json bad = dense;
    bad["unitz"] = 4;
    expect_error<TypeError>([&] { layer_from_config<float>("Dense", bad); },
                            { "Dense", "'d7'", "Unrecognized keyword arguments", "'unitz': 4" });
    // Keys Keras ignores on load (keras_ignored_keys in layers/registry.cpp).
    json ok = dense;
    ok["batch_input_shape"] = { nullptr, 5 };
    ok["dtype"] = { { "module", "keras" }, { "class_name", "DTypePolicy" }, { "config", { { "name", "float32" } } },
                    { "registered_name", nullptr } };
    ok["quantization_config"] = nullptr;
    ok["lora_rank"] = nullptr;
    ok["build_config"] = { { "input_shape", { nullptr, 5 } } };
    ok["autocast"] = true;
    CHECK_NOTHROW(layer_from_config<float>("Dense", ok));
    // ... but only at the values that mean nothing.
    json lora = dense;
    lora["lora_rank"] = 4;
    expect_error<TypeError>([&] { layer_from_config<float>("Dense", lora); }, { "'lora_rank': 4" });
    // Keras 1's names for the same arguments are understood, not unknown.
    const json keras1 = json::parse(R"({"W_constraint": null, "b_constraint": null, "name": "dense_1",
        "activity_regularizer": null, "trainable": true, "init": "glorot_uniform", "bias": true, "input_dim": 4,
        "b_regularizer": null, "W_regularizer": null, "activation": "linear", "output_dim": 6,
        "batch_input_shape": [null, 4], "input_dtype": "float32"})");
    CHECK_NOTHROW(layer_from_config<float>("Dense", keras1));
    const json bn1 = json::parse(R"({"epsilon": 0.001, "mode": 0, "name": "bn", "trainable": true, "axis": -1,
        "gamma_regularizer": null, "momentum": 0.99, "beta_regularizer": null})");
    CHECK_NOTHROW(layer_from_config<float>("BatchNormalization", bn1));
    // A nested layer is checked as itself.
    const json td = { { "name", "td" }, { "layer", { { "class_name", "Dense" }, { "config", bad } } } };
    expect_error<TypeError>([&] { layer_from_config<float>("TimeDistributed", td); }, { "'unitz'" });
    // Every built-in layer accepts its own config back.
    auto d = layer_from_config<float>("Dense", dense);
    CHECK_NOTHROW(layer_from_config<float>("Dense", d->get_config()));
}

TEST_CASE("fidelity: one dtype rule for every layer class")
{
    auto with_dtype = [](json c, const json& dtype) {
        c["dtype"] = dtype;
        return c;
    };
    const json dense = { { "name", "d64" }, { "units", 2 } };
    const json conv = { { "name", "c64" }, { "filters", 2 }, { "kernel_size", 3 } };
    const json ln = { { "name", "ln64" } };
    const std::pair<const char*, json> layers[] = { { "Dense", dense }, { "Conv2D", conv }, { "LayerNormalization", ln } };
    for (const auto& entry : layers) {
        CAPTURE(entry.first);
        for (const char* f : { "float32", "float64", "float16", "mixed_float16", "bfloat16" }) {
            CHECK_NOTHROW(layer_from_config<float>(entry.first, with_dtype(entry.second, f)));
            CHECK_NOTHROW(layer_from_config<double>(entry.first, with_dtype(entry.second, f)));
        }
        // Before: Dense accepted any dtype, BatchNormalization checked; now every class checks.
        expect_error<ValueError>([&] { layer_from_config<float>(entry.first, with_dtype(entry.second, "int32")); },
                                 { entry.first, "unsupported dtype 'int32'" });
        expect_error<ValueError>(
          [&] { layer_from_config<double>(entry.first, with_dtype(entry.second, "int8_from_float32")); },
          { "unsupported dtype 'int8_from_float32'" });
    }
    // Integer inputs feed Embedding: an InputLayer takes any dtype Keras knows.
    CHECK_NOTHROW(layer_from_config<float>("InputLayer", { { "batch_shape", { nullptr, 4 } }, { "dtype", "int32" } }));
    expect_error<ValueError>(
      [] { layer_from_config<float>("InputLayer", { { "batch_shape", { nullptr, 4 } }, { "dtype", "floot32" } }); },
      { "unsupported dtype 'floot32'" });
}

TEST_CASE("fidelity: ShapeError is a ValueError, as Keras raises ValueError for shapes")
{
    static_assert(std::is_base_of_v<ValueError, ShapeError>);
    auto d = layer_from_config<float>("Dense", { { "units", 2 } });
    (*d)(Tensor<float>(array_t<float>::from_shape({ 1, 3 })));
    CHECK_THROWS_AS((*d)(Tensor<float>(array_t<float>::from_shape({ 1, 4 }))), ValueError);
}

TEST_CASE("fidelity: configs with a key missing or of another type give xtape's errors, never a library's")
{
    // Full configs of a set of layers; each key is removed, then set to values of other JSON types.
    const std::pair<const char*, json> layers[] = {
        { "Dense", { { "units", 3 }, { "activation", "relu" }, { "kernel_initializer", "ones" } } },
        { "Conv2D", { { "nb_filter", 2 }, { "nb_row", 3 }, { "nb_col", 3 }, { "border_mode", "same" } } },
        { "Conv3D", { { "nb_filter", 2 }, { "kernel_dim1", 2 }, { "kernel_dim2", 2 }, { "kernel_dim3", 2 } } },
        { "BatchNormalization", { { "axis", -1 }, { "momentum", 0.9 }, { "virtual_batch_size", 2 } } },
        { "Embedding", { { "input_dim", 10 }, { "output_dim", 4 } } },
        { "Dropout", { { "rate", 0.5 }, { "noise_shape", { nullptr, 1 } }, { "seed", 3 } } },
        { "Reshape", { { "target_shape", { 2, 3 } } } },
        { "RepeatVector", { { "n", 3 } } },
        { "Concatenate", { { "axis", 1 } } },
        { "GroupNormalization", { { "groups", 2 }, { "axis", -1 } } },
        { "MaxPooling2D", { { "pool_size", { 2, 2 } }, { "strides", { 1, 1 } }, { "padding", "valid" } } },
        { "ZeroPadding2D", { { "padding", { { 1, 1 }, { 2, 2 } } } } },
        { "Cropping1D", { { "cropping", { 1, 1 } } } },
        { "UpSampling2D", { { "size", { 2, 2 } }, { "interpolation", "bilinear" } } },
        { "Softmax", { { "axis", { 1, 2 } } } },
        { "InputLayer", { { "batch_shape", { nullptr, 4 } } } },
        { "TimeDistributed", { { "layer", { { "class_name", "Dense" }, { "config", { { "units", 2 } } } } } } },
    };
    const json others[] = { json("x"), json::object(), json::array({ json::array() }), json(nullptr), json(-1),
                            json(1e300), json(true) };
    auto try_config = [](const char* cls, const json& c) {
        try {
            layer_from_config<float>(cls, c);
        } catch (const Error&) {
        } catch (const std::exception& e) {
            FAIL_CHECK(cls << " " << c.dump() << ": " << typeid(e).name() << ": " << e.what());
        }
    };
    for (const auto& entry : layers) {
        CAPTURE(entry.first);
        for (auto it = entry.second.begin(); it != entry.second.end(); ++it) {
            json c = entry.second;
            c.erase(it.key());
            try_config(entry.first, c);
            for (const json& v : others) {
                c[it.key()] = v;
                try_config(entry.first, c);
            }
        }
    }
}

TEST_CASE("fidelity: numbers out of range for their type are clear errors")
{
    struct Case {
        const char* cls;
        json config;
        const char* expect;
    };
    const Case cases[] = {
        { "Dense", { { "units", 1e300 } }, "units" },
        { "Dense", { { "units", 18446744073709551615ull } }, "units" },
        { "Dense", { { "units", -3 } }, "units" },
        { "Conv2D", { { "filters", 2 }, { "kernel_size", 3 }, { "groups", 1e300 } }, "groups" },
        { "Conv2D", { { "nb_filter", 2 }, { "nb_row", 1e300 }, { "nb_col", 3 } }, "nb_row" },
        { "DepthwiseConv2D", { { "kernel_size", 3 }, { "depth_multiplier", -1e19 } }, "depth_multiplier" },
        { "BatchNormalization", { { "virtual_batch_size", 1e300 } }, "virtual_batch_size" },
        { "BatchNormalization", { { "axis", 4e9 } }, "axis" },
        { "Concatenate", { { "axis", 1e300 } }, "axis" },
        { "Reshape", { { "target_shape", { 2, 1e300 } } }, "target_shape" },
        { "InputLayer", { { "shape", { 4 } }, { "batch_size", 1e300 } }, "batch_size" },
        { "ZeroPadding1D", { { "padding", 1e300 } }, "padding" },
        { "Dropout", { { "rate", -0.5 } }, "rate" },
        { "SpatialDropout1D", { { "rate", 1.5 } }, "rate" },
    };
    for (const Case& c : cases) {
        CAPTURE(c.cls);
        CAPTURE(c.config);
        expect_error<ValueError>([&] { layer_from_config<float>(c.cls, c.config); }, { c.expect });
    }
}

// ---- trainable after compile ---------------------------------------------------------------------

TEST_CASE("fidelity: trainable changed after compile takes effect in fit at the next compile (Keras's rule)")
{
    SmallData d = small_data();
    auto opt = std::make_shared<Adam<float>>(0.01);
    auto m = two_dense(opt);
    Layer<float>& d1 = *m->layers()[0];
    Layer<float>& d2 = *m->layers()[1];
    REQUIRE(d1.name() == "d1");

    // Frozen before the first fit: only d2 trains, and the optimizer has slots for d2 only.
    d1.set_trainable(false);
    m->compile(opt, "sparse_categorical_crossentropy");
    const auto d1_frozen = d1.get_weights();
    m->fit(d.x, d.y, quiet_fit(1));
    CHECK(d1.get_weights()[0] == d1_frozen[0]);
    CHECK(opt->variables().size() == 1 + 2 * 2); // iteration, m and v of d2's kernel and bias

    // Unfrozen without compile: fit still trains the old set (Keras keeps its train function),
    // without an "Unknown variable" error.
    d1.set_trainable(true);
    m->fit(d.x, d.y, quiet_fit(1));
    CHECK(d1.get_weights()[0] == d1_frozen[0]);
    CHECK(opt->iterations() == 10);

    // compile with the same optimizer object: d2's slots and the step count are kept, d1 gets new
    // ones (made by the first step after compile, which calls add_variables).
    const Variable<float> d1_kernel = d1.trainable_weights()[0], d2_kernel = d2.trainable_weights()[0];
    const array_t<float> d2_momentum = slot_value(*opt, d2_kernel, 0), d2_velocity = slot_value(*opt, d2_kernel, 1);
    m->compile(opt, "sparse_categorical_crossentropy");
    opt->add_variables(m->trainable_weights());
    REQUIRE(opt->variables().size() == 1 + 2 * 4);
    CHECK(slot_value(*opt, d2_kernel, 0) == d2_momentum);
    CHECK(slot_value(*opt, d2_kernel, 1) == d2_velocity);
    CHECK(slot_value(*opt, d1_kernel, 0) == xt::zeros<float>({ 6, 8 }));
    CHECK(opt->iterations() == 10);
    m->fit(d.x, d.y, quiet_fit(1)); // 5 steps
    CHECK_FALSE(d1.get_weights()[0] == d1_frozen[0]);
    CHECK(opt->iterations() == 15);
    CHECK_FALSE(slot_value(*opt, d1_kernel, 0) == xt::zeros<float>({ 6, 8 }));

    // Frozen without compile: d1 goes on training until compile again.
    d1.set_trainable(false);
    auto before = d1.get_weights();
    m->fit(d.x, d.y, quiet_fit(1));
    CHECK_FALSE(d1.get_weights()[0] == before[0]);
    m->compile(opt, "sparse_categorical_crossentropy");
    before = d1.get_weights();
    m->fit(d.x, d.y, quiet_fit(1));
    CHECK(d1.get_weights()[0] == before[0]);
    CHECK(d2.trainable());

    // The state (slots of a weight frozen since included in the count) saves and loads by name.
    TempDir tmp("fidelity_trainable");
    d1.set_trainable(true);
    m->compile(opt, "sparse_categorical_crossentropy");
    save_model(*m, tmp.file("m.h5"));
    auto back = load_model<float>(tmp.file("m.h5"));
    CHECK(back->optimizer()->iterations() == opt->iterations());
    m->fit(d.x, d.y, quiet_fit(1));
    back->fit(d.x, d.y, quiet_fit(1));
    CHECK(max_abs_diff(m->predict(d.x, quiet_predict()), back->predict(d.x, quiet_predict())) == 0.0);
}

array_t<double> to_double(const array_t<float>& a)
{
    array_t<double> d = array_t<double>::from_shape(a.shape());
    std::copy(a.begin(), a.end(), d.begin());
    return d;
}

FitOptions<double> quiet_fit_double(int epochs)
{
    FitOptions<double> fo;
    fo.epochs = epochs;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.verbose = 0;
    return fo;
}

std::shared_ptr<Model<double>> with_head(const std::shared_ptr<Model<double>>& base, std::optional<bool> training,
                                         const std::string& head, double lr)
{
    auto inputs = Input<double>({ 6 });
    auto outputs = (*std::make_shared<Dense<double>>(3, "softmax", true, head))((*base)(inputs, training));
    auto m = std::make_shared<Model<double>>(inputs, outputs, head + "_model");
    m->compile(std::make_shared<Adam<double>>(lr), "sparse_categorical_crossentropy");
    return m;
}

TEST_CASE("fidelity: Keras's two-phase fine-tuning recipe keeps the base's statistics and checks its gradients")
{
    // examples/fine_tune_bn.cpp on 40 samples, in double so that the gradients can be checked.
    reset_layer_names();
    set_random_seed(5);
    const SmallData d = small_data();
    const array_t<double> x = to_double(d.x), y = to_double(d.y);
    const Tensor<double> tx(x), ty(y);
    auto bn = std::make_shared<BatchNormalization<double>>();
    auto dense = std::make_shared<Dense<double>>(8, "", true, "base_dense");
    auto base = std::make_shared<Functional<double>>(
      Input<double>({ 6 }), std::vector<LayerPtr<double>>{ dense, bn, std::make_shared<ReLU<double>>() }, "base");

    // 0. Pretraining moves the statistics (so that "unchanged" below means something).
    auto model_a = with_head(base, std::nullopt, "head_a", 0.01);
    model_a->fit(x, y, quiet_fit_double(2));
    const array_t<double> mean0 = bn->moving_mean().value(), var0 = bn->moving_variance().value();
    CHECK_FALSE(mean0 == xt::zeros<double>({ 8 }));

    // 1. Frozen base called with training=false: only the head trains, the base stays bit for bit.
    base->set_trainable(false);
    auto model_b = with_head(base, false, "head_b", 0.01);
    CHECK(model_b->trainable_weights().size() == 2);
    const ModelGradcheckResult g1 = gradcheck_model(*model_b, { tx }, { ty });
    CHECK(g1.passed);
    const auto base_before = base->get_weights();
    const auto head_before = model_b->get_layer("head_b")->get_weights();
    model_b->fit(x, y, quiet_fit_double(1));
    const auto base_1 = base->get_weights();
    for (std::size_t i = 0; i < base_before.size(); ++i)
        CHECK(base_1[i] == base_before[i]);
    CHECK_FALSE(model_b->get_layer("head_b")->get_weights()[0] == head_before[0]);

    // Unfrozen without compile: fit still trains the head only (Keras's rule).
    base->set_trainable(true);
    model_b->fit(x, y, quiet_fit_double(1));
    CHECK(base->get_weights()[0] == base_1[0]);

    // 2. compile again at a low rate: kernel, gamma and beta train, the statistics still do not
    //    move (the node's training=false keeps BatchNormalization in inference mode).
    model_b->compile(std::make_shared<Adam<double>>(1e-3), "sparse_categorical_crossentropy");
    CHECK(model_b->trainable_weights().size() == 6);
    const ModelGradcheckResult g2 = gradcheck_model(*model_b, { tx }, { ty });
    CHECK(g2.passed);
    CHECK(g2.report().find("gamma") != std::string::npos);
    model_b->fit(x, y, quiet_fit_double(1));
    CHECK_FALSE(dense->get_weights()[0] == base_1[0]);
    CHECK_FALSE(bn->gamma().value() == base_1[2]);
    CHECK(bn->moving_mean().value() == mean0);
    CHECK(bn->moving_variance().value() == var0);
}

} // namespace test_keras_fidelity
