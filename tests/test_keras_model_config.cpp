// ctest-labels: sanitize
// Keras model_config JSON in every form through the one config parser (model_from_config):
// Sequential (list / dict), Model / Functional graphs in Keras 1/2 and Keras 3 node forms, real
// files' structures (with stand-in layers for the classes xtape lacks), and malformed configs.
#include "saving/keras_model_config.hpp"

#include "framework/io/hdf5.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/input_layer.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::have_keras_models;
using xtape::testing::keras_file;

namespace {

/// A stand-in for any layer class: keeps its class name and config, takes any number of inputs
/// and passes the first one's shape through. Lets the parser be tested on files whose layers
/// xtape does not have.
class Stub : public Layer<float> {
public:
    Stub(const std::string& cls, const json& config)
        : Layer<float>(cls, config.value("name", std::string()))
        , m_config(config)
    {
    }
    json get_config() const override { return m_config; }
    std::vector<dims_t> compute_output_shape_list(const std::vector<dims_t>& s) const override { return { s[0] }; }

protected:
    void build_list(const std::vector<dims_t>&) override {}
    void check_input_list(const std::vector<shape_t>&) const override {}
    std::vector<Tensor<float>> call_list(const std::vector<Tensor<float>>& xs, const std::vector<Tensor<float>>&,
                                         const CallArgs&) override
    {
        return { xs[0] };
    }

private:
    json m_config;
};

LayerPtr<float> stub_factory(const json& spec)
{
    const std::string cls = spec.at("class_name").get<std::string>();
    const json c = spec.value("config", json::object());
    if (cls == "InputLayer")
        return InputLayer<float>::from_config(c);
    return std::make_shared<Stub>(cls, c);
}

std::shared_ptr<Model<float>> build(const json& spec) { return model_from_config<float>(spec, stub_factory); }

std::shared_ptr<Model<float>> of_h5(const std::string& rel)
{
    io::H5File f = io::H5File::open_read(keras_file(rel));
    return build(json::parse(f.root().read_string_attribute("model_config")));
}

std::shared_ptr<Model<float>> of_json(const std::string& rel)
{
    std::ifstream in(keras_file(rel));
    std::stringstream ss;
    ss << in.rdbuf();
    return build(json::parse(ss.str()));
}

std::vector<std::string> classes(const Model<float>& m)
{
    std::vector<std::string> v;
    for (const auto& l : m.layers())
        v.push_back(l->class_name());
    return v;
}

dims_t seq_input(const Model<float>& m) { return *dynamic_cast<const Sequential<float>&>(m).input_shape(); }

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
    auto k1 = of_json("dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_th_keras_1_config.json");
    CHECK(k1->class_name() == "Sequential");
    CHECK(seq_input(*k1) == dims_t{ -1, 784 });
    CHECK(classes(*k1) == std::vector<std::string>{ "Dense", "LeakyReLU", "Dropout", "Dense", "Activation", "Dropout",
                                                    "Dense", "Activation" });
    CHECK(k1->layers()[0]->name() == "dense_1");
    CHECK(k1->layers()[0]->get_config().at("output_dim") == 512);

    auto k2 = of_json("dl4j-test-resources-2018/examples/mnist_mlp/mnist_mlp_tf_keras_2_config.json");
    CHECK(classes(*k2) == std::vector<std::string>{ "Dense", "Dropout", "Dense", "Dropout", "Dense" });
    CHECK(seq_input(*k2) == dims_t{ -1, 784 });

    auto relu = of_json("dl4j-test-resources/examples/activations/ReLU_0_config.json");
    CHECK(relu->name() == "sequential_1");
    CHECK(classes(*relu) == std::vector<std::string>{ "Dense", "ReLU" });
    CHECK(seq_input(*relu) == dims_t{ -1, 16 });

    auto bn = of_h5("dl4j-test-resources/fullconfigs/cnn/cnn_batch_norm.h5");
    CHECK(classes(*bn) ==
          std::vector<std::string>{ "Conv2D", "BatchNormalization", "Activation", "Conv2D", "Flatten", "Dense" });
    CHECK(seq_input(*bn) == dims_t{ -1, 10, 10, 3 });

    auto issue = of_h5("dl4j-test-resources/weights/issue_9560.h5");
    CHECK(issue->name() == "sequential");
    CHECK(issue->layers().size() == 11);
    CHECK(seq_input(*issue) == dims_t{ -1, 2048, 1 });

    // Keras 1.1.2 JSON: input_dim null but batch_input_shape given.
    auto mlp1 = of_json("dl4j-test-resources/configs/keras1/mlp_config.json");
    CHECK(seq_input(*mlp1).size() == 2);
}

TEST_CASE("keras_model_config: Functional graphs of real files (tf.keras 2.2.4 to 2.14)" * xtape::testing::real_files())
{
    if (!have_keras_models())
        return;
    auto ad = of_h5("mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5");
    CHECK(ad->class_name() == "Functional");
    CHECK(ad->name() == "functional_1");
    CHECK(ad->input_names() == std::vector<std::string>{ "input_1" });
    CHECK(ad->input_shape() == dims_t{ -1, 640 });
    REQUIRE(ad->layers().size() == 28);
    CHECK(ad->layers()[0]->name() == "dense");
    CHECK(ad->layers()[1]->class_name() == "BatchNormalization");
    CHECK(ad->layers()[1]->get_config().at("axis") == json::array({ 1 }));
    CHECK(ad->layers()[27]->name() == "dense_9");

    auto mlp = of_h5("dl4j-test-resources/tfkeras/mlp_0.h5");
    CHECK(mlp->input_shape() == dims_t{ -1, 3 });
    CHECK(classes(*mlp) == std::vector<std::string>{ "Dense", "Activation", "Dropout" });

    auto ww = of_h5("mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5");
    CHECK(ww->input_shape() == dims_t{ -1, 30, 1, 40 });
    CHECK(ww->layers().front()->class_name() == "DepthwiseConv2D");
    CHECK(ww->layers().back()->class_name() == "Dense");

    // Graphs with merges (once refused): every node in place.
    auto gap = of_h5("dl4j-test-resources/tfkeras/GAPError.h5");
    const auto mul = gap->get_layer("multiply_5");
    CHECK(mul->class_name() == "Multiply");
    REQUIRE(mul->inbound_node_count() == 1);
    CHECK(mul->inbound_nodes()[0]->inputs.size() == 2);
    CHECK(gap->output_names() == std::vector<std::string>{ "multiply_5" });
    auto resnet = of_h5("mlcommons-tiny/benchmark/training/image_classification/trained_models/pretrainedResnet.h5");
    CHECK(resnet->get_layer("add")->inbound_nodes()[0]->inputs.size() == 2);
    CHECK(resnet->input_shape() == dims_t{ -1, 32, 32, 3 });
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
    auto s = build(seq);
    CHECK(s->get_config()["layers"][0]["config"]["name"] == "input_layer");
    CHECK(seq_input(*s) == dims_t{ -1, 8 });
    CHECK(classes(*s) == std::vector<std::string>{ "Dense" });

    // Sequential without InputLayer: Keras 3's build_input_shape.
    json seq2 = { { "class_name", "Sequential" },
                  { "config",
                    { { "layers", { { { "class_name", "Dense" }, { "config", { { "name", "d" }, { "units", 2 } } } } } },
                      { "build_input_shape", { nullptr, 5 } } } } };
    CHECK(seq_input(*build(seq2)) == dims_t{ -1, 5 });

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
    auto f = build(fn);
    CHECK(f->input_shape() == dims_t{ -1, 4 });
    REQUIRE(f->layers().size() == 2);
    CHECK(f->layers()[0]->name() == "d1");
    CHECK(f->layers()[1]->name() == "d2");

    // Layers listed out of call order: a node waits for the node it reads (Keras's loop).
    json shuffled = fn;
    std::swap(shuffled["config"]["layers"][1], shuffled["config"]["layers"][2]);
    CHECK(build(shuffled)->layers()[0]->name() == "d1");

    json merge = fn;
    merge["config"]["layers"].push_back(keras3_layer("Add", "add", { "d1", "d2" }));
    merge["config"]["output_layers"] = json::array({ json::array({ "add", 0, 0 }) });
    CHECK(build(merge)->get_layer("add")->inbound_nodes()[0]->inputs.size() == 2);

    json branch = fn; // a layer that feeds no output is made but not part of the model
    branch["config"]["layers"].push_back(keras3_layer("Dense", "side", { "d1" }));
    CHECK(build(branch)->layers().size() == 2);

    json two_out = fn;
    two_out["config"]["output_layers"] = json::array({ json::array({ "d2", 0, 0 }), json::array({ "d1", 0, 0 }) });
    CHECK(build(two_out)->output_names() == std::vector<std::string>{ "d2", "d1" });

    json shared = fn; // d2 called twice on d1
    shared["config"]["layers"][2]["inbound_nodes"].push_back(shared["config"]["layers"][2]["inbound_nodes"][0]);
    CHECK(build(shared)->get_layer("d2")->inbound_node_count() == 2);

    // Nested: a Sequential as a layer of a Sequential.
    json nested = { { "class_name", "Sequential" },
                    { "config", { { "layers", { seq } }, { "name", "outer" } } } };
    auto n = build(nested);
    REQUIRE(n->layers().size() == 1);
    CHECK(n->layers()[0]->class_name() == "Sequential");
}

TEST_CASE("keras_model_config: malformed and unsupported configs")
{
    expect_error<ValueError>([] { build(json::array()); }, { "class_name" });
    expect_error<ValueError>([] { build(json{ { "class_name", "Sequential" } }); }, { "layers" });
    expect_error<KeyError>([] { build(json{ { "class_name", "Graph" }, { "config", json::object() } }); }, { "Graph" });
    json bad_history = { { "class_name", "Functional" },
                         { "config",
                           { { "layers",
                               { { { "class_name", "Dense" },
                                   { "name", "d" },
                                   { "config", { { "name", "d" } } },
                                   { "inbound_nodes", { { { "args", { keras3_tensor("x") } } } } } } } },
                             { "input_layers", json::array() },
                             { "output_layers", json::array() } } } };
    bad_history["config"]["layers"][0]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = 5;
    expect_error<ValueError>([&] { build(bad_history); }, { "'d'", "bad keras_history" });
    json unknown_layer = bad_history;
    unknown_layer["config"]["layers"][0]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] =
      json::array({ "nowhere", 0, 0 });
    expect_error<ValueError>([&] { build(unknown_layer); }, { "'nowhere'", "does not define" });
}
