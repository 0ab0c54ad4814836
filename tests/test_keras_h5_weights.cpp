// ctest-labels: sanitize
// Keras's HDF5 weights layout: reading every real variant, writing tf.keras's layout.
#include "saving/keras_h5_weights.hpp"

#include "keras_files.hpp"

#include <doctest/doctest.h>
#include <hdf5.h>
#include <xtensor/xbuilder.hpp>

#include <fstream>
#include <iterator>

using namespace xtape;
using namespace xtape::keras_h5;
using xtape::testing::expect_error;
using xtape::testing::have_keras_models;
using xtape::testing::keras_file;
using xtape::testing::TempDir;

namespace {

array_t<float> arange(std::size_t n, const shape_t& shape)
{
    array_t<float> a = xt::arange<float>(static_cast<float>(n));
    a.reshape(shape);
    return a;
}

std::vector<std::string> short_names(const LayerWeights<float>& l)
{
    std::vector<std::string> v;
    for (const auto& n : l.weight_names)
        v.push_back(short_weight_name(n, l.layer_name));
    return v;
}

H5T_class_t raw_attribute_class(const std::string& file, const std::string& object, const std::string& name)
{
    hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    REQUIRE(f >= 0);
    hid_t a = H5Aopen_by_name(f, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(a >= 0);
    hid_t t = H5Aget_type(a);
    H5T_class_t c = H5Tget_class(t);
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
    return c;
}

} // namespace

TEST_CASE("keras_h5_weights: short_weight_name covers every naming scheme")
{
    CHECK(short_weight_name("dense_1/kernel:0", "dense_1") == "kernel");
    CHECK(short_weight_name("dense_1/kernel", "dense_1") == "kernel");
    CHECK(short_weight_name("conv1d_11_1/kernel:0", "conv1d_11") == "kernel");
    CHECK(short_weight_name("batch_normalization/moving_variance:0", "batch_normalization") == "moving_variance");
    CHECK(short_weight_name("dense_1_W:0", "dense_1") == "kernel");
    CHECK(short_weight_name("dense_1_b", "dense_1") == "bias");
    CHECK(short_weight_name("batchnormalization_1_running_std:0", "batchnormalization_1") == "moving_variance");
    CHECK(short_weight_name("batchnormalization_1_running_mean", "batchnormalization_1") == "moving_mean");
    CHECK(short_weight_name("batchnormalization_1_gamma:0", "batchnormalization_1") == "gamma");
    CHECK(short_weight_name("other_prefix_beta", "batchnormalization_1") == "beta");
    CHECK(short_weight_name("kernel", "dense") == "kernel");
}

TEST_CASE("keras_h5_weights: the four Dense files with known weights (Keras 1/2, TF/Theano)" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    struct Case {
        const char* file;
        const char* version;
        const char* backend;
        std::vector<std::string> names;
    };
    const std::vector<Case> cases = {
        { "dl4j-test-resources/weights/dense_tensorflow_1.h5", "1.2.2", "", { "dense_1_W:0", "dense_1_b:0" } },
        { "dl4j-test-resources/weights/dense_theano_1.h5", "1.2.2", "", { "dense_1_W", "dense_1_b" } },
        { "dl4j-test-resources/weights/dense_tensorflow_2.h5", "2.1.3", "tensorflow",
          { "dense_1/kernel:0", "dense_1/bias:0" } },
        { "dl4j-test-resources/weights/dense_theano_2.h5", "2.1.3", "theano", { "dense_1/kernel", "dense_1/bias" } },
    };
    for (const auto& c : cases) {
        INFO(c.file);
        // model.save files: keras_version sits on the root, and model_weights has its own (or none).
        WeightsGroup<float> w = read_weights_file<float>(keras_file(c.file));
        REQUIRE(w.layers.size() == 1);
        CHECK(w.layers[0].layer_name == "dense_1");
        CHECK(w.layers[0].weight_names == c.names);
        CHECK(short_names(w.layers[0]) == std::vector<std::string>{ "kernel", "bias" });
        REQUIRE(w.layers[0].values.size() == 2);
        CHECK(w.layers[0].values[0] == arange(24, { 4, 6 }));
        CHECK(w.layers[0].values[1] == arange(6, { 6 }));
        if (std::string(c.version) != "1.2.2") {
            CHECK(w.keras_version == c.version);
            CHECK(w.backend == c.backend);
        }
    }
}

TEST_CASE("keras_h5_weights: weights-only files put layer_names on the root" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    // Keras 1.2.2 save_weights: no keras_version/backend at all -> Keras's loader assumes "1".
    WeightsGroup<double> k1 =
      read_weights_file<double>(keras_file("dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_th_keras_1_weights.h5"));
    CHECK(k1.keras_version == "1");
    CHECK(k1.backend == "");
    std::vector<std::string> names;
    for (const auto& l : k1.layers)
        names.push_back(l.layer_name);
    CHECK(names == std::vector<std::string>{ "dense_1", "leakyrelu_1", "dropout_1", "dense_2", "activation_1",
                                             "dropout_2", "dense_3", "activation_2" });
    CHECK(k1.layers[0].weight_names == std::vector<std::string>{ "dense_1_W", "dense_1_b" });
    CHECK(k1.layers[0].values[0].shape() == std::vector<std::size_t>{ 784, 512 });
    CHECK(k1.layers[1].weight_names.empty()); // float64 (0,) attribute, not a string

    WeightsGroup<float> k2 =
      read_weights_file<float>(keras_file("dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_tf_keras_2_weights.h5"));
    CHECK(k2.keras_version == "2.0.6");
    CHECK(k2.backend == "tensorflow");
    REQUIRE(k2.layers.size() == 5);
    CHECK(k2.layers[4].weight_names == std::vector<std::string>{ "dense_3/kernel:0", "dense_3/bias:0" });
    CHECK(k2.layers[4].values[0].shape() == std::vector<std::size_t>{ 512, 10 });
}

TEST_CASE("keras_h5_weights: BatchNormalization names in every version" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    const std::vector<std::string> expected{ "gamma", "beta", "moving_mean", "moving_variance" };
    for (const char* f : { "dl4j-test-resources/weights/batch_to_conv2d_tensorflow_1.h5",
                           "dl4j-test-resources/weights/batch_to_conv2d_theano_1.h5",
                           "dl4j-test-resources/weights/batch_to_conv2d_tensorflow_2.h5",
                           "dl4j-test-resources/weights/batch_to_conv2d_theano_2.h5" }) {
        INFO(f);
        WeightsGroup<float> w = read_weights_file<float>(keras_file(f));
        const LayerWeights<float>* bn = nullptr;
        for (const auto& l : w.layers)
            if (l.layer_name.find("batch") == 0)
                bn = &l;
        REQUIRE(bn != nullptr);
        CHECK(short_names(*bn) == expected);
        REQUIRE(bn->values.size() == 4);
        CHECK(bn->values[3].shape() == std::vector<std::size_t>{ 10 });
        // INIT statistics: variance 1 (running_std in Keras 1 holds the variance, also 1 here).
        CHECK(bn->values[3] == xt::ones<float>({ 10 }));
    }
    // Keras 1 + Theano: no ":0".
    WeightsGroup<float> th1 = read_weights_file<float>(keras_file("dl4j-test-resources/weights/batch_to_conv2d_theano_1.h5"));
    CHECK(th1.layers[2].weight_names[3] == "batchnormalization_1_running_std");
}

TEST_CASE("keras_h5_weights: variable-length names and prefixes that differ from the layer name" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    WeightsGroup<float> vl = read_weights_file<float>(keras_file("dl4j-test-resources/tfkeras/batchNormError.h5"));
    REQUIRE(vl.layers.size() == 3);
    CHECK(vl.layers[0].layer_name == "input_1");
    CHECK(vl.layers[0].weight_names.empty());
    CHECK(vl.keras_version == "2.2.4-tf");

    WeightsGroup<float> gap = read_weights_file<float>(keras_file("dl4j-test-resources/tfkeras/GAPError.h5"));
    bool found = false;
    for (const auto& l : gap.layers) {
        if (l.layer_name == "conv1d_11") {
            found = true;
            REQUIRE(l.weight_names.size() == 2);
            CHECK(l.weight_names[0] == "conv1d_11_1/kernel:0");
            CHECK(short_names(l) == std::vector<std::string>{ "kernel", "bias" });
            CHECK(l.values[0].shape() == std::vector<std::size_t>{ 3, 128, 512 });
        }
    }
    CHECK(found);

    // Keras 2.14: variable-length strings, use_bias=False lists only the kernel.
    WeightsGroup<float> ww = read_weights_file<float>(
      keras_file("mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5"));
    CHECK(ww.keras_version == "2.14.0");
    for (const auto& l : ww.layers)
        if (l.layer_name == "depthwise_conv2d")
            CHECK(short_names(l) == std::vector<std::string>{ "depthwise_kernel" });
}

TEST_CASE("keras_h5_weights: every real model file reads (weights only, no layers involved)" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    std::size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(xtape::testing::keras_models_dir())) {
        const std::string p = e.path().string();
        if (e.path().extension() != ".h5" || p.find("inputs_and_outputs") != std::string::npos)
            continue;
        INFO(p);
        WeightsGroup<float> w = read_weights_file<float>(p);
        CHECK(!w.layers.empty());
        for (const auto& l : w.layers)
            CHECK(l.values.size() == l.weight_names.size());
        ++n;
    }
    CHECK(n == 34);
}

TEST_CASE("keras_h5_weights: writes tf.keras's layout and reads it back")
{
    TempDir tmp("keras_h5_weights");
    const std::string path = tmp.file("w.h5");
    array_t<float> k = arange(12, { 3, 4 }), b = arange(4, { 4 });
    array_t<float> g = xt::ones<float>({ 4 });
    {
        io::H5File f = io::H5File::create(path);
        io::H5Group root = f.root();
        io::H5Group mw = root.create_group("model_weights");
        std::vector<LayerWeightsRef<float>> layers{
            { "dense", { "dense/kernel:0", "dense/bias:0" }, { &k, &b } },
            { "activation", {}, {} },
            { "batch_normalization", { "batch_normalization/gamma:0" }, { &g } },
        };
        write_weights_group<float>(mw, layers, "2.4.0", "tensorflow");
        f.close();
    }
    io::H5File f = io::H5File::open_read(path);
    io::H5Group root = f.root();
    CHECK_FALSE(is_weights_only_root(root));
    io::H5Group mw = root.group("model_weights");
    CHECK(mw.read_string_array_attribute("layer_names") ==
          std::vector<std::string>{ "dense", "activation", "batch_normalization" });
    CHECK(mw.read_string_attribute("keras_version") == "2.4.0");
    CHECK(mw.read_string_attribute("backend") == "tensorflow");
    // The subgroup structure tf.keras writes: model_weights/<layer>/<layer>/<weight>:0.
    CHECK(root.has_dataset("model_weights/dense/dense/kernel:0"));
    CHECK(root.has_dataset("model_weights/dense/dense/bias:0"));
    CHECK(root.has_dataset("model_weights/batch_normalization/batch_normalization/gamma:0"));
    CHECK(root.dataset_dtype("model_weights/dense/dense/kernel:0") == "float32");
    // A layer without weights: weight_names is float64 of shape (0,), as Keras writes it.
    CHECK(raw_attribute_class(path, "/model_weights/activation", "weight_names") == H5T_FLOAT);
    CHECK(raw_attribute_class(path, "/model_weights/dense", "weight_names") == H5T_STRING);

    WeightsGroup<double> back = read_weights_group<double>(mw);
    REQUIRE(back.layers.size() == 3);
    CHECK(back.layers[0].values[0] == array_t<double>(arange(12, { 3, 4 })));
    CHECK(back.layers[1].weight_names.empty());
    CHECK(back.layers[2].weight_names == std::vector<std::string>{ "batch_normalization/gamma:0" });
}

TEST_CASE("keras_h5_weights: clear errors for broken files")
{
    TempDir tmp("keras_h5_weights_err");
    // A listed weight without its dataset.
    const std::string missing = tmp.file("missing.h5");
    {
        io::H5File f = io::H5File::create(missing);
        io::H5Group root = f.root();
        root.write_string_array_attribute("layer_names", { "dense_1" });
        io::H5Group g = root.create_group("dense_1");
        g.write_string_array_attribute("weight_names", { "dense_1/kernel:0", "dense_1/bias:0" });
        g.write_dataset<float>("dense_1/kernel:0", arange(6, { 2, 3 }));
        f.close();
    }
    expect_error<IOError>([&] { read_weights_file<float>(missing); },
                          { missing, "dense_1", "dense_1/bias:0", "weight_names" });

    // A layer listed in layer_names without a group.
    const std::string nogroup = tmp.file("nogroup.h5");
    {
        io::H5File f = io::H5File::create(nogroup);
        f.root().write_string_array_attribute("layer_names", { "dense_7" });
        f.close();
    }
    expect_error<IOError>([&] { read_weights_file<float>(nogroup); }, { nogroup, "dense_7", "layer_names" });

    // An HDF5 file that is not a Keras file.
    const std::string other = tmp.file("other.h5");
    {
        io::H5File f = io::H5File::create(other);
        f.root().create_group("something");
        f.close();
    }
    expect_error<IOError>([&] { read_weights_file<float>(other); }, { other, "model_weights", "layer_names" });

    // Not HDF5 at all, and a missing file.
    const std::string text = tmp.file("text.h5");
    std::ofstream(text) << "this is not an HDF5 file\n";
    expect_error<IOError>([&] { read_weights_file<float>(text); }, { text });
    expect_error<IOError>([&] { read_weights_file<float>(tmp.file("absent.h5")); }, { "absent.h5" });

    // Duplicate layer names cannot be written.
    const std::string dup = tmp.file("dup.h5");
    io::H5File f = io::H5File::create(dup);
    io::H5Group root = f.root();
    expect_error<ValueError>(
      [&] {
          write_weights_group<float>(root, { { "d", {}, {} }, { "d", {}, {} } }, "2.4.0", "tensorflow");
      },
      { "'d'", "unique" });
}

TEST_CASE("keras_h5_weights: a real file cut short (a crash while copying it) is an IOError, never a crash" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    TempDir tmp("keras_h5_weights_cut");
    const std::string src = keras_file("dl4j-test-resources/weights/dense_tensorflow_2.h5");
    const std::string cut = tmp.file("cut.h5");
    std::ifstream in(src, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(cut, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size() / 2));
    expect_error<IOError>([&] { read_weights_file<float>(cut); }, { cut });
}
