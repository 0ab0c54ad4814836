// ctest-labels: sanitize
// Keras HDF5 models: real Keras files load and reproduce their stored predictions; files with
// unsupported layers fail with clear typed errors; save -> load round trips; interrupted saves.
#include "saving/keras_h5.hpp"

#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/npy.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "saving_helpers.hpp"
#include "layers/activation.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving/keras_h5_weights.hpp"

#include <doctest/doctest.h>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::have_keras_models;
using xtape::testing::keras_file;
using xtape::testing::keras_models_dir;
using xtape::testing::TempDir;
using namespace xtape::testing; // saving_helpers.hpp
namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// The DL4J *_inputs_and_outputs.h5 layout: inputs/<input name>, predictions/<output layer>.
template <class T>
std::pair<array_t<T>, array_t<T>> stored_io(const std::string& rel)
{
    io::H5File f = io::H5File::open_read(keras_file(rel));
    io::H5Group root = f.root();
    const json in = json::parse(root.read_string_attribute("inputs"));
    const json out = json::parse(root.read_string_attribute("outputs"));
    const std::string x_name = "inputs/" + in.at("inputs").at(0).get<std::string>();
    const std::string y_name = "predictions/" + out.at("outputs").at(0).get<std::string>();
    return { root.read_dataset<T>(x_name), root.read_dataset<T>(y_name) };
}

/// A small compiled model: Dense -> BN -> relu -> Dense(softmax), trained a few steps.
std::shared_ptr<Sequential<float>> small_model(const std::string& optimizer = "adam")
{
    reset_layer_names();
    auto m = std::make_shared<Sequential<float>>("small");
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    m->add(std::make_shared<Dense<float>>(8));
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<Activation<float>>("relu"));
    m->add(std::make_shared<Dense<float>>(3, "softmax"));
    m->compile(optimizer, "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

template <class T>
PredictOptions<T> quiet_predict_t()
{
    PredictOptions<T> po;
    po.verbose = 0;
    return po;
}

} // namespace

// ---- real Keras files with stored predictions ---------------------------------------------------------

TEST_CASE("saving: real Keras files reproduce their stored predictions" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    struct Case {
        std::string what;
        std::function<std::shared_ptr<Model<float>>()> load;
        std::string io;
    };
    const std::string act = "dl4j-test-resources/examples/activations/";
    const std::string sx = "dl4j-test-resources/examples/simple_sparse_xent/";
    const std::string mn = "dl4j-test-resources-2018/examples/mnist_mlp/";
    auto from_json = [](const std::string& config, const std::string& weights) {
        return [config, weights] {
            auto m = model_from_json<float>(read_text(keras_file(config)), config);
            load_weights(*m, keras_file(weights));
            return m;
        };
    };
    const std::vector<Case> cases = {
        { "ReLU_0 model.save", [&] { return load_model<float>(keras_file(act + "ReLU_0_model.h5")); },
          act + "ReLU_0_inputs_and_outputs.h5" },
        { "ReLU_0 json + weights", from_json(act + "ReLU_0_config.json", act + "ReLU_0_weights.h5"),
          act + "ReLU_0_inputs_and_outputs.h5" },
        { "simple_sparse_xent model.save",
          [&] { return load_model<float>(keras_file(sx + "simple_sparse_xent_mlp_keras_2_model.h5")); },
          sx + "simple_sparse_xent_mlp_keras_2_inputs_and_outputs.h5" },
        { "simple_sparse_xent json + weights",
          from_json(sx + "simple_sparse_xent_mlp_keras_2_config.json", sx + "simple_sparse_xent_mlp_keras_2_weights.h5"),
          sx + "simple_sparse_xent_mlp_keras_2_inputs_and_outputs.h5" },
        { "mnist_mlp Keras 2.0.6 json + weights",
          from_json(mn + "mnist_mlp_tf_keras_2_config.json", mn + "mnist_mlp_tf_keras_2_weights.h5"),
          mn + "mnist_mlp_tf_keras_2_inputs_and_outputs.h5" },
        { "mnist_mlp Keras 1.2.2 theano json + weights",
          from_json(mn + "mnist_mlp_th_keras_1_config.json", mn + "mnist_mlp_th_keras_1_weights.h5"),
          mn + "mnist_mlp_th_keras_1_inputs_and_outputs.h5" },
    };
    for (const auto& c : cases) {
        INFO(c.what);
        auto model = c.load();
        auto [x, expected] = stored_io<float>(c.io);
        array_t<float> y = model->predict(x, quiet_predict());
        const double diff = max_abs_diff(y, expected);
        MESSAGE(c.what << ": " << x.shape()[0] << " samples, max |xtape - Keras| = " << diff);
        CHECK(diff < 1e-5);
    }
}

TEST_CASE("saving: Dense files with known weights (Keras 1/2, TensorFlow/Theano)" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    array_t<double> kernel = xt::arange<double>(24.0);
    kernel.reshape({ 4, 6 });
    const array_t<double> bias = xt::arange<double>(6.0);
    const array_t<double> x = { { 1.0, -2.0, 0.5, 3.0 }, { 0.0, 1.0, 2.0, -1.0 } };
    for (const char* f : { "dense_tensorflow_1.h5", "dense_theano_1.h5", "dense_tensorflow_2.h5", "dense_theano_2.h5" }) {
        INFO(f);
        auto m = load_model<double>(keras_file(std::string("dl4j-test-resources/weights/") + f));
        REQUIRE(m->layers().size() == 1);
        CHECK(m->layers()[0]->name() == "dense_1");
        auto w = m->get_weights();
        REQUIRE(w.size() == 2);
        CHECK(w[0] == kernel);
        CHECK(w[1] == bias);
        // By hand: y = x K + b.
        array_t<double> y = m->predict(x, quiet_predict_t<double>());
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t j = 0; j < 6; ++j) {
                double s = bias(j);
                for (std::size_t k = 0; k < 4; ++k)
                    s += x(i, k) * kernel(k, j);
                CHECK(y(i, j) == doctest::Approx(s).epsilon(1e-12));
            }
        // training_config (Adam, mse) compiles the model.
        CHECK(m->compiled());
    }
}

TEST_CASE("saving: tf.keras Functional files mlp_0 / mlp_1 load" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    auto m0 = load_model<float>(keras_file("dl4j-test-resources/tfkeras/mlp_0.h5"));
    CHECK(m0->class_name() == "Functional");
    CHECK_FALSE(m0->compiled()); // no training_config
    auto m1 = load_model<float>(keras_file("dl4j-test-resources/tfkeras/mlp_1.h5"));
    CHECK(m1->compiled()); // SGD / mse
    array_t<float> y = m1->predict(random_array({ 4, 3 }, 1), quiet_predict());
    CHECK(y.shape() == std::vector<std::size_t>{ 4, 6 });
}

namespace {

/// Keras's activation functions by name, on one row (softmax needs the row).
void activate_row(const std::string& name, std::vector<double>& row)
{
    if (name == "linear")
        return;
    if (name == "softmax") {
        const double m = *std::max_element(row.begin(), row.end());
        double s = 0;
        for (double& v : row)
            s += (v = std::exp(v - m));
        for (double& v : row)
            v /= s;
        return;
    }
    for (double& v : row) {
        if (name == "relu")
            v = v > 0 ? v : 0;
        else if (name == "tanh")
            v = std::tanh(v);
        else if (name == "sigmoid")
            v = 1 / (1 + std::exp(-v));
        else if (name == "elu")
            v = v > 0 ? v : std::expm1(v);
        else if (name == "softplus")
            v = std::log1p(std::exp(v));
        else
            FAIL("activation '" << name << "' has no by-hand version in this test");
    }
}

/// A Dense/Activation/Dropout chain of a model.save file computed by hand in float64 from the
/// file's own datasets (found through weight_names) and model_config, never through the loader.
array_t<double> dense_chain_by_hand(const std::string& path, const array_t<double>& x)
{
    io::H5File f = io::H5File::open_read(path);
    io::H5Group root = f.root();
    const json config = json::parse(root.read_string_attribute("model_config"));
    io::H5Group mw = root.group("model_weights");
    const std::size_t n = x.shape()[0];
    std::size_t width = x.shape()[1];
    std::vector<double> h(x.begin(), x.end());
    int dense_layers = 0;
    for (const auto& layer : config["config"]["layers"]) {
        const std::string cls = layer["class_name"], name = layer["config"]["name"];
        std::string activation = "linear";
        if (cls == "Dense") {
            ++dense_layers;
            io::H5Group g = mw.group(name);
            const auto names = g.read_string_array_attribute("weight_names");
            REQUIRE(names.size() == 2);
            const array_t<double> kernel = g.read_dataset<double>(names[0]), bias = g.read_dataset<double>(names[1]);
            REQUIRE(kernel.shape()[0] == width);
            const std::size_t out = kernel.shape()[1];
            std::vector<double> next(n * out);
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < out; ++j) {
                    double s = bias(j);
                    for (std::size_t k = 0; k < width; ++k)
                        s += h[i * width + k] * kernel(k, j);
                    next[i * out + j] = s;
                }
            h.swap(next);
            width = out;
            activation = layer["config"].value("activation", "linear");
        } else if (cls == "Activation") {
            activation = layer["config"]["activation"];
        } else if (cls != "InputLayer" && cls != "Dropout") { // Dropout: identity at inference
            FAIL("unexpected layer " << cls);
        }
        for (std::size_t i = 0; i < n; ++i) {
            std::vector<double> row(h.begin() + static_cast<long>(i * width), h.begin() + static_cast<long>((i + 1) * width));
            activate_row(activation, row);
            std::copy(row.begin(), row.end(), h.begin() + static_cast<long>(i * width));
        }
    }
    CHECK(dense_layers > 0);
    array_t<double> y = array_t<double>::from_shape({ n, width });
    std::copy(h.begin(), h.end(), y.begin());
    return y;
}

} // namespace

TEST_CASE("saving: mlp_0 / mlp_1 predict what a by-hand float64 pass over the file's datasets gives" *
          xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    for (const std::string rel : { "dl4j-test-resources/tfkeras/mlp_0.h5", "dl4j-test-resources/tfkeras/mlp_1.h5" }) {
        INFO(rel);
        const std::string path = keras_file(rel);
        array_t<double> x = array_t<double>(random_array({ 7, 3 }, 12, -2, 2));
        const array_t<double> ref = dense_chain_by_hand(path, x);
        auto md = load_model<double>(path, false);
        const double dd = max_abs_diff(md->predict(x, quiet_predict_t<double>()), ref);
        auto mf = load_model<float>(path, false);
        const double df = max_abs_diff(array_t<double>(mf->predict(array_t<float>(x), quiet_predict())), ref);
        MESSAGE(rel << ": max |xtape - by hand| float64 " << dd << ", float32 " << df << " (outputs up to "
                    << xt::amax(xt::abs(ref))() << ")");
        CHECK(dd < 1e-12);
        CHECK(df < 1e-5);
        CHECK(xt::amax(xt::abs(ref))() > 1e-3); // the weights are not all zero
    }
}

// ---- ad01: a trained Functional Dense/BN/relu chain ------------------------------------------------------

namespace {

/// ad01's forward pass by hand, in double with plain loops, from the weights as loaded.
array_t<double> ad01_reference(const Model<double>& model, const array_t<double>& x, double epsilon)
{
    std::vector<double> h(x.begin(), x.end());
    std::size_t n = x.shape()[0], width = x.shape()[1];
    for (const auto& layer : model.layers()) {
        const auto w = layer->get_weights();
        if (layer->class_name() == "Dense") {
            const std::size_t out = w[0].shape()[1];
            std::vector<double> next(n * out);
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < out; ++j) {
                    double s = w[1](j);
                    for (std::size_t k = 0; k < width; ++k)
                        s += h[i * width + k] * w[0](k, j);
                    next[i * out + j] = s;
                }
            h.swap(next);
            width = out;
        } else if (layer->class_name() == "BatchNormalization") {
            // gamma, beta, moving_mean, moving_variance; inference: (x - mean) / sqrt(var + eps).
            for (std::size_t i = 0; i < n; ++i)
                for (std::size_t j = 0; j < width; ++j) {
                    double& v = h[i * width + j];
                    v = (v - w[2](j)) / std::sqrt(w[3](j) + epsilon) * w[0](j) + w[1](j);
                }
        } else if (layer->class_name() == "Activation") {
            for (double& v : h)
                v = v > 0 ? v : 0;
        } else {
            FAIL("unexpected layer " << layer->class_name());
        }
    }
    array_t<double> y = array_t<double>::from_shape({ n, width });
    std::copy(h.begin(), h.end(), y.begin());
    return y;
}

} // namespace

TEST_CASE("saving: ad01.h5 (tf.keras 2.4 Functional, trained BN) loads and matches a by-hand forward pass" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    const std::string path =
      keras_file("mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5");
    auto md = load_model<double>(path);
    CHECK(md->class_name() == "Functional");
    CHECK(md->layers().size() == 28);
    CHECK(md->count_params() == 269992); // 9 Dense + 9 BN (4 x width each), by hand
    // The statistics are the trained ones, not the initial 0 / 1.
    auto bn = md->get_layer("batch_normalization")->get_weights();
    CHECK(bn[3](0) != 1.0);
    CHECK(bn[2](0) != 0.0);

    array_t<double> x = array_t<double>(random_array({ 16, 640 }, 3, 0.0, 1.0));
    array_t<double> ref = ad01_reference(*md, x, 1e-3);
    array_t<double> yd = md->predict(x, quiet_predict_t<double>());
    const double dd = max_abs_diff(yd, ref);
    MESSAGE("ad01 float64: max |xtape - by hand| = " << dd);
    CHECK(dd < 1e-9);

    auto mf = load_model<float>(path);
    array_t<float> yf = mf->predict(array_t<float>(x), quiet_predict());
    for (float v : yf)
        CHECK(std::isfinite(v));
    const double df = max_abs_diff(array_t<double>(yf), ref);
    MESSAGE("ad01 float32: max |xtape - by hand (float64)| = " << df << " (outputs up to " << xt::amax(xt::abs(ref))()
                                                               << ")");
    CHECK(df < 1e-4);

    // training_config (Adam, mse) and the optimizer state (77 variables) are restored.
    REQUIRE(mf->compiled());
    CHECK(mf->optimizer()->class_name() == "Adam");
    CHECK(mf->optimizer()->iterations() > 0);
    CHECK(mf->optimizer()->variables().size() == 77);
}

// ---- optimizer state by name ------------------------------------------------------------------------

namespace {

/// (layer/weight path, momentum, velocity) of each trainable weight from an Adam's variables().
template <class T>
std::vector<std::tuple<std::string, array_t<T>, array_t<T>>> adam_slots(const Model<T>& m)
{
    std::vector<std::string> paths;
    for (const auto& l : m.layers())
        for (const auto& v : l->trainable_weights())
            paths.push_back(l->weight_path(v));
    const auto state = m.optimizer()->variables();
    REQUIRE(state.size() == 1 + 2 * paths.size());
    std::vector<std::tuple<std::string, array_t<T>, array_t<T>>> out;
    for (std::size_t j = 0; j < paths.size(); ++j)
        out.emplace_back(paths[j], state[1 + j].value(), state[1 + paths.size() + j].value());
    return out;
}

using OptimizerEntries = std::vector<std::pair<std::string, array_t<float>>>;

/// Writes `path`: the model of `xtape_file` with `state` as its optimizer_weights ((name, value) in
/// file order), written as by `keras_version`; `training_config` replaces the file's when given.
void rewrite_optimizer_weights(const std::string& xtape_file, const std::string& path, const OptimizerEntries& state,
                               const std::string& keras_version = "2.14.0", const json& training_config = json())
{
    io::H5File src = io::H5File::open_read(xtape_file);
    io::H5Group sroot = src.root();
    const auto weights = keras_h5::read_weights_group<float>(sroot.group("model_weights"));
    io::H5File out = io::H5File::create(path);
    io::H5Group root = out.root();
    for (const char* attr : { "backend", "model_config", "training_config" })
        root.write_string_attribute(attr, sroot.read_string_attribute(attr));
    root.write_string_attribute("keras_version", keras_version);
    if (!training_config.is_null())
        root.write_string_attribute("training_config", training_config.dump());
    std::vector<keras_h5::LayerWeightsRef<float>> refs;
    for (const auto& l : weights.layers) {
        keras_h5::LayerWeightsRef<float> r{ l.layer_name, l.weight_names, {} };
        for (const auto& v : l.values)
            r.values.push_back(&v);
        refs.push_back(std::move(r));
    }
    io::H5Group mw = root.create_group("model_weights");
    keras_h5::write_weights_group<float>(mw, refs, keras_version, "tensorflow");
    if (state.empty()) {
        out.close();
        return;
    }
    io::H5Group og = root.create_group("optimizer_weights");
    std::vector<std::string> names;
    for (const auto& entry : state) {
        names.push_back(entry.first);
        og.write_dataset<float>(entry.first, entry.second);
    }
    og.write_string_array_attribute("weight_names", names);
    out.close();
}

} // namespace

TEST_CASE("saving: ad01's Adam state is restored slot by slot from the datasets that name it" *
          xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    const std::string path =
      keras_file("mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5");
    auto m = load_model<double>(path);
    REQUIRE(m->compiled());
    io::H5File f = io::H5File::open_read(path);
    io::H5Group g = f.root().group("optimizer_weights");
    CHECK(m->optimizer()->iterations() == static_cast<std::int64_t>(g.read_dataset<double>("Adam/iter:0")()));
    const auto slots = adam_slots(*m);
    CHECK(slots.size() == 38);
    for (const auto& slot : slots) {
        // Not a structured binding: clang 14 (the sanitizer build) cannot capture one in INFO.
        const auto& weight = std::get<0>(slot);
        const auto& momentum = std::get<1>(slot);
        const auto& velocity = std::get<2>(slot);
        INFO(weight);
        // tf.keras 2.4 names: Adam/<layer>/<weight>/m:0 and .../v:0
        CHECK(momentum == g.read_dataset<double>("Adam/" + weight + "/m:0"));
        CHECK(velocity == g.read_dataset<double>("Adam/" + weight + "/v:0"));
        CHECK(xt::amax(velocity)() > 0); // trained state, not fresh zeros
    }
}

TEST_CASE("saving: every optimizer_weights name of the real files says its slot and weight" *
          xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    // Three naming schemes (Note [Optimizer state by name] in keras_h5.cpp): issue_9560 2.2.4-tf
    // "training/Adam/<layer>/<w>/m:0", ad01 2.4.0 "Adam/<layer>/<w>/m:0", str_ww_ref_model 2.14
    // "Adam/m/<layer>/<w>:0" with m and v interleaved.
    struct Case {
        std::string rel;
        std::size_t trainable;
    };
    for (const Case& c : { Case{ "dl4j-test-resources/weights/issue_9560.h5", 12 },
                           Case{ "mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5", 38 },
                           Case{ "mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5",
                                 18 } }) {
        INFO(c.rel);
        io::H5File f = io::H5File::open_read(keras_file(c.rel));
        io::H5Group root = f.root();
        // The file's weights as "<layer>/<weight>", from model_weights' own weight_names.
        std::set<std::string> weights;
        const auto wg = keras_h5::read_weights_group<float>(root.group("model_weights"));
        for (const auto& l : wg.layers)
            for (const auto& n : l.weight_names)
                weights.insert(l.layer_name + "/" + keras_h5::short_weight_name(n, l.layer_name));
        const auto names = root.group("optimizer_weights").read_string_array_attribute("weight_names");
        std::map<std::string, std::size_t> per_kind;
        std::set<std::string> keys;
        for (const auto& n : names) {
            INFO(n);
            const std::string key = keras_h5::optimizer_state_key(n);
            REQUIRE_FALSE(key.empty());
            CHECK(keys.insert(key).second); // unique
            if (key == "iteration")
                continue;
            const auto bar = key.find('|');
            REQUIRE(bar != std::string::npos);
            ++per_kind[key.substr(0, bar)];
            CHECK(weights.count(key.substr(bar + 1)) == 1); // a weight of this file
        }
        CHECK(keys.count("iteration") == 1);
        CHECK(per_kind == std::map<std::string, std::size_t>{ { "momentum", c.trainable }, { "velocity", c.trainable } });
    }
    // xtape's own names and the forms no key can be read from.
    CHECK(keras_h5::optimizer_state_key("adam/dense/kernel/momentum:0") == "momentum|dense/kernel");
    CHECK(keras_h5::optimizer_state_key("rmsprop/dense/bias/rms:0") == "velocity|dense/bias");
    CHECK(keras_h5::optimizer_state_key("adam/iteration:0") == "iteration");
    CHECK(keras_h5::optimizer_state_key("Adam/iterations:0") == "iteration");
    CHECK(keras_h5::optimizer_state_key("Adam/Variable_3:0").empty());
    // Nadam's momentum cache under its names in Keras 3 / xtape, tf.keras 2's legacy Nadam, Keras 2.
    CHECK(keras_h5::optimizer_state_key("nadam/u_product:0") == "u_product");
    CHECK(keras_h5::optimizer_state_key("training/Nadam/momentum_cache:0") == "u_product");
    CHECK(keras_h5::optimizer_state_key("Nadam/m_schedule:0") == "u_product");
}

TEST_CASE("saving: optimizer state in Keras 2.11+ order (m and v interleaved per weight) is restored by name")
{
    TempDir tmp("saving_opt_names");
    auto a = small_model();
    SmallData d = small_data();
    a->fit(d.x, d.y, quiet_fit(2));
    const std::string xtape_file = tmp.file("xtape.h5");
    save_model(*a, xtape_file);

    // The same model with other optimizer_weights: `state` as (name, value) in file order.
    using Entries = OptimizerEntries;
    auto rewrite = [&](const std::string& path, const Entries& state) { rewrite_optimizer_weights(xtape_file, path, state); };
    auto check_restored = [&](const std::string& path) {
        auto b = load_model<float>(path);
        REQUIRE(b->compiled());
        CHECK(b->optimizer()->iterations() == a->optimizer()->iterations());
        const auto want = adam_slots(*a), got = adam_slots(*b);
        REQUIRE(want.size() == got.size());
        for (std::size_t j = 0; j < want.size(); ++j) {
            INFO(std::get<0>(want[j]));
            CHECK(std::get<0>(got[j]) == std::get<0>(want[j]));
            CHECK(std::get<1>(got[j]) == std::get<1>(want[j]));
            CHECK(std::get<2>(got[j]) == std::get<2>(want[j]));
        }
        return b;
    };
    const array_t<float> iteration(static_cast<float>(a->optimizer()->iterations()));
    const auto slots = adam_slots(*a);

    // Keras 2.14 (str_ww_ref_model.h5's form): iteration:0, Adam/m/<layer>/<w>:0, Adam/v/<layer>/<w>:0, ...
    Entries k214{ { "iteration:0", iteration } };
    for (const auto& [weight, momentum, velocity] : slots) {
        k214.emplace_back("Adam/m/" + weight + ":0", momentum);
        k214.emplace_back("Adam/v/" + weight + ":0", velocity);
    }
    rewrite(tmp.file("k214.h5"), k214);
    auto b = check_restored(tmp.file("k214.h5"));
    // Both continue the run identically.
    auto c = load_model<float>(xtape_file);
    c->fit(d.x, d.y, quiet_fit(3, 2));
    b->fit(d.x, d.y, quiet_fit(3, 2));
    CHECK(max_abs_diff(c->predict(d.x, quiet_predict()), b->predict(d.x, quiet_predict())) == 0.0);

    // tf.keras 2.x names in a shuffled order: still found by name.
    Entries tf2{ { "training/Adam/iter:0", iteration } };
    for (auto it = slots.rbegin(); it != slots.rend(); ++it) {
        tf2.emplace_back("training/Adam/" + std::get<0>(*it) + "/v:0", std::get<2>(*it));
        tf2.emplace_back("training/Adam/" + std::get<0>(*it) + "/m:0", std::get<1>(*it));
    }
    rewrite(tmp.file("tf2.h5"), tf2);
    check_restored(tmp.file("tf2.h5"));

    // Names that say nothing (Keras 2.2's "Variable_N"): Keras's positional order, which is xtape's.
    Entries opaque{ { "Adam/iterations:0", iteration } };
    for (std::size_t j = 0; j < slots.size(); ++j)
        opaque.emplace_back("Adam/Variable_" + std::to_string(j) + ":0", std::get<1>(slots[j]));
    for (std::size_t j = 0; j < slots.size(); ++j)
        opaque.emplace_back("Adam/Variable_" + std::to_string(slots.size() + j) + ":0", std::get<2>(slots[j]));
    rewrite(tmp.file("opaque.h5"), opaque);
    check_restored(tmp.file("opaque.h5"));
}

TEST_CASE("saving: Nadam's momentum cache is restored by name from tf.keras 2's legacy order")
{
    TempDir tmp("saving_nadam_names");
    auto a = small_model("nadam");
    SmallData d = small_data();
    a->fit(d.x, d.y, quiet_fit(2));
    const std::string xtape_file = tmp.file("xtape.h5");
    save_model(*a, xtape_file);
    // xtape's (Keras 3's) order is [iteration, m..., v..., u_product]; tf.keras 2's legacy Nadam
    // wrote [iter, momentum_cache, m..., v...].
    std::vector<std::string> paths;
    for (const auto& l : a->layers())
        for (const auto& v : l->trainable_weights())
            paths.push_back(l->weight_path(v));
    const auto state = a->optimizer()->variables();
    const std::size_t n = paths.size();
    REQUIRE(state.size() == 2 + 2 * n);
    const array_t<float> u_product = state.back().value();
    CHECK(u_product(0) < 1.0f); // moved from its initial 1
    OptimizerEntries legacy{ { "training/Nadam/iter:0", state[0].value() },
                             { "training/Nadam/momentum_cache:0", u_product } };
    for (std::size_t j = 0; j < n; ++j)
        legacy.emplace_back("training/Nadam/" + paths[j] + "/m:0", state[1 + j].value());
    for (std::size_t j = 0; j < n; ++j)
        legacy.emplace_back("training/Nadam/" + paths[j] + "/v:0", state[1 + n + j].value());
    rewrite_optimizer_weights(xtape_file, tmp.file("legacy.h5"), legacy, "2.2.4-tf");
    auto b = load_model<float>(tmp.file("legacy.h5"));
    REQUIRE(b->compiled());
    CHECK(b->optimizer()->iterations() == a->optimizer()->iterations());
    const auto restored = b->optimizer()->variables();
    REQUIRE(restored.size() == state.size());
    CHECK(restored.back().value() == u_product);
    a->fit(d.x, d.y, quiet_fit(3, 2));
    b->fit(d.x, d.y, quiet_fit(3, 2));
    CHECK(max_abs_diff(a->predict(d.x, quiet_predict()), b->predict(d.x, quiet_predict())) == 0.0);
}

TEST_CASE("saving: a file's keras_version chooses the optimizer defaults its training_config leaves out")
{
    TempDir tmp("saving_version_defaults");
    auto a = small_model();
    SmallData d = small_data();
    a->fit(d.x, d.y, quiet_fit(1));
    const std::string xtape_file = tmp.file("xtape.h5");
    save_model(*a, xtape_file, /*include_optimizer=*/false);
    json tc;
    {
        io::H5File f = io::H5File::open_read(xtape_file);
        tc = json::parse(f.root().read_string_attribute("training_config"));
    }
    // Keras 1 and 2 wrote only their own arguments; these configs name none.
    tc["optimizer_config"] = { { "class_name", "Adagrad" }, { "config", json::object() } };
    auto adagrad_of = [&](const std::string& version) {
        const std::string path = tmp.file("adagrad_" + version + ".h5");
        rewrite_optimizer_weights(xtape_file, path, {}, version, tc);
        return load_model<float>(path)->optimizer()->get_config();
    };
    for (const char* v : { "1.2.2", "2.1.3" }) {
        CAPTURE(v);
        const json c = adagrad_of(v);
        CHECK(c["initial_accumulator_value"] == 0.0);
        CHECK(c["learning_rate"] == doctest::Approx(0.01));
        CHECK(c["epsilon"] == doctest::Approx(std::string(v) == "1.2.2" ? 1e-8 : 1e-7));
    }
    for (const char* v : { "2.2.4-tf", "2.14.0" }) {
        CAPTURE(v);
        CHECK(adagrad_of(v)["initial_accumulator_value"] == doctest::Approx(0.1));
    }
}

// ---- files xtape cannot build -------------------------------------------------------------------------

TEST_CASE("saving: every real file either loads or fails with a typed error naming the file and the layer" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    // file -> a layer (or class) the error must name
    const std::map<std::string, std::string> unsupported = {
    };
    std::set<std::string> loaded, weights_only, failed;
    for (const auto& e : fs::recursive_directory_iterator(keras_models_dir())) {
        if (e.path().extension() != ".h5" || e.path().string().find("inputs_and_outputs") != std::string::npos)
            continue;
        const std::string rel = fs::relative(e.path(), keras_models_dir()).string();
        INFO(rel);
        try {
            load_model<float>(e.path().string());
            loaded.insert(rel);
        } catch (const NotImplementedError& err) {
            failed.insert(rel);
            const std::string msg = err.what();
            INFO(msg);
            CHECK(msg.find(e.path().filename().string()) != std::string::npos);
            auto it = unsupported.find(rel);
            REQUIRE(it != unsupported.end());
            CHECK(msg.find(it->second) != std::string::npos);
            CHECK(msg.find("layer '") != std::string::npos);
        } catch (const ValueError& err) {
            // save_weights files: the error says so.
            weights_only.insert(rel);
            CHECK(std::string(err.what()).find("only weights") != std::string::npos);
        }
    }
    std::set<std::string> expected_failed;
    for (const auto& kv : unsupported)
        expected_failed.insert(kv.first);
    CHECK(failed == expected_failed);
    // every model file loads now that convolutions, pooling, reshaping and graphs exist
    // (GAPError, issue_9560, wgan, dcgan and pretrainedResnet were the last ones refused)
    CHECK(loaded.size() == 28);
    CHECK(weights_only.size() == 6);
    MESSAGE("loaded: " << loaded.size() << ", weights-only: " << weights_only.size() << ", refused: " << failed.size());
    for (const auto& l : loaded)
        MESSAGE("  loads: " << l);
}

TEST_CASE("saving: broken files give IOError naming the file")
{
    TempDir tmp("saving_broken");
    const std::string text = tmp.file("model.h5");
    std::ofstream(text) << "not hdf5";
    expect_error<IOError>([&] { load_model<float>(text); }, { text });
    expect_error<IOError>([&] { load_model<float>(tmp.file("absent.h5")); }, { "absent.h5" });
}

TEST_CASE("saving: a truncated real file gives IOError naming the file" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    TempDir tmp("saving_broken_real");
    const std::string src = keras_file("dl4j-test-resources/examples/activations/ReLU_0_model.h5");
    const std::string data = read_text(src);
    const std::string cut = tmp.file("cut.h5");
    std::ofstream(cut, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size() * 2 / 3));
    expect_error<IOError>([&] { load_model<float>(cut); }, { cut });
    // A weights-only file is not a model.
    expect_error<ValueError>([&] { load_model<float>(keras_file("dl4j-test-resources/examples/activations/ReLU_0_weights.h5")); },
                             { "ReLU_0_weights.h5", "only weights", "load_weights" });
}

// ---- save -> load ---------------------------------------------------------------------------------------

TEST_CASE("saving: save_model writes tf.keras's structure and loads back identically")
{
    TempDir tmp("saving_roundtrip");
    const std::string path = tmp.file("m.h5");
    auto m = small_model();
    SmallData d = small_data();
    m->fit(d.x, d.y, quiet_fit(2));
    save_model(*m, path);

    {
        io::H5File f = io::H5File::open_read(path);
        io::H5Group root = f.root();
        CHECK(root.read_string_attribute("keras_version") == keras_h5_written_keras_version);
        CHECK(root.read_string_attribute("backend") == "tensorflow");
        const json mc = json::parse(root.read_string_attribute("model_config"));
        CHECK(mc["class_name"] == "Sequential");
        CHECK(mc["config"]["layers"][0]["class_name"] == "InputLayer");
        CHECK(mc["config"]["layers"][0]["config"]["batch_input_shape"] == json::array({ nullptr, 6 }));
        const json tc = json::parse(root.read_string_attribute("training_config"));
        CHECK(tc["optimizer_config"]["class_name"] == "Adam");
        CHECK(tc["loss"]["class_name"] == "SparseCategoricalCrossentropy");
        CHECK(tc["metrics"] == json::array({ "accuracy" }));
        io::H5Group mw = root.group("model_weights");
        CHECK(mw.read_string_array_attribute("layer_names") ==
              std::vector<std::string>{ "dense", "batch_normalization", "activation", "dense_1" });
        CHECK(mw.read_string_attribute("keras_version") == keras_h5_written_keras_version);
        CHECK(mw.group("batch_normalization").read_string_array_attribute("weight_names") ==
              std::vector<std::string>{ "batch_normalization/gamma:0", "batch_normalization/beta:0",
                                        "batch_normalization/moving_mean:0", "batch_normalization/moving_variance:0" });
        CHECK(root.has_dataset("model_weights/dense/dense/kernel:0"));
        CHECK(root.dataset_shape("model_weights/dense/dense/kernel:0") == shape_t{ 6, 8 });
        CHECK(root.dataset_dtype("model_weights/dense_1/dense_1/bias:0") == "float32");
        CHECK(mw.group("activation").read_string_array_attribute("weight_names").empty());
        REQUIRE(root.has_group("optimizer_weights"));
        const auto on = root.group("optimizer_weights").read_string_array_attribute("weight_names");
        REQUIRE(on.size() == 1 + 2 * 6); // iteration, then momentum and velocity of 6 trainable weights
        CHECK(on[0] == "adam/iteration:0");
        CHECK(on[1] == "adam/dense/kernel/momentum:0");
        CHECK(on[7] == "adam/dense/kernel/velocity:0");
        CHECK(root.read_dataset<double>("optimizer_weights/adam/iteration:0")() == 10.0); // 2 epochs x 5 batches
    }

    auto back = load_model<float>(path);
    CHECK(back->name() == "small");
    CHECK(back->compiled());
    array_t<float> y0 = m->predict(d.x, quiet_predict()), y1 = back->predict(d.x, quiet_predict());
    CHECK(max_abs_diff(y0, y1) == 0.0);
    const auto w0 = m->get_weights(), w1 = back->get_weights();
    REQUIRE(w0.size() == w1.size());
    for (std::size_t i = 0; i < w0.size(); ++i)
        CHECK(w0[i] == w1[i]);

    // fit(initial_epoch=2) after loading continues the same run step for step.
    m->fit(d.x, d.y, quiet_fit(4, 2));
    back->fit(d.x, d.y, quiet_fit(4, 2));
    CHECK(back->optimizer()->iterations() == 20);
    const auto c0 = m->get_weights(), c1 = back->get_weights();
    for (std::size_t i = 0; i < c0.size(); ++i)
        CHECK(max_abs_diff(c0[i], c1[i]) == 0.0);

    // Without the optimizer state the continued run differs (the state matters).
    save_model(*m, path, /*include_optimizer=*/false);
    auto fresh = load_model<float>(path);
    CHECK(fresh->optimizer()->variables().empty());
}

TEST_CASE("saving: a Functional model round-trips with its InputLayer in layer_names")
{
    TempDir tmp("saving_functional");
    reset_layer_names();
    std::vector<LayerPtr<float>> layers{ std::make_shared<Dense<float>>(5, "tanh"),
                                         std::make_shared<BatchNormalization<float>>(),
                                         std::make_shared<Dense<float>>(2) };
    auto f = std::make_shared<Functional<float>>(Input<float>({ 4 }, "inp"), layers, "chain");
    const std::string path = tmp.file("f.h5");
    save_model(*f, path);
    {
        io::H5File h = io::H5File::open_read(path);
        io::H5Group root = h.root();
        CHECK_FALSE(root.has_attribute("training_config"));
        CHECK_FALSE(root.has_group("optimizer_weights"));
        CHECK(root.group("model_weights").read_string_array_attribute("layer_names") ==
              std::vector<std::string>{ "inp", "dense", "batch_normalization", "dense_1" });
        const json mc = json::parse(root.read_string_attribute("model_config"));
        CHECK(mc["class_name"] == "Functional");
        // tf.keras's node form
        CHECK(mc["config"]["layers"][1]["inbound_nodes"] == json::parse(R"([[["inp", 0, 0, {}]]])"));
    }
    auto g = load_model<float>(path);
    CHECK(g->class_name() == "Functional");
    array_t<float> x = random_array({ 5, 4 }, 9);
    CHECK(max_abs_diff(f->predict(x, quiet_predict()), g->predict(x, quiet_predict())) == 0.0);
    CHECK(g->summary_string(80).find("inp (InputLayer)") != std::string::npos);

    // model_to_json / model_from_json keep the architecture.
    auto h = model_from_json<float>(model_to_json_string(*g));
    CHECK(h->count_params() == g->count_params());
    CHECK(json::parse(model_to_json_string(*g))["keras_version"] == keras_h5_written_keras_version);
}

TEST_CASE("saving: save_weights of a Functional model lists its InputLayer first, as tf.keras does")
{
    TempDir tmp("saving_functional_weights");
    auto make = [](unsigned seed) {
        reset_layer_names();
        set_random_seed(seed);
        std::vector<LayerPtr<float>> layers{ std::make_shared<Dense<float>>(5, "tanh"),
                                             std::make_shared<BatchNormalization<float>>(),
                                             std::make_shared<Dense<float>>(2) };
        return std::make_shared<Functional<float>>(Input<float>({ 4 }, "inp"), layers, "chain");
    };
    auto f = make(1);
    const std::string path = tmp.file("fw.h5");
    save_weights(*f, path);
    {
        io::H5File h = io::H5File::open_read(path);
        io::H5Group root = h.root();
        CHECK(root.read_string_array_attribute("layer_names") ==
              std::vector<std::string>{ "inp", "dense", "batch_normalization", "dense_1" });
        REQUIRE(root.has_group("inp"));
        CHECK(root.group("inp").member_names().empty()); // no weights
        CHECK(root.has_dataset("dense/dense/kernel:0"));
    }
    // The InputLayer has no weights, so matching by order and by name both ignore it.
    array_t<float> x = random_array({ 6, 4 }, 2);
    auto g = make(2);
    CHECK(max_abs_diff(f->predict(x, quiet_predict()), g->predict(x, quiet_predict())) > 0);
    load_weights(*g, path);
    CHECK(max_abs_diff(f->predict(x, quiet_predict()), g->predict(x, quiet_predict())) == 0.0);
    auto h = make(3);
    load_weights(*h, path, /*by_name=*/true);
    CHECK(max_abs_diff(f->predict(x, quiet_predict()), h->predict(x, quiet_predict())) == 0.0);
    // A Sequential model hides its InputLayer (model.layers in tf.keras): not listed.
    auto s = small_model();
    save_weights(*s, tmp.file("sw.h5"));
    io::H5File sh = io::H5File::open_read(tmp.file("sw.h5"));
    CHECK(sh.root().read_string_array_attribute("layer_names").front() == "dense");
}

TEST_CASE("saving: training_config keeps the metrics given to compile, before any batch")
{
    TempDir tmp("saving_metrics");
    auto m = small_model();
    auto top2 = std::make_shared<SparseTopKCategoricalAccuracy<float>>(2, "top2");
    m->compile("adam", "sparse_categorical_crossentropy", { "accuracy", MetricSpec<float>(top2) });
    CHECK(m->metrics_names() == std::vector<std::string>{ "loss" }); // nothing resolved yet
    const json tc = training_config_of(*m);
    REQUIRE(tc["metrics"].size() == 2);
    CHECK(tc["metrics"][0] == "accuracy");
    CHECK(tc["metrics"][1]["class_name"] == "SparseTopKCategoricalAccuracy");
    CHECK(tc["metrics"][1]["config"]["name"] == "top2");
    CHECK(tc["metrics"][1]["config"]["k"] == 2);

    const std::string path = tmp.file("m.h5");
    save_model(*m, path);
    {
        io::H5File h = io::H5File::open_read(path);
        const json stored = json::parse(h.root().read_string_attribute("training_config"));
        CHECK(stored["metrics"] == tc["metrics"]);
    }
    auto back = load_model<float>(path);
    REQUIRE(back->compiled());
    REQUIRE(back->metric_specs().size() == 2);
    CHECK(back->metric_specs()[0].id == "accuracy");
    // Evaluating the loaded model reports both metrics, "accuracy" resolved from the labels' shape.
    SmallData d = small_data(16);
    EvaluateOptions<float> eo;
    eo.verbose = 0;
    const Logs logs = back->evaluate(d.x, d.y, eo);
    CHECK(logs.count("accuracy") == 1);
    CHECK(logs.count("top2") == 1);
    CHECK(logs.at("top2") >= logs.at("accuracy"));
    // Saved again after a batch, the config is unchanged ("accuracy", not what it resolved to).
    CHECK(training_config_of(*back)["metrics"] == tc["metrics"]);
}

TEST_CASE("saving: Keras 1.0/1.1 WeightRegularizer and ActivityRegularizer configs build as L1L2")
{
    // A Keras 1.1 Dense config as model.to_json() wrote it.
    const std::string text = R"({"class_name": "Sequential", "keras_version": "1.1.0", "config": [
        {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 3, "input_dim": 4,
         "batch_input_shape": [null, 4], "init": "glorot_uniform", "activation": "linear", "bias": true,
         "W_regularizer": {"name": "WeightRegularizer", "l1": 0.0, "l2": 0.5},
         "b_regularizer": null,
         "activity_regularizer": {"name": "ActivityRegularizer", "l1": 0.25, "l2": 0.0},
         "W_constraint": null, "b_constraint": null, "trainable": true}}]})";
    auto m = model_from_json<double>(text, "keras1.json");
    auto dense = m->get_layer("dense_1");
    const json c = dense->get_config();
    CHECK(c["kernel_regularizer"]["class_name"] == "L1L2");
    CHECK(c["kernel_regularizer"]["config"]["l2"] == 0.5);
    CHECK(c["activity_regularizer"]["class_name"] == "L1L2");
    CHECK(c["activity_regularizer"]["config"]["l1"] == 0.25);
    // The penalties are added: 0.5 sum W^2, and 0.25 sum |output| over the batch size (as
    // Layer::__call__ of tf.keras divides the activity penalty).
    const auto w = dense->get_weights();
    array_t<double> x = array_t<double>(random_array({ 2, 4 }, 8));
    Tensor<double> y = (*m)(Tensor<double>(x), false);
    double kernel_penalty = 0, activity_penalty = 0;
    for (double v : w[0])
        kernel_penalty += 0.5 * v * v;
    for (double v : y.value())
        activity_penalty += 0.25 * std::abs(v) / 2;
    double total = 0;
    for (const auto& l : m->losses())
        total += l.item();
    CHECK(total == doctest::Approx(kernel_penalty + activity_penalty).epsilon(1e-12));
}

TEST_CASE("saving: a loaded real model saves and loads back identically" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    TempDir tmp("saving_real_roundtrip");
    auto m = load_model<float>(keras_file("mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5"));
    const std::string path = tmp.file("ad01_copy.h5");
    save_model(*m, path);
    auto back = load_model<float>(path);
    array_t<float> x = random_array({ 8, 640 }, 4, 0, 1);
    CHECK(max_abs_diff(m->predict(x, quiet_predict()), back->predict(x, quiet_predict())) == 0.0);
    CHECK(back->optimizer()->iterations() == m->optimizer()->iterations());
    io::H5File h = io::H5File::open_read(path);
    CHECK(h.root().group("model_weights").read_string_array_attribute("layer_names").front() == "input_1");
}

TEST_CASE("saving: save_weights / load_weights, by order and by name, with clear mismatch errors")
{
    TempDir tmp("saving_weights");
    const std::string path = tmp.file("w.h5");
    auto a = small_model();
    SmallData d = small_data();
    a->fit(d.x, d.y, quiet_fit(1));
    save_weights(*a, path);
    {
        io::H5File f = io::H5File::open_read(path);
        CHECK(f.root().read_string_array_attribute("layer_names").size() == 4);
        CHECK(f.root().has_dataset("dense/dense/kernel:0"));
    }
    auto b = small_model(); // same names after reset_layer_names, fresh weights
    CHECK(max_abs_diff(a->predict(d.x, quiet_predict()), b->predict(d.x, quiet_predict())) > 0);
    load_weights(*b, path);
    CHECK(max_abs_diff(a->predict(d.x, quiet_predict()), b->predict(d.x, quiet_predict())) == 0.0);

    // by_name: only layers whose names match take weights.
    reset_layer_names();
    auto c = std::make_shared<Sequential<float>>();
    c->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    DenseOptions<float> o;
    o.units = 8;
    o.name = "dense";
    c->add(std::make_shared<Dense<float>>(o));
    c->add(std::make_shared<Dense<float>>(4, "linear", true, "other"));
    load_weights(*c, path, /*by_name=*/true);
    CHECK(c->get_layer("dense")->get_weights()[0] == a->get_layer("dense")->get_weights()[0]);

    // by order: 2 layers with weights vs 3 in the file.
    const auto before = c->get_weights();
    expect_error<ValueError>([&] { load_weights(*c, path); }, { path, "layer count mismatch", "2", "3" });
    // a shape mismatch names the layer, the weight and both shapes; nothing changed.
    reset_layer_names();
    auto e = std::make_shared<Sequential<float>>();
    e->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    e->add(std::make_shared<Dense<float>>(8));
    e->add(std::make_shared<BatchNormalization<float>>());
    e->add(std::make_shared<Dense<float>>(5));
    const auto e_before = e->get_weights();
    expect_error<ShapeError>([&] { load_weights(*e, path); }, { path, "dense_1", "kernel", "(8, 5)", "(8, 3)" });
    const auto e_after = e->get_weights();
    for (std::size_t i = 0; i < e_before.size(); ++i)
        CHECK(e_before[i] == e_after[i]);
    // skip_mismatch with by_name skips the bad layer and loads the rest.
    load_weights(*e, path, true, true);
    CHECK(e->get_layer("dense")->get_weights()[0] == a->get_layer("dense")->get_weights()[0]);
    CHECK(e->get_layer("dense_1")->get_weights()[0] == e_before[e_before.size() - 2]);
    (void)before;
}

TEST_CASE("saving: a save that fails midway leaves the previous file readable")
{
    TempDir tmp("saving_interrupted");
    const std::string path = tmp.file("m.h5");
    auto m = small_model();
    SmallData d = small_data();
    m->fit(d.x, d.y, quiet_fit(1));
    save_model(*m, path);
    const array_t<float> before = m->predict(d.x, quiet_predict());

    m->fit(d.x, d.y, quiet_fit(1)); // the weights change
    for (const char* stage : { "model_weights", "optimizer_weights" }) {
        INFO(stage);
        keras_h5::testing::set_save_fault_hook([stage](const std::string& s) {
            if (s == stage)
                throw IOError("simulated failure: disk full");
        });
        expect_error<IOError>([&] { save_model(*m, path); }, { "simulated failure" });
        keras_h5::testing::set_save_fault_hook({});
        auto old = load_model<float>(path);
        CHECK(max_abs_diff(old->predict(d.x, quiet_predict()), before) == 0.0);
    }
    // A failure after the file was written, just before the rename.
    io::testing::set_atomic_write_fault_hook([](const std::string& s) {
        if (s == "synced")
            throw IOError("simulated crash before rename");
    });
    expect_error<IOError>([&] { save_weights(*m, path); }, { "simulated crash" });
    io::testing::set_atomic_write_fault_hook({});
    CHECK(max_abs_diff(load_model<float>(path)->predict(d.x, quiet_predict()), before) == 0.0);
    // No temporary file is left behind.
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(tmp.dir)) {
        (void)e;
        ++files;
    }
    CHECK(files == 1);
    // And a successful save replaces it.
    save_model(*m, path);
    CHECK(max_abs_diff(load_model<float>(path)->predict(d.x, quiet_predict()), m->predict(d.x, quiet_predict())) == 0.0);
}

TEST_CASE("saving: Keras 1 and 2 JSON configs with BatchNormalization build" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    for (const char* f : { "dl4j-test-resources/configs/keras1/mlp_config.json",
                           "dl4j-test-resources/configs/keras2/keras2_mlp_config.json" }) {
        INFO(f);
        const std::string text = read_text(keras_file(f));
        std::shared_ptr<Model<float>> m;
        try {
            m = model_from_json<float>(text, f);
        } catch (const Error& e) {
            FAIL(e.what());
        }
        bool has_bn = false;
        for (const auto& l : m->layers())
            has_bn = has_bn || l->class_name() == "BatchNormalization";
        CHECK(has_bn);
    }
}

TEST_CASE("saving: unbuilt models cannot be saved")
{
    TempDir tmp("saving_unbuilt");
    reset_layer_names();
    Sequential<float> m;
    m.add(std::make_shared<Dense<float>>(3));
    expect_error<ValueError>([&] { save_model(m, tmp.file("u.h5")); }, { "u.h5", "not built" });
    CHECK_FALSE(fs::exists(tmp.file("u.h5")));
}

TEST_CASE("saving: a Keras 3 legacy .h5 file (weight paths without :0, dtype policies, top_level_model_weights)")
{
    // Written here in the layout of Keras 3's legacy_h5_format.save_model_to_hdf5.
    TempDir tmp("saving_keras3");
    const std::string path = tmp.file("k3.h5");
    const json policy = json::parse(
      R"({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null})");
    const json init = json::parse(
      R"({"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null})");
    json dense = { { "module", "keras.layers" },
                   { "class_name", "Dense" },
                   { "config",
                     { { "name", "dense" }, { "trainable", true }, { "dtype", policy }, { "units", 3 },
                       { "activation", "relu" }, { "use_bias", true }, { "kernel_initializer", init },
                       { "bias_initializer", init }, { "kernel_regularizer", nullptr }, { "bias_regularizer", nullptr },
                       { "kernel_constraint", nullptr }, { "bias_constraint", nullptr } } },
                   { "registered_name", nullptr },
                   { "build_config", { { "input_shape", { nullptr, 4 } } } } };
    json bn = { { "module", "keras.layers" },
                { "class_name", "BatchNormalization" },
                { "config",
                  { { "name", "batch_normalization" }, { "trainable", true }, { "dtype", policy }, { "axis", -1 },
                    { "momentum", 0.99 }, { "epsilon", 0.001 }, { "center", true }, { "scale", true },
                    { "beta_initializer", init }, { "gamma_initializer", init },
                    { "moving_mean_initializer", init }, { "moving_variance_initializer", init },
                    { "beta_regularizer", nullptr }, { "gamma_regularizer", nullptr }, { "beta_constraint", nullptr },
                    { "gamma_constraint", nullptr }, { "synchronized", false } } },
                { "registered_name", nullptr } };
    json input = { { "module", "keras.layers" },
                   { "class_name", "InputLayer" },
                   { "config", { { "batch_shape", { nullptr, 4 } }, { "dtype", "float32" }, { "sparse", false },
                                 { "name", "input_layer" } } },
                   { "registered_name", nullptr } };
    json model_config = { { "module", "keras" },
                          { "class_name", "Sequential" },
                          { "config",
                            { { "name", "sequential" }, { "trainable", true }, { "dtype", policy },
                              { "layers", { input, dense, bn } }, { "build_input_shape", { nullptr, 4 } } } },
                          { "registered_name", nullptr } };
    json training_config = json::parse(R"({"loss": "mean_squared_error", "loss_weights": null, "metrics": ["mae"],
        "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1, "jit_compile": false,
        "optimizer_config": {"class_name": "Adam", "config": {"name": "adam", "learning_rate": 0.001,
        "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false,
        "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null,
        "gradient_accumulation_steps": null, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}}})");
    array_t<float> kernel = { { 0.5f, -1.f, 0.25f }, { 1.f, 0.f, -0.5f }, { -0.25f, 0.75f, 1.f }, { 0.f, 0.5f, 0.5f } };
    array_t<float> bias = { 0.1f, -0.2f, 0.3f };
    array_t<float> gamma = { 1.5f, 0.5f, 2.f }, beta = { 0.f, 1.f, -1.f }, mean = { 0.2f, 0.1f, 0.4f },
                   var = { 4.f, 0.25f, 1.f };
    {
        io::H5File f = io::H5File::create(path);
        io::H5Group root = f.root();
        root.write_string_attribute("keras_version", "3.3.3");
        root.write_string_attribute("backend", "jax");
        root.write_string_attribute("model_config", model_config.dump());
        root.write_string_attribute("training_config", training_config.dump());
        io::H5Group mw = root.create_group("model_weights");
        mw.write_string_array_attribute("layer_names", { "dense", "batch_normalization" });
        mw.write_string_attribute("backend", "jax");
        mw.write_string_attribute("keras_version", "3.3.3");
        io::H5Group d = mw.create_group("dense");
        d.write_string_array_attribute("weight_names", { "dense/kernel", "dense/bias" });
        d.write_dataset<float>("dense/kernel", kernel);
        d.write_dataset<float>("dense/bias", bias);
        io::H5Group b = mw.create_group("batch_normalization");
        b.write_string_array_attribute("weight_names",
                                       { "batch_normalization/gamma", "batch_normalization/beta",
                                         "batch_normalization/moving_mean", "batch_normalization/moving_variance" });
        b.write_dataset<float>("batch_normalization/gamma", gamma);
        b.write_dataset<float>("batch_normalization/beta", beta);
        b.write_dataset<float>("batch_normalization/moving_mean", mean);
        b.write_dataset<float>("batch_normalization/moving_variance", var);
        mw.create_group("top_level_model_weights").write_string_array_attribute("weight_names", {});
        f.close();
    }
    auto m = load_model<float>(path);
    CHECK(m->compiled());
    CHECK(m->optimizer()->class_name() == "Adam");
    const array_t<float> x = { { 1.f, 2.f, -1.f, 0.5f }, { -0.5f, 0.f, 1.f, 2.f } };
    const array_t<float> y = m->predict(x, quiet_predict());
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j) {
            double h = bias(j);
            for (std::size_t k = 0; k < 4; ++k)
                h += double(x(i, k)) * kernel(k, j);
            h = std::max(h, 0.0);
            const double expected = (h - mean(j)) / std::sqrt(double(var(j)) + 1e-3) * gamma(j) + beta(j);
            CHECK(y(i, j) == doctest::Approx(expected).epsilon(1e-6));
        }
}

TEST_CASE("saving: load_weights finds weights by the stored names, whatever their prefix")
{
    TempDir tmp("saving_prefix");
    const std::string path = tmp.file("w.h5");
    array_t<float> k = { { 1.f, 2.f }, { 3.f, 4.f } }, b = { 0.5f, -0.5f };
    {
        // GAPError.h5-style names: the prefix is not the layer name, and no ':0'.
        io::H5File f = io::H5File::create(path);
        io::H5Group root = f.root();
        root.write_string_array_attribute("layer_names", { "renamed" });
        io::H5Group g = root.create_group("renamed");
        g.write_string_array_attribute("weight_names", { "renamed_1/kernel", "some/other/bias:0" });
        g.write_dataset<float>("renamed_1/kernel", k);
        g.write_dataset<float>("some/other/bias:0", b);
        f.close();
    }
    reset_layer_names();
    Sequential<float> m;
    m.add(std::make_shared<InputLayer<float>>(dims_t{ 2 }));
    m.add(std::make_shared<Dense<float>>(2));
    load_weights(m, path);
    CHECK(m.get_weights()[0] == k);
    CHECK(m.get_weights()[1] == b);
}

TEST_CASE("saving: a Keras 1.2.2 file with BatchNormalization: running_std is the variance")
{
    // The layout of Keras 1.2.2 + Theano (batch_to_conv2d_theano_1.h5, whose Conv2D xtape lacks):
    // flat names without ':0', no backend attribute, Keras 1 config keys, BN mode 0.
    TempDir tmp("saving_keras1");
    const std::string path = tmp.file("k1.h5");
    const json model_config = json::parse(R"({"class_name": "Sequential", "config": [
      {"class_name": "Dense", "config": {"name": "dense_1", "trainable": true, "batch_input_shape": [null, 3],
       "input_dtype": "float32", "output_dim": 2, "init": "glorot_uniform", "activation": "linear",
       "W_regularizer": null, "b_regularizer": null, "activity_regularizer": null, "W_constraint": null,
       "b_constraint": null, "bias": true, "input_dim": 3}},
      {"class_name": "BatchNormalization", "config": {"name": "batchnormalization_1", "trainable": true,
       "epsilon": 0.001, "mode": 0, "axis": -1, "gamma_regularizer": null, "beta_regularizer": null,
       "momentum": 0.99}}]})");
    array_t<float> W = { { 1.f, 0.f }, { 0.f, 1.f }, { 1.f, -1.f } }, bias = { 0.f, 0.5f };
    array_t<float> gamma = { 2.f, 1.f }, beta = { 0.f, -1.f }, mean = { 1.f, 0.f }, running_std = { 4.f, 0.25f };
    {
        io::H5File f = io::H5File::create(path);
        io::H5Group root = f.root();
        root.write_string_attribute("keras_version", "1.2.2");
        root.write_string_attribute("model_config", model_config.dump());
        io::H5Group mw = root.create_group("model_weights");
        mw.write_string_array_attribute("layer_names", { "dense_1", "batchnormalization_1" });
        io::H5Group d = mw.create_group("dense_1");
        d.write_string_array_attribute("weight_names", { "dense_1_W", "dense_1_b" });
        d.write_dataset<float>("dense_1_W", W);
        d.write_dataset<float>("dense_1_b", bias);
        io::H5Group b = mw.create_group("batchnormalization_1");
        const std::vector<std::string> names{ "batchnormalization_1_gamma", "batchnormalization_1_beta",
                                              "batchnormalization_1_running_mean", "batchnormalization_1_running_std" };
        b.write_string_array_attribute("weight_names", names);
        b.write_dataset<float>(names[0], gamma);
        b.write_dataset<float>(names[1], beta);
        b.write_dataset<float>(names[2], mean);
        b.write_dataset<float>(names[3], running_std);
        f.close();
    }
    auto m = load_model<double>(path);
    const array_t<double> x = { { 1.0, 2.0, 3.0 }, { -1.0, 0.5, 0.0 } };
    const array_t<double> y = m->predict(x, quiet_predict_t<double>());
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 2; ++j) {
            double h = bias(j);
            for (std::size_t k = 0; k < 3; ++k)
                h += x(i, k) * W(k, j);
            const double expected = (h - mean(j)) / std::sqrt(double(running_std(j)) + 1e-3) * gamma(j) + beta(j);
            CHECK(y(i, j) == doctest::Approx(expected).epsilon(1e-12));
        }
    CHECK(m->get_layer("batchnormalization_1")->get_weights()[3] == array_t<double>(running_std));
}
