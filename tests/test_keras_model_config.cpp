// ctest-labels: sanitize
// Keras model_config JSON in every form: Sequential (list / dict), Model / Functional chains
// in Keras 1/2 and Keras 3 node forms, and the graphs that are refused.
#include "saving/keras_model_config.hpp"

#include "framework/io/hdf5.hpp"
#include "keras_files.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace xtape;
using namespace xtape::keras_h5;
using xtape::testing::expect_error;
using xtape::testing::have_keras_models;
using xtape::testing::keras_file;

namespace {

ModelSpec spec_of_h5(const std::string& rel)
{
    io::H5File f = io::H5File::open_read(keras_file(rel));
    return parse_model_config(f.root().read_string_attribute("model_config"), rel);
}

ModelSpec spec_of_json(const std::string& rel)
{
    std::ifstream in(keras_file(rel));
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_model_config(ss.str(), rel);
}

std::vector<std::string> classes(const ModelSpec& s)
{
    std::vector<std::string> v;
    for (const auto& l : s.layers)
        v.push_back(l.class_name);
    return v;
}

json keras3_tensor(const std::string& layer)
{
    return json{ { "class_name", "__keras_tensor__" },
                 { "config", { { "shape", { nullptr, 4 } }, { "dtype", "float32" }, { "keras_history", { layer, 0, 0 } } } } };
}

json keras3_layer(const std::string& cls, const std::string& name, const std::vector<std::string>& inputs)
{
    json nodes = json::array();
    if (!inputs.empty()) {
        json args = json::array();
        if (inputs.size() == 1)
            args.push_back(keras3_tensor(inputs[0]));
        else {
            json list = json::array();
            for (const auto& i : inputs)
                list.push_back(keras3_tensor(i));
            args.push_back(list);
        }
        nodes.push_back(json{ { "args", args }, { "kwargs", json::object() } });
    }
    return json{ { "module", "keras.layers" },
                 { "class_name", cls },
                 { "config", { { "name", name }, { "units", 3 } } },
                 { "registered_name", nullptr },
                 { "name", name },
                 { "inbound_nodes", nodes } };
}

} // namespace

TEST_CASE("keras_model_config: Sequential as a list (Keras 1 and 2.0) and as a dict (2.2+)" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    ModelSpec k1 = spec_of_json("dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_th_keras_1_config.json");
    CHECK(k1.class_name == "Sequential");
    CHECK_FALSE(k1.functional);
    REQUIRE(k1.input_shape);
    CHECK(*k1.input_shape == dims_t{ -1, 784 });
    CHECK(classes(k1) == std::vector<std::string>{ "Dense", "LeakyReLU", "Dropout", "Dense", "Activation", "Dropout",
                                                   "Dense", "Activation" });
    CHECK(k1.layers[0].name == "dense_1");
    CHECK(k1.layers[0].config.at("output_dim") == 512);

    ModelSpec k2 = spec_of_json("dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_tf_keras_2_config.json");
    CHECK(classes(k2) == std::vector<std::string>{ "Dense", "Dropout", "Dense", "Dropout", "Dense" });
    CHECK(*k2.input_shape == dims_t{ -1, 784 });

    ModelSpec relu = spec_of_json("dl4j-test-resources/examples/activations/ReLU_0_config.json");
    CHECK(relu.name == "sequential_1");
    CHECK(classes(relu) == std::vector<std::string>{ "Dense", "ReLU" });
    CHECK(*relu.input_shape == dims_t{ -1, 16 });

    ModelSpec bn = spec_of_h5("dl4j-test-resources/fullconfigs/cnn/cnn_batch_norm.h5");
    CHECK(classes(bn) ==
          std::vector<std::string>{ "Conv2D", "BatchNormalization", "Activation", "Conv2D", "Flatten", "Dense" });
    CHECK(*bn.input_shape == dims_t{ -1, 10, 10, 3 });

    ModelSpec issue = spec_of_h5("dl4j-test-resources/weights/issue_9560.h5");
    CHECK(issue.name == "sequential");
    CHECK(issue.layers.size() == 11);
    CHECK(*issue.input_shape == dims_t{ -1, 2048, 1 });

    // Keras 1.1.2 JSON: input_dim null but batch_input_shape given.
    ModelSpec mlp1 = spec_of_json("dl4j-test-resources/configs/keras1/mlp_config.json");
    REQUIRE(mlp1.input_shape);
    CHECK(mlp1.input_shape->size() == 2);
}

TEST_CASE("keras_model_config: Functional chains (tf.keras 2.2.4 to 2.14)" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    ModelSpec ad = spec_of_h5("mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5");
    CHECK(ad.class_name == "Functional");
    CHECK(ad.functional);
    CHECK(ad.name == "functional_1");
    CHECK(ad.input_name == "input_1");
    CHECK(*ad.input_shape == dims_t{ -1, 640 });
    REQUIRE(ad.layers.size() == 28);
    CHECK(ad.layers[0].name == "dense");
    CHECK(ad.layers[1].class_name == "BatchNormalization");
    CHECK(ad.layers[1].config.at("axis") == json::array({ 1 }));
    CHECK(ad.layers[27].name == "dense_9");

    ModelSpec mlp = spec_of_h5("dl4j-test-resources/tfkeras/mlp_0.h5");
    CHECK(mlp.class_name == "Model");
    CHECK(*mlp.input_shape == dims_t{ -1, 3 });
    CHECK(classes(mlp) == std::vector<std::string>{ "Dense", "Activation", "Dropout" });

    ModelSpec ww = spec_of_h5("mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5");
    CHECK(*ww.input_shape == dims_t{ -1, 30, 1, 40 });
    CHECK(ww.layers.front().class_name == "DepthwiseConv2D");
    CHECK(ww.layers.back().class_name == "Dense");

    ModelSpec bne = spec_of_h5("dl4j-test-resources/tfkeras/batchNormError.h5");
    CHECK(classes(bne) == std::vector<std::string>{ "Conv1D", "BatchNormalization" });
}

TEST_CASE("keras_model_config: graphs with merges name the file and the layer" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    expect_error<NotImplementedError>([] { spec_of_h5("dl4j-test-resources/tfkeras/GAPError.h5"); },
                                      { "GAPError.h5", "multiply_5", "Multiply", "merges" });
    expect_error<NotImplementedError>(
      [] { spec_of_h5("mlcommons-tiny/benchmark/training/image_classification/trained_models/pretrainedResnet.h5"); },
      { "pretrainedResnet.h5", "'add'", "Add", "merges" });
}

TEST_CASE("keras_model_config: Keras 3 forms")
{
    json seq = { { "module", "keras" },
                 { "class_name", "Sequential" },
                 { "config",
                   { { "name", "sequential" },
                     { "layers",
                       { { { "module", "keras.layers" },
                           { "class_name", "InputLayer" },
                           { "config", { { "batch_shape", { nullptr, 8 } }, { "name", "input_layer" } } } },
                         { { "module", "keras.layers" },
                           { "class_name", "Dense" },
                           { "config", { { "name", "dense" }, { "units", 3 } } } } } } } } };
    ModelSpec s = parse_model_config(seq, "k3.h5");
    CHECK(s.input_name == "input_layer");
    CHECK(*s.input_shape == dims_t{ -1, 8 });
    CHECK(classes(s) == std::vector<std::string>{ "Dense" });

    // Sequential without InputLayer: Keras 3's build_input_shape.
    json seq2 = { { "class_name", "Sequential" },
                  { "config",
                    { { "layers", { { { "class_name", "Dense" }, { "config", { { "name", "d" }, { "units", 2 } } } } } },
                      { "build_input_shape", { nullptr, 5 } } } } };
    CHECK(*parse_model_config(seq2, "x").input_shape == dims_t{ -1, 5 });

    json input = { { "module", "keras.layers" },
                   { "class_name", "InputLayer" },
                   { "config", { { "batch_shape", { nullptr, 4 } }, { "name", "in" } } },
                   { "name", "in" },
                   { "inbound_nodes", json::array() } };
    json fn = { { "class_name", "Functional" },
                { "config",
                  { { "name", "f" },
                    { "layers", { input, keras3_layer("Dense", "d1", { "in" }), keras3_layer("Dense", "d2", { "d1" }) } },
                    { "input_layers", { "in", 0, 0 } }, // Keras 3 flattens a single input
                    { "output_layers", { { "d2", 0, 0 } } } } } };
    ModelSpec f = parse_model_config(fn, "k3f.h5");
    CHECK(f.functional);
    CHECK(*f.input_shape == dims_t{ -1, 4 });
    REQUIRE(f.layers.size() == 2);
    CHECK(f.layers[0].name == "d1");
    CHECK(f.layers[1].name == "d2");

    // The layers listed out of call order still give the chain order.
    json shuffled = fn;
    std::swap(shuffled["config"]["layers"][1], shuffled["config"]["layers"][2]);
    ModelSpec fs = parse_model_config(shuffled, "k3f.h5");
    CHECK(fs.layers[0].name == "d1");

    json merge = fn;
    merge["config"]["layers"].push_back(keras3_layer("Add", "add", { "d1", "d2" }));
    merge["config"]["output_layers"] = json::array({ json::array({ "add", 0, 0 }) });
    expect_error<NotImplementedError>([&] { parse_model_config(merge, "k3m.h5"); },
                                      { "k3m.h5", "'add'", "2 inputs", "d1, d2" });

    json branch = fn;
    branch["config"]["layers"].push_back(keras3_layer("Dense", "side", { "d1" }));
    expect_error<NotImplementedError>([&] { parse_model_config(branch, "k3b.h5"); }, { "k3b.h5", "'side'", "branch" });

    json two_out = fn;
    two_out["config"]["output_layers"] = json::array({ json::array({ "d2", 0, 0 }), json::array({ "d1", 0, 0 }) });
    expect_error<NotImplementedError>([&] { parse_model_config(two_out, "k3o.h5"); }, { "k3o.h5", "2 outputs" });

    json shared = fn;
    shared["config"]["layers"][2]["inbound_nodes"].push_back(shared["config"]["layers"][2]["inbound_nodes"][0]);
    expect_error<NotImplementedError>([&] { parse_model_config(shared, "k3s.h5"); }, { "'d2'", "shared" });
}

TEST_CASE("keras_model_config: malformed and unsupported configs")
{
    expect_error<ValueError>([] { parse_model_config(std::string("{not json"), "bad.json"); }, { "bad.json", "JSON" });
    expect_error<ValueError>([] { parse_model_config(json::array(), "arr.json"); }, { "arr.json" });
    expect_error<ValueError>([] { parse_model_config(json{ { "class_name", "Sequential" } }, "nc.json"); },
                             { "nc.json", "config" });
    expect_error<NotImplementedError>(
      [] { parse_model_config(json{ { "class_name", "Graph" }, { "config", json::object() } }, "g.json"); },
      { "g.json", "Graph" });
    json nested = { { "class_name", "Sequential" },
                    { "config", { { { "class_name", "Sequential" }, { "config", json::array() } } } } };
    expect_error<NotImplementedError>([&] { parse_model_config(nested, "n.json"); }, { "n.json", "nested" });
    json bad_history = { { "class_name", "Functional" },
                         { "config",
                           { { "layers",
                               { { { "class_name", "Dense" },
                                   { "name", "d" },
                                   { "config", json::object() },
                                   { "inbound_nodes", { { { "args", { keras3_tensor("x") } } } } } } } },
                             { "input_layers", json::array() },
                             { "output_layers", json::array() } } } };
    bad_history["config"]["layers"][0]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = 5;
    expect_error<ValueError>([&] { parse_model_config(bad_history, "h.json"); }, { "h.json", "malformed" });
}
