// ctest-labels: sanitize
// Keras 3's native formats (saving/keras3/): .keras archives and .weights.h5 stores written by
// xtape are read back with libzip and the HDF5 wrapper directly (keys, object paths, optimizer
// order), round-trip exactly, and fail clearly when broken; the real Keras 3 archives load and
// predict what a float64 pass over their stored weights gives.
#include "saving/keras3/keras3_format.hpp"

#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/zip.hpp"
#include "framework/sequential.hpp"
#include "helpers.hpp"
#include "keras_files.hpp"
#include "saving_helpers.hpp"
#include "layers/activation.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/merging/merge.hpp"
#include "layers/wrappers/time_distributed.hpp"
#include "optim/optimizer_base.hpp"
#include "saving/keras_h5.hpp"
#include "saving/model_checkpoint.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::have_keras_models;
using xtape::testing::keras_file;
using xtape::testing::arr;
using xtape::testing::TempDir;
using namespace xtape::testing; // saving_helpers.hpp
using xtape::testing::read_bytes;
using xtape::testing::write_bytes;

namespace test_keras3 {

/// Dense -> Dense -> BN -> relu -> Dense(softmax), layer names that are not their object paths.
std::shared_ptr<Sequential<float>> small_model(const std::string& optimizer = "adam",
                                               const std::string& first_name = "stem")
{
    reset_layer_names();
    auto m = std::make_shared<Sequential<float>>("small");
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    DenseOptions<float> first;
    first.units = 8;
    first.name = first_name;
    m->add(std::make_shared<Dense<float>>(first));
    m->add(std::make_shared<Dense<float>>(8, "tanh"));
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<Activation<float>>("relu"));
    m->add(std::make_shared<Dense<float>>(3, "softmax"));
    m->compile(optimizer, "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

/// The weights entry of an archive, opened with the HDF5 library from the zip's bytes.
io::H5File weights_of_archive(const std::string& path)
{
    const io::ZipReader z = io::ZipReader::open(path);
    return io::H5File::open_image(path, z.read("model.weights.h5"));
}

json config_of_archive(const std::string& path) { return json::parse(io::ZipReader::open(path).read("config.json")); }

std::map<std::string, array_t<double>> store_map(const std::string& path)
{
    std::map<std::string, array_t<double>> m;
    for (auto& kv : keras3::list_weights(path))
        m.emplace(kv.first, std::move(kv.second));
    return m;
}

// ---- float64 reference layers for the real archives -------------------------------------------------------

/// x (n, k) . W (k, m) + b, then relu / softmax / linear.
array_t<double> dense_ref(const array_t<double>& x, const array_t<double>& w, const array_t<double>& b,
                          const std::string& activation)
{
    const std::size_t n = x.shape()[0], k = w.shape()[0], m = w.shape()[1];
    REQUIRE(x.size() == n * k);
    array_t<double> y = array_t<double>::from_shape({ n, m });
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < m; ++j) {
            double s = b(j);
            for (std::size_t p = 0; p < k; ++p)
                s += x.data()[i * k + p] * w(p, j);
            y(i, j) = activation == "relu" ? std::max(s, 0.0) : s;
        }
        if (activation == "softmax") {
            double mx = -1e300, sum = 0;
            for (std::size_t j = 0; j < m; ++j)
                mx = std::max(mx, y(i, j));
            for (std::size_t j = 0; j < m; ++j)
                sum += (y(i, j) = std::exp(y(i, j) - mx));
            for (std::size_t j = 0; j < m; ++j)
                y(i, j) /= sum;
        }
    }
    return y;
}

/// 'valid' 3x3 convolution, stride 1, channels last, then relu.
array_t<double> conv3x3_relu_ref(const array_t<double>& x, const array_t<double>& k, const array_t<double>& b)
{
    const std::size_t n = x.shape()[0], h = x.shape()[1], w = x.shape()[2], c = x.shape()[3], f = k.shape()[3];
    array_t<double> y = array_t<double>::from_shape({ n, h - 2, w - 2, f });
    for (std::size_t s = 0; s < n; ++s)
        for (std::size_t i = 0; i + 2 < h; ++i)
            for (std::size_t j = 0; j + 2 < w; ++j)
                for (std::size_t o = 0; o < f; ++o) {
                    double acc = b(o);
                    for (std::size_t di = 0; di < 3; ++di)
                        for (std::size_t dj = 0; dj < 3; ++dj)
                            for (std::size_t q = 0; q < c; ++q)
                                acc += x(s, i + di, j + dj, q) * k(di, dj, q, o);
                    y(s, i, j, o) = std::max(acc, 0.0);
                }
    return y;
}

/// 2x2 max pooling, strides 2, 'valid'.
array_t<double> maxpool2_ref(const array_t<double>& x)
{
    const std::size_t n = x.shape()[0], h = x.shape()[1] / 2, w = x.shape()[2] / 2, c = x.shape()[3];
    array_t<double> y = array_t<double>::from_shape({ n, h, w, c });
    for (std::size_t s = 0; s < n; ++s)
        for (std::size_t i = 0; i < h; ++i)
            for (std::size_t j = 0; j < w; ++j)
                for (std::size_t q = 0; q < c; ++q)
                    y(s, i, j, q) = std::max({ x(s, 2 * i, 2 * j, q), x(s, 2 * i + 1, 2 * j, q),
                                               x(s, 2 * i, 2 * j + 1, q), x(s, 2 * i + 1, 2 * j + 1, q) });
    return y;
}

const std::string mpg_archive = "keras3/vasanthprakasam-mpg-estimator/dnn_model.keras";
const std::string digits_archive = "keras3/nhanphamthanh-handwritten-digits/models/model.keras";
const std::string fixture_archive = "keras3/keras-team-keras/keras/src/saving/test_data/pre_pr22362_nested_container.keras";

} // namespace test_keras3

using namespace test_keras3;

// ---- object paths ---------------------------------------------------------------------------------------

TEST_CASE("keras3: object paths are the snake_case class name and a per-class counter, not the layer name")
{
    auto m = small_model();
    std::vector<std::string> paths, names;
    for (const auto& op : keras3::object_paths(*m)) {
        paths.push_back(op.path);
        names.push_back(op.layer->name());
    }
    CHECK(paths == std::vector<std::string>{ "layers/dense", "layers/dense_1", "layers/batch_normalization",
                                             "layers/activation", "layers/dense_2" });
    CHECK(names == std::vector<std::string>{ "stem", "dense", "batch_normalization", "activation", "dense_1" });

    // A Functional model lists its InputLayers; a nested Sequential's layers nest below it.
    reset_layer_names();
    auto x = Input<float>({ 4 }, "x");
    auto inner = std::make_shared<Sequential<float>>(
        std::vector<LayerPtr<float>>{ std::make_shared<Dense<float>>(4, "relu"), std::make_shared<Dense<float>>(4) },
        "inner");
    auto a = (*std::make_shared<Dense<float>>(4))(x);
    auto s = (*std::make_shared<Add<float>>())({ a, (*inner)(x) });
    Model<float> f(x, (*std::make_shared<Dense<float>>(2))(s), "graph");
    paths.clear();
    for (const auto& op : keras3::object_paths(f))
        paths.push_back(op.path);
    CHECK(paths == std::vector<std::string>{ "layers/input_layer", "layers/dense", "layers/sequential",
                                             "layers/sequential/layers/dense", "layers/sequential/layers/dense_1",
                                             "layers/add", "layers/dense_1" });
}

// ---- writing, checked with libzip and HDF5 directly -------------------------------------------------------

TEST_CASE("keras3: save_model(.keras) writes Keras 3's archive, read back with libzip and HDF5 directly")
{
    TempDir tmp("keras3_write");
    const std::string path = tmp.file("m.keras");
    auto m = small_model();
    SmallData d = small_data();
    m->fit(d.x, d.y, quiet_fit(2));
    save_model(*m, path);
    CHECK(tmp.names() == std::vector<std::string>{ "m.keras" }); // no temporary left behind

    const io::ZipReader z = io::ZipReader::open(path);
    const auto entries = z.entries();
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].name == "metadata.json");
    CHECK(entries[1].name == "config.json");
    CHECK(entries[2].name == "model.weights.h5");
    for (const auto& e : entries)
        CHECK(e.stored); // as Keras's zipfile writes them

    const json meta = json::parse(z.read("metadata.json"));
    CHECK(meta["keras_version"] == keras3::written_keras_version);
    CHECK(meta["date_saved"].get<std::string>().find('@') == 10);

    const json c = json::parse(z.read("config.json"));
    CHECK(c["module"] == "keras");
    CHECK(c["class_name"] == "Sequential");
    CHECK(c["registered_name"].is_null());
    CHECK(c["build_config"]["input_shape"] == json::array({ nullptr, 6 }));
    CHECK(c["config"]["dtype"]["class_name"] == "DTypePolicy");
    CHECK(c["config"]["dtype"]["config"]["name"] == "float32");
    const json& layers = c["config"]["layers"];
    REQUIRE(layers.size() == 6);
    CHECK(layers[0]["class_name"] == "InputLayer");
    CHECK(layers[0]["config"]["batch_shape"] == json::array({ nullptr, 6 }));
    CHECK(layers[0]["config"]["dtype"] == "float32"); // Keras 3 keeps InputLayer's a string
    for (std::size_t i = 0; i < layers.size(); ++i) {
        CAPTURE(i);
        const json& l = layers[i];
        CHECK(l["module"] == "keras.layers");
        CHECK(l.contains("registered_name"));
        CHECK(l["registered_name"].is_null());
        if (i > 0) {
            CHECK(l["config"]["dtype"]["module"] == "keras");
            CHECK(l["config"]["dtype"]["class_name"] == "DTypePolicy");
            CHECK(l.contains("build_config"));
        }
    }
    CHECK(layers[1]["config"]["name"] == "stem");
    CHECK(layers[1]["build_config"]["input_shape"] == json::array({ nullptr, 6 }));
    CHECK(layers[5]["build_config"]["input_shape"] == json::array({ nullptr, 8 }));
    // Keras 3.10's Dense keys (dnn_model.keras), and its kernel_initializer serialized Keras 3's way.
    for (const char* key : { "name", "trainable", "dtype", "units", "activation", "use_bias", "kernel_initializer",
                             "bias_initializer", "kernel_regularizer", "bias_regularizer", "kernel_constraint",
                             "bias_constraint" }) {
        CAPTURE(key);
        CHECK(layers[1]["config"].contains(key));
    }
    CHECK(layers[1]["config"]["kernel_initializer"]["module"] == "keras.initializers");
    CHECK(layers[1]["config"]["kernel_initializer"]["class_name"] == "GlorotUniform");
    const json& cc = c["compile_config"];
    CHECK(cc["optimizer"]["module"] == "keras.optimizers");
    CHECK(cc["optimizer"]["class_name"] == "Adam");
    CHECK(cc["optimizer"]["config"]["learning_rate"] == doctest::Approx(0.001));
    CHECK(cc["loss"]["module"] == "keras.losses");
    CHECK(cc["loss"]["class_name"] == "SparseCategoricalCrossentropy");
    CHECK(cc["metrics"] == json::array({ "accuracy" }));
    for (const char* key : { "loss_weights", "weighted_metrics", "run_eagerly", "steps_per_execution", "jit_compile" })
        CHECK(cc.contains(key));

    // The weight store: object paths, name attributes, variables in creation order.
    io::H5File h = io::H5File::open_image(path, z.read("model.weights.h5"));
    io::H5Group root = h.root();
    CHECK(root.member_names() == std::vector<std::string>{ "layers", "optimizer", "vars" });
    CHECK(root.group("vars").read_string_attribute("name") == "small");
    CHECK(root.group("vars").member_names().empty());
    CHECK(root.group("layers").member_names() ==
          std::vector<std::string>{ "activation", "batch_normalization", "dense", "dense_1", "dense_2" });
    CHECK(root.group("layers/dense/vars").read_string_attribute("name") == "stem");
    CHECK(root.group("layers/dense_2/vars").read_string_attribute("name") == "dense_1");
    CHECK(root.group("layers/activation/vars").member_names().empty());
    CHECK(root.dataset_shape("layers/dense/vars/0") == shape_t{ 6, 8 });
    CHECK(root.dataset_shape("layers/dense/vars/1") == shape_t{ 8 });
    CHECK(root.dataset_dtype("layers/dense/vars/0") == "float32");
    const auto bn = m->get_layer("batch_normalization")->get_weights(); // gamma, beta, moving mean, variance
    for (std::size_t i = 0; i < 4; ++i)
        CHECK(max_abs_diff(root.read_dataset<float>("layers/batch_normalization/vars/" + std::to_string(i)), bn[i]) ==
              0.0);
    // Note [Keras 3 optimizer order]: iteration, learning rate, then (m, v) per trainable weight.
    io::H5Group ov = root.group("optimizer/vars");
    CHECK(ov.read_string_attribute("name") == "adam");
    const std::size_t n_trainable = m->trainable_weights().size();
    REQUIRE(n_trainable == 8);
    CHECK(ov.member_names().size() == 2 + 2 * n_trainable);
    CHECK(ov.dataset_dtype("0") == "int64");
    CHECK(ov.dataset_shape("0") == shape_t{});
    CHECK(ov.read_dataset<double>("0")() == 10.0); // 2 epochs x 5 batches
    CHECK(ov.dataset_dtype("1") == "float32");
    CHECK(ov.read_dataset<double>("1")() == doctest::Approx(0.001));
    const auto state = m->optimizer()->variables(); // xtape: [iteration, momentums..., velocities...]
    for (std::size_t j = 0; j < n_trainable; ++j) {
        CAPTURE(j);
        CHECK(max_abs_diff(ov.read_dataset<float>(std::to_string(2 + 2 * j)), state[1 + j].value()) == 0.0);
        CHECK(max_abs_diff(ov.read_dataset<float>(std::to_string(3 + 2 * j)), state[1 + n_trainable + j].value()) == 0.0);
    }
}

TEST_CASE("keras3: a .keras round trip keeps predictions, weights and optimizer state; training continues exactly")
{
    TempDir tmp("keras3_roundtrip");
    for (const std::string opt : { "adam", "sgd", "rmsprop", "nadam", "adagrad", "adamw" }) {
        CAPTURE(opt);
        const std::string path = tmp.file(opt + ".keras");
        auto m = small_model(opt);
        SmallData d = small_data();
        m->fit(d.x, d.y, quiet_fit(2));
        save_model(*m, path);
        auto back = load_model<float>(path);
        CHECK(back->name() == "small");
        REQUIRE(back->compiled());
        CHECK(back->optimizer()->class_name() == m->optimizer()->class_name());
        CHECK(back->optimizer()->iterations() == 10);
        CHECK(max_abs_diff(m->predict(d.x, quiet_predict()), back->predict(d.x, quiet_predict())) == 0.0);
        const auto w0 = m->get_weights(), w1 = back->get_weights();
        REQUIRE(w0.size() == w1.size());
        for (std::size_t i = 0; i < w0.size(); ++i)
            CHECK(max_abs_diff(w0[i], w1[i]) == 0.0);
        const auto s0 = m->optimizer()->variables(), s1 = back->optimizer()->variables();
        REQUIRE(s0.size() == s1.size());
        for (std::size_t i = 0; i < s0.size(); ++i)
            CHECK(max_abs_diff(s0[i].value(), s1[i].value()) == 0.0);
        m->fit(d.x, d.y, quiet_fit(4, 2));
        back->fit(d.x, d.y, quiet_fit(4, 2));
        const auto c0 = m->get_weights(), c1 = back->get_weights();
        for (std::size_t i = 0; i < c0.size(); ++i)
            CHECK(max_abs_diff(c0[i], c1[i]) == 0.0);
    }
    // Without the optimizer: no optimizer group, a fresh optimizer on load.
    auto m = small_model();
    SmallData d = small_data();
    m->fit(d.x, d.y, quiet_fit(1));
    save_model(*m, tmp.file("noopt.keras"), /*include_optimizer=*/false);
    CHECK_FALSE(weights_of_archive(tmp.file("noopt.keras")).root().has_group("optimizer"));
    CHECK(load_model<float>(tmp.file("noopt.keras"))->optimizer()->variables().empty());
}

TEST_CASE("keras3: a Functional model with a merge and a nested Sequential round-trips through .keras")
{
    TempDir tmp("keras3_functional");
    reset_layer_names();
    auto x = Input<float>({ 4 }, "x");
    auto inner = std::make_shared<Sequential<float>>(
        std::vector<LayerPtr<float>>{ std::make_shared<Dense<float>>(5, "relu"), std::make_shared<Dense<float>>(3) },
        "inner");
    auto a = (*std::make_shared<Dense<float>>(3, "tanh"))(x);
    auto s = (*std::make_shared<Add<float>>("sum"))({ a, (*inner)(x) });
    auto f = std::make_shared<Model<float>>(x, (*std::make_shared<Dense<float>>(2))(s), "graph");
    const std::string path = tmp.file("f.keras");
    save_model(*f, path);

    const json c = config_of_archive(path);
    CHECK(c["class_name"] == "Functional");
    CHECK(c["module"] == "keras.src.models.functional");
    CHECK(c["registered_name"] == "Functional");
    CHECK_FALSE(c.contains("compile_config"));
    const json& layers = c["config"]["layers"];
    const json* sum = nullptr;
    for (const auto& l : layers)
        if (l["config"]["name"] == "sum")
            sum = &l;
    REQUIRE(sum);
    // Keras 3's node form: a merge's tensors are one list argument.
    const json& arg = (*sum)["inbound_nodes"][0]["args"][0];
    REQUIRE(arg.is_array());
    CHECK(arg.size() == 2);
    CHECK(arg[0]["class_name"] == "__keras_tensor__");
    CHECK(arg[0]["config"]["keras_history"][0] == "dense_2");
    CHECK(c["config"]["input_layers"] == json::parse(R"([["x", 0, 0]])"));
    {
        io::H5File h = weights_of_archive(path);
        CHECK(h.root().has_group("layers/input_layer/vars"));
        CHECK(h.root().group("layers/input_layer/vars").read_string_attribute("name") == "x");
        CHECK(h.root().dataset_shape("layers/sequential/layers/dense/vars/0") == shape_t{ 4, 5 });
        CHECK(h.root().dataset_shape("layers/sequential/layers/dense_1/vars/0") == shape_t{ 5, 3 });
        CHECK(h.root().group("layers/sequential/vars").read_string_attribute("name") == "inner");
    }
    auto g = load_model<float>(path);
    CHECK(g->class_name() == "Functional");
    const array_t<float> xs = random_array<float>({ 5, 4 }, 3);
    CHECK(max_abs_diff(f->predict(xs, quiet_predict()), g->predict(xs, quiet_predict())) == 0.0);
}

// ---- .weights.h5 -------------------------------------------------------------------------------------------

TEST_CASE("keras3: save_weights(.weights.h5) writes object paths; load_weights ignores layer names")
{
    TempDir tmp("keras3_weights");
    const std::string path = tmp.file("w.weights.h5");
    auto m = small_model();
    SmallData d = small_data();
    m->fit(d.x, d.y, quiet_fit(1));
    save_weights(*m, path);
    {
        io::H5File h = io::H5File::open_read(path);
        io::H5Group root = h.root();
        CHECK_FALSE(root.has_attribute("layer_names")); // not tf.keras's layout
        CHECK(root.has_group("layers/dense_2/vars"));
        CHECK(root.dataset_shape("layers/dense_2/vars/0") == shape_t{ 8, 3 });
        CHECK(root.has_group("optimizer/vars"));
    }
    // Another model of the same architecture whose layers are named otherwise.
    auto other = small_model("adam", "renamed");
    load_weights(*other, path);
    CHECK(max_abs_diff(m->predict(d.x, quiet_predict()), other->predict(d.x, quiet_predict())) == 0.0);
    // The archive's weights load the same way.
    save_model(*m, tmp.file("m.keras"));
    auto third = small_model();
    load_weights(*third, tmp.file("m.keras"));
    CHECK(max_abs_diff(m->predict(d.x, quiet_predict()), third->predict(d.x, quiet_predict())) == 0.0);
    expect_error<ValueError>([&] { load_weights(*third, path, /*by_name=*/true); }, { path, "by_name" });
    expect_error<ValueError>([&] { load_model<float>(path); }, { path, "only weights", "Keras 3's .weights.h5" });

    // A model whose layer has another shape: ShapeError naming the file, the layer and its path,
    // and nothing changes.
    reset_layer_names();
    auto wider = std::make_shared<Sequential<float>>("wider");
    wider->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    wider->add(std::make_shared<Dense<float>>(9));
    const auto before = wider->get_weights();
    expect_error<ShapeError>([&] { load_weights(*wider, path); },
                             { path, "layer 'dense' (Dense, stored at 'layers/dense')", "(6, 9)", "(6, 8)" });
    CHECK(max_abs_diff(before[0], wider->get_weights()[0]) == 0.0);
    // A model with a layer the file does not have.
    auto longer = small_model();
    longer->add(std::make_shared<Dense<float>>(2));
    expect_error<ValueError>([&] { load_weights(*longer, path); },
                             { path, "stored at 'layers/dense_3'", "expected 2 variables, but received 0" });
    // The tf.keras layout is still written for other names, and read as before.
    save_weights(*m, tmp.file("legacy.h5"));
    CHECK(io::H5File::open_read(tmp.file("legacy.h5")).root().has_attribute("layer_names"));
    load_weights(*other, tmp.file("legacy.h5"));
}

// ---- broken archives ---------------------------------------------------------------------------------------

TEST_CASE("keras3: broken archives give typed errors naming the file")
{
    TempDir tmp("keras3_broken");
    const std::string good = tmp.file("good.keras");
    auto m = small_model();
    save_model(*m, good);
    const io::ZipReader z = io::ZipReader::open(good);
    const std::string meta = z.read("metadata.json"), cfg = z.read("config.json"), weights = z.read("model.weights.h5");

    // Truncated anywhere: an IOError naming the file.
    const std::string bytes = read_bytes(good);
    for (std::size_t cut : { bytes.size() - 1, bytes.size() / 2, bytes.size() / 5, std::size_t(100) }) {
        CAPTURE(cut);
        const std::string p = tmp.file("cut.keras");
        write_bytes(p, bytes.substr(0, cut));
        expect_error<IOError>([&] { load_model<float>(p); }, { p });
    }
    // Missing entries.
    const std::string no_cfg = tmp.file("no_config.keras");
    io::write_zip(no_cfg, { { "metadata.json", meta }, { "model.weights.h5", weights } });
    expect_error<IOError>([&] { load_model<float>(no_cfg); }, { no_cfg, "missing entry 'config.json'" });
    const std::string no_w = tmp.file("no_weights.keras");
    io::write_zip(no_w, { { "metadata.json", meta }, { "config.json", cfg } });
    expect_error<IOError>([&] { load_model<float>(no_w); }, { no_w, "missing entry 'model.weights.h5'" });
    // config.json that is not JSON, or not a model.
    const std::string bad_json = tmp.file("bad_json.keras");
    io::write_zip(bad_json, { { "metadata.json", meta }, { "config.json", cfg.substr(0, cfg.size() / 2) },
                              { "model.weights.h5", weights } });
    expect_error<ValueError>([&] { load_model<float>(bad_json); }, { bad_json, "config.json", "not valid JSON" });
    // An unknown layer class names the class, the layer and the file.
    json c = json::parse(cfg);
    c["config"]["layers"][2]["class_name"] = "FancyDense";
    c["config"]["layers"][2]["registered_name"] = "my_package>FancyDense";
    const std::string unknown = tmp.file("unknown.keras");
    io::write_zip(unknown, { { "metadata.json", meta }, { "config.json", c.dump() }, { "model.weights.h5", weights } });
    const std::string msg = xtape::testing::error_of([&] { load_model<float>(unknown); });
    CHECK(xtape::testing::contains(msg, unknown));
    CHECK(xtape::testing::contains(msg, "FancyDense"));
    // A weights entry that is not HDF5.
    const std::string not_h5 = tmp.file("not_h5.keras");
    io::write_zip(not_h5, { { "metadata.json", meta }, { "config.json", cfg }, { "model.weights.h5", "PK, not HDF5" } });
    expect_error<IOError>([&] { load_model<float>(not_h5); }, { not_h5, "model.weights.h5", "not an HDF5 file" });
    // A truncated HDF5 store inside a valid zip.
    const std::string short_h5 = tmp.file("short_h5.keras");
    io::write_zip(short_h5,
                  { { "metadata.json", meta }, { "config.json", cfg }, { "model.weights.h5", weights.substr(0, 900) } });
    expect_error<IOError>([&] { load_model<float>(short_h5); }, { short_h5, "model.weights.h5" });
    // A weight of the wrong shape: a config whose first Dense is wider than its stored kernel.
    json wide = json::parse(cfg);
    wide["config"]["layers"][1]["config"]["units"] = 9;
    wide["config"]["layers"][2]["build_config"]["input_shape"] = json::array({ nullptr, 9 });
    const std::string wrong_shape = tmp.file("wrong_shape.keras");
    io::write_zip(wrong_shape, { { "metadata.json", meta }, { "config.json", wide.dump() }, { "model.weights.h5", weights } });
    expect_error<ShapeError>([&] { load_model<float>(wrong_shape); },
                             { wrong_shape, "model.weights.h5", "layer 'stem'", "'layers/dense/vars/0'" });
    // A deflated archive (as `zip` would recompress one) reads like a stored one.
    const std::string deflated = tmp.file("deflated.keras");
    io::write_zip(deflated, { { "metadata.json", meta }, { "config.json", cfg }, { "model.weights.h5", weights } }, true);
    const array_t<float> xs = random_array<float>({ 3, 6 }, 1);
    CHECK(max_abs_diff(load_model<float>(deflated)->predict(xs, quiet_predict()), m->predict(xs, quiet_predict())) == 0.0);
}

TEST_CASE("keras3: a failed .keras save leaves the previous archive intact")
{
    TempDir tmp("keras3_atomic");
    const std::string path = tmp.file("m.keras");
    auto m = small_model();
    save_model(*m, path);
    const std::string before = read_bytes(path);
    io::testing::set_atomic_write_fault_hook([](const std::string& stage) {
        if (stage == "written")
            throw IOError("simulated failure");
    });
    auto other = small_model();
    CHECK_THROWS_AS(save_model(*other, path), IOError);
    io::testing::set_atomic_write_fault_hook({});
    CHECK(read_bytes(path) == before);
    CHECK(tmp.names() == std::vector<std::string>{ "m.keras" });
    load_model<float>(path);
}

TEST_CASE("keras3: the format is chosen by the first bytes, not the extension")
{
    TempDir tmp("keras3_magic");
    auto m = small_model();
    save_model(*m, tmp.file("zip.keras"));
    save_model(*m, tmp.file("hdf5.h5"));
    std::filesystem::copy_file(tmp.file("zip.keras"), tmp.file("zip_named.h5"));
    std::filesystem::copy_file(tmp.file("hdf5.h5"), tmp.file("hdf5_named.keras"));
    const array_t<float> xs = random_array<float>({ 3, 6 }, 5);
    const array_t<float> want = m->predict(xs, quiet_predict());
    for (const char* name : { "zip_named.h5", "hdf5_named.keras" }) {
        CAPTURE(name);
        CHECK(max_abs_diff(load_model<float>(tmp.file(name))->predict(xs, quiet_predict()), want) == 0.0);
    }
}

// ---- the real Keras 3 archives ----------------------------------------------------------------------------

TEST_CASE("keras3: dnn_model.keras (3.10, Normalization -> Dense) predicts what a float64 pass over its store gives"
          * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    const std::string path = keras_file(mpg_archive);
    auto w = store_map(path);
    REQUIRE(w.count("layers/normalization/vars/2"));
    CHECK(w["layers/normalization/vars/2"].dimension() == 0); // int64 count, a 0-d dataset
    const array_t<double> mean = w["layers/normalization/vars/0"], var = w["layers/normalization/vars/1"];
    REQUIRE(mean.size() == 9);
    // Inputs around the data the statistics came from.
    array_t<double> x = random_array<double>({ 6, 9 }, 17, -2, 2);
    array_t<double> z = array_t<double>::from_shape({ 6, 9 });
    for (std::size_t i = 0; i < 6; ++i)
        for (std::size_t j = 0; j < 9; ++j) {
            x(i, j) = static_cast<float>(mean.data()[j] + x(i, j) * std::sqrt(var.data()[j]));
            // Keras 3: (x - mean) / max(sqrt(variance), epsilon)
            z(i, j) = (x(i, j) - mean.data()[j]) / std::max(std::sqrt(var.data()[j]), 1e-7);
        }
    array_t<double> h = dense_ref(z, w["layers/dense/vars/0"], w["layers/dense/vars/1"], "relu");
    h = dense_ref(h, w["layers/dense_1/vars/0"], w["layers/dense_1/vars/1"], "relu");
    const array_t<double> want = dense_ref(h, w["layers/dense_2/vars/0"], w["layers/dense_2/vars/1"], "linear");

    auto m = load_model<float>(path);
    CHECK(m->layers().size() == 4);
    CHECK(m->get_layer("dense_6")->get_weights()[0].shape()[1] == 64); // stored at layers/dense
    REQUIRE(m->compiled());
    CHECK(m->optimizer()->class_name() == "Adam");
    // Keras 3's optimizer/vars: iteration, learning rate, then (momentum, velocity) per weight.
    // xtape's variables(): iteration, the 6 momentums, the 6 velocities (3 Dense layers).
    CHECK(m->optimizer()->iterations() == static_cast<std::int64_t>(w["optimizer/vars/0"]()));
    const auto state = m->optimizer()->variables();
    REQUIRE(state.size() == 1 + 2 * 6);
    for (std::size_t j = 0; j < 6; ++j) {
        CAPTURE(j);
        CHECK(max_abs_diff(state[1 + j].value(), w["optimizer/vars/" + std::to_string(2 + 2 * j)]) == 0.0);
        CHECK(max_abs_diff(state[7 + j].value(), w["optimizer/vars/" + std::to_string(3 + 2 * j)]) == 0.0);
    }
    const array_t<float> got = m->predict(array_t<float>(x), quiet_predict());
    double scale = 1;
    for (double v : want)
        scale = std::max(scale, std::abs(v));
    CHECK(max_abs_diff(got, want) < 1e-5 * scale);
    // float64: the stored float32 values are exact in double, so only summation order differs.
    PredictOptions<double> po;
    po.verbose = 0;
    CHECK(max_abs_diff(load_model<double>(path)->predict(x, po), want) < 1e-10 * scale);

    // Saved again by xtape and read again: the same predictions.
    TempDir tmp("keras3_mpg");
    save_model(*m, tmp.file("again.keras"));
    auto again = load_model<float>(tmp.file("again.keras"));
    CHECK(max_abs_diff(again->predict(array_t<float>(x), quiet_predict()), got) == 0.0);
    // The Normalization keys Keras 3.10 wrote are all in xtape's config.
    const json kc = config_of_archive(path)["config"]["layers"][1]["config"];
    const json xc = config_of_archive(tmp.file("again.keras"))["config"]["layers"][1]["config"];
    for (const auto& kv : kc.items()) {
        CAPTURE(kv.key());
        CHECK(xc.contains(kv.key()));
    }
}

TEST_CASE("keras3: model.keras (3.8, a CNN) predicts what a float64 pass over its store gives"
          * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    const std::string path = keras_file(digits_archive);
    auto w = store_map(path);
    const array_t<double> x = random_array<double>({ 2, 28, 28, 1 }, 23, 0, 1);
    array_t<double> h = maxpool2_ref(conv3x3_relu_ref(x, w["layers/conv2d/vars/0"], w["layers/conv2d/vars/1"]));
    h = maxpool2_ref(conv3x3_relu_ref(h, w["layers/conv2d_1/vars/0"], w["layers/conv2d_1/vars/1"]));
    h = conv3x3_relu_ref(h, w["layers/conv2d_2/vars/0"], w["layers/conv2d_2/vars/1"]);
    const json layers = config_of_archive(path)["config"]["layers"];
    h = dense_ref(h, w["layers/dense/vars/0"], w["layers/dense/vars/1"],
                  layers[7]["config"]["activation"].get<std::string>());
    const array_t<double> want = dense_ref(h, w["layers/dense_1/vars/0"], w["layers/dense_1/vars/1"],
                                           layers[8]["config"]["activation"].get<std::string>());
    auto m = load_model<float>(path);
    const array_t<float> got = m->predict(array_t<float>(x), quiet_predict());
    CHECK(max_abs_diff(got, want) < 1e-5);
    TempDir tmp("keras3_cnn");
    save_model(*m, tmp.file("again.keras"));
    CHECK(max_abs_diff(load_model<float>(tmp.file("again.keras"))->predict(array_t<float>(x), quiet_predict()), got) ==
          0.0);
    // The Conv2D, MaxPooling2D and Flatten keys Keras 3.8 wrote are all in xtape's config.
    const json again = config_of_archive(tmp.file("again.keras"))["config"]["layers"];
    for (std::size_t i = 1; i < layers.size(); ++i)
        for (const auto& kv : layers[i]["config"].items()) {
            CAPTURE(i);
            CAPTURE(kv.key());
            CHECK(again[i]["config"].contains(kv.key()));
        }
}

TEST_CASE("keras3: Keras's subclassed-model fixture is refused by name; its Dense weights are listed by path"
          * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    const std::string path = keras_file(fixture_archive);
    expect_error<NotImplementedError>([&] { load_model<float>(path); },
                                      { path, "'NestedDenseModel'", "legacy_nested_container>NestedDenseModel" });
    // saving_lib_test.py: blocks[i][0].kernel = 0.1 * (i + 1) (4x4), out.kernel = 0.5 (4x2), out.bias = 0.
    const auto list = keras3::list_weights(path);
    std::map<std::string, array_t<double>> w(list.begin(), list.end());
    std::vector<std::string> kernels;
    for (const auto& kv : list)
        if (kv.second.shape() == shape_t{ 4, 4 })
            kernels.push_back(kv.first);
    REQUIRE(kernels.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CAPTURE(kernels[i]);
        for (double v : w[kernels[i]])
            CHECK(v == doctest::Approx(0.1 * (i + 1)).epsilon(1e-6));
    }
    std::size_t out_kernels = 0;
    for (const auto& kv : list)
        if (kv.second.shape() == shape_t{ 4, 2 }) {
            ++out_kernels;
            for (double v : kv.second)
                CHECK(v == doctest::Approx(0.5));
        }
    CHECK(out_kernels == 1);
}

TEST_CASE("keras3: a config.json in Keras 3's own serialization (tensors, shared dtype policies, list args) loads")
{
    // As Keras 3.10 writes a Functional model: Masking with a __tensor__ mask_value, DTypePolicy
    // dicts with shared_object_id, __keras_tensor__ args with kwargs, an Add whose args[0] is a
    // list, build_config, and a compile_config with a serialized optimizer and loss.
    const std::string config = R"({"module": "keras.src.models.functional", "class_name": "Functional",
      "config": {"name": "functional", "trainable": true, "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 3],
          "dtype": "float32", "sparse": false, "ragged": false, "name": "inp", "optional": false},
          "registered_name": null, "name": "inp", "inbound_nodes": []},
        {"module": "keras.layers", "class_name": "Masking", "config": {"name": "masking", "trainable": true,
          "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                    "registered_name": null, "shared_object_id": 1234},
          "mask_value": {"class_name": "__tensor__", "config": {"value": 0.0, "dtype": "float32"}}},
          "registered_name": null, "build_config": {"input_shape": [null, 3]}, "name": "masking",
          "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 3],
            "dtype": "float32", "keras_history": ["inp", 0, 0]}}], "kwargs": {}}]},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "left", "trainable": true,
          "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                    "registered_name": null, "shared_object_id": 1234},
          "units": 2, "activation": "relu", "use_bias": true, "kernel_initializer": {"module": "keras.initializers",
          "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null},
          "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
          "registered_name": null}, "kernel_regularizer": null, "bias_regularizer": null,
          "kernel_constraint": null, "bias_constraint": null}, "registered_name": null,
          "build_config": {"input_shape": [null, 3]}, "name": "left",
          "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 3],
            "dtype": "float32", "keras_history": ["masking", 0, 0]}}], "kwargs": {"training": false}}]},
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "right", "trainable": true,
          "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                    "registered_name": null, "shared_object_id": 1234},
          "units": 2, "activation": "linear", "use_bias": false}, "registered_name": null,
          "build_config": {"input_shape": [null, 3]}, "name": "right",
          "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"shape": [null, 3],
            "dtype": "float32", "keras_history": ["masking", 0, 0]}}], "kwargs": {}}]},
        {"module": "keras.layers", "class_name": "Add", "config": {"name": "add", "trainable": true,
          "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                    "registered_name": null, "shared_object_id": 1234}}, "registered_name": null,
          "build_config": {"input_shape": [[null, 2], [null, 2]]}, "name": "add",
          "inbound_nodes": [{"args": [[{"class_name": "__keras_tensor__", "config": {"shape": [null, 2],
            "dtype": "float32", "keras_history": ["left", 0, 0]}}, {"class_name": "__keras_tensor__",
            "config": {"shape": [null, 2], "dtype": "float32", "keras_history": ["right", 0, 0]}}]],
            "kwargs": {}}]}],
      "input_layers": [["inp", 0, 0]], "output_layers": [["add", 0, 0]]},
      "registered_name": "Functional", "build_config": {"input_shape": null},
      "compile_config": {"optimizer": {"module": "keras.optimizers", "class_name": "SGD", "config": {"name": "SGD",
        "learning_rate": 0.25, "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null,
        "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null, "loss_scale_factor": null,
        "gradient_accumulation_steps": null, "momentum": 0.5, "nesterov": false}, "registered_name": null},
        "loss": {"module": "keras.losses", "class_name": "MeanSquaredError", "config": {"name": "mean_squared_error",
        "reduction": "sum_over_batch_size"}, "registered_name": null}, "loss_weights": null, "metrics": null,
        "weighted_metrics": null, "run_eagerly": false, "steps_per_execution": 1, "jit_compile": false}})";
    TempDir tmp("keras3_handwritten");
    const std::string path = tmp.file("h.keras");
    const array_t<float> k_left = arr<float>({ 1, -2, 0.5, 3, 0.25, -1 }, { 3, 2 }), b_left = arr<float>({ 0.5, -0.5 }, { 2 }),
                         k_right = arr<float>({ -1, 1, 2, 0, 0.5, 0.5 }, { 3, 2 });
    {
        io::H5File h = io::H5File::create_in_memory("weights");
        io::H5Group root = h.root();
        root.create_group("vars");
        for (const char* p : { "layers/input_layer/vars", "layers/masking/vars", "layers/add/vars" })
            root.create_group(p);
        root.write_dataset<float>("layers/dense/vars/0", k_left);
        root.write_dataset<float>("layers/dense/vars/1", b_left);
        root.write_dataset<float>("layers/dense_1/vars/0", k_right);
        // SGD with momentum: iteration, learning rate, one momentum per trainable weight.
        root.write_dataset<std::int64_t>("optimizer/vars/0", array_t<std::int64_t>(std::int64_t(7)));
        root.write_dataset<float>("optimizer/vars/1", array_t<float>(0.125f));
        root.write_dataset<float>("optimizer/vars/2", arr<float>({ 1, 2, 3, 4, 5, 6 }, { 3, 2 }));
        root.write_dataset<float>("optimizer/vars/3", arr<float>({ 7, 8 }, { 2 }));
        root.write_dataset<float>("optimizer/vars/4", arr<float>({ 9, 10, 11, 12, 13, 14 }, { 3, 2 }));
        const std::string image = h.image();
        h.close();
        io::write_zip(path, { { "metadata.json", R"({"keras_version": "3.10.0"})" }, { "config.json", config },
                              { "model.weights.h5", image } });
    }
    auto m = load_model<float>(path);
    CHECK(m->class_name() == "Functional");
    const array_t<float> x = arr<float>({ 1, 2, 3, 0, 0, 0, -1, 0.5, 2 }, { 3, 3 });
    const array_t<float> y = m->predict(x, quiet_predict());
    array_t<double> want = array_t<double>::from_shape({ 3, 2 });
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j) {
            double l = b_left(j), r = 0;
            for (std::size_t p = 0; p < 3; ++p) {
                l += double(x(i, p)) * k_left(p, j);
                r += double(x(i, p)) * k_right(p, j);
            }
            want(i, j) = std::max(l, 0.0) + r;
        }
    CHECK(max_abs_diff(y, want) < 1e-6);
    REQUIRE(m->compiled());
    CHECK(m->optimizer()->class_name() == "SGD");
    CHECK(m->optimizer()->iterations() == 7);
    CHECK(m->optimizer()->learning_rate() == 0.125); // the stored rate, which a callback had changed
    const auto state = m->optimizer()->variables();
    REQUIRE(state.size() == 4);
    CHECK(max_abs_diff(state[1].value(), arr<float>({ 1, 2, 3, 4, 5, 6 }, { 3, 2 })) == 0.0);
    CHECK(max_abs_diff(state[3].value(), arr<float>({ 9, 10, 11, 12, 13, 14 }, { 3, 2 })) == 0.0);
}

TEST_CASE("keras3: float64 archives load into double models exactly and into float models rounded to nearest")
{
    TempDir tmp("keras3_float64");
    reset_layer_names();
    auto m = std::make_shared<Sequential<double>>("wide");
    m->add(std::make_shared<InputLayer<double>>(dims_t{ 3 }));
    m->add(std::make_shared<Dense<double>>(4, "tanh"));
    m->add(std::make_shared<Dense<double>>(2));
    const std::string path = tmp.file("f64.keras");
    save_model(*m, path);
    CHECK(config_of_archive(path)["config"]["layers"][1]["config"]["dtype"]["config"]["name"] == "float64");
    CHECK(weights_of_archive(path).root().dataset_dtype("layers/dense/vars/0") == "float64");
    const auto w = m->get_weights();
    const auto wd = load_model<double>(path)->get_weights();
    const auto wf = load_model<float>(path)->get_weights();
    REQUIRE(wd.size() == w.size());
    REQUIRE(wf.size() == w.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
        CHECK(max_abs_diff(wd[i], w[i]) == 0.0);
        for (std::size_t k = 0; k < w[i].size(); ++k)
            CHECK(wf[i].data()[k] == static_cast<float>(w[i].data()[k]));
    }
}

TEST_CASE("keras3: TimeDistributed's layer is stored below the wrapper's path")
{
    TempDir tmp("keras3_td");
    reset_layer_names();
    auto m = std::make_shared<Sequential<float>>("td");
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 5, 3 }));
    m->add(std::make_shared<TimeDistributed<float>>(std::make_shared<Dense<float>>(2)));
    const std::string path = tmp.file("td.keras");
    save_model(*m, path);
    {
        io::H5File h = weights_of_archive(path);
        CHECK(h.root().group("layers/time_distributed/vars").member_names().empty());
        CHECK(h.root().dataset_shape("layers/time_distributed/layer/vars/0") == shape_t{ 3, 2 });
        CHECK(h.root().dataset_shape("layers/time_distributed/layer/vars/1") == shape_t{ 2 });
    }
    const json td = config_of_archive(path)["config"]["layers"][1];
    CHECK(td["class_name"] == "TimeDistributed");
    CHECK(td["config"]["layer"]["module"] == "keras.layers");
    const array_t<float> x = random_array<float>({ 2, 5, 3 }, 4);
    CHECK(max_abs_diff(load_model<float>(path)->predict(x, quiet_predict()), m->predict(x, quiet_predict())) == 0.0);
}

TEST_CASE("keras3: ModelCheckpoint writes .keras archives and .weights.h5 stores by their names, as Keras 3 does")
{
    TempDir tmp("keras3_ckpt");
    auto m = small_model("sgd");
    SmallData d = small_data();
    ModelCheckpointOptions full, weights_only;
    full.monitor = weights_only.monitor = "loss";
    weights_only.save_weights_only = true;
    FitOptions<float> fo = quiet_fit(2);
    fo.callbacks = { std::make_shared<ModelCheckpoint<float>>(tmp.file("m-{epoch:02d}.keras"), full),
                     std::make_shared<ModelCheckpoint<float>>(tmp.file("w.weights.h5"), weights_only) };
    m->fit(d.x, d.y, fo);
    CHECK(tmp.names() == std::vector<std::string>{ "m-01.keras", "m-02.keras", "w.weights.h5" });
    CHECK(io::has_zip_signature(tmp.file("m-02.keras")));
    auto back = load_model<float>(tmp.file("m-02.keras"));
    CHECK(back->optimizer()->iterations() == 10);
    CHECK(max_abs_diff(back->predict(d.x, quiet_predict()), m->predict(d.x, quiet_predict())) == 0.0);
    auto fresh = small_model("sgd");
    load_weights(*fresh, tmp.file("w.weights.h5"));
    CHECK(max_abs_diff(fresh->predict(d.x, quiet_predict()), m->predict(d.x, quiet_predict())) == 0.0);
}
