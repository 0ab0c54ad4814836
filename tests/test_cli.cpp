// ctest-labels: sanitize
// The xtape command-line tool, run as a separate process on real Keras files.
#include "framework/io/hdf5.hpp"
#include "framework/io/npy.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "saving/keras_h5.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <sys/wait.h>

using namespace xtape;
using xtape::testing::have_keras_models;
using xtape::testing::keras_file;
using xtape::testing::TempDir;

namespace {

struct Run {
    int status = -1;
    std::string out, err;
};

bool have_cli()
{
    if (std::string(XTAPE_CLI_PATH).empty()) {
        MESSAGE("SKIPPED: the xtape tool is not built (XTAPE_BUILD_TOOLS=OFF)");
        return false;
    }
    return true;
}

std::string slurp(const std::string& path)
{
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string quote(const std::string& s)
{
    std::string q = "'";
    for (char c : s)
        q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

Run run(const TempDir& tmp, const std::vector<std::string>& args)
{
    std::string cmd = quote(XTAPE_CLI_PATH);
    for (const auto& a : args)
        cmd += " " + quote(a);
    const std::string out = tmp.file("stdout.txt"), err = tmp.file("stderr.txt");
    cmd += " > " + quote(out) + " 2> " + quote(err);
    const int rc = std::system(cmd.c_str());
    Run r;
    r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

/// Errors are one line on stderr.
void check_one_error_line(const Run& r)
{
    INFO("stderr: " << r.err);
    CHECK(r.err.rfind("xtape: error: ", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

double max_abs_diff(const array_t<float>& a, const array_t<float>& b)
{
    REQUIRE(a.shape() == b.shape());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
    return m;
}

const std::string mnist = "dl4j-test-resources-2018/examples/mnist_mlp/";

/// mnist_mlp (Keras 2.0.6 JSON + weights) as one model.save file, as the CLI takes models.
std::string mnist_model_file(const TempDir& tmp)
{
    const std::string path = tmp.file("mnist_mlp.h5");
    auto m = model_from_json<float>(slurp(keras_file(mnist + "mnist_mlp_tf_keras_2_config.json")));
    load_weights(*m, keras_file(mnist + "mnist_mlp_tf_keras_2_weights.h5"));
    save_model(*m, path);
    return path;
}

/// x and y of mnist_mlp's stored data as a data file with datasets "x" and "y".
std::string mnist_data_file(const TempDir& tmp)
{
    const std::string path = tmp.file("mnist_data.h5");
    io::H5File src = io::H5File::open_read(keras_file(mnist + "mnist_mlp_tf_keras_2_inputs_and_outputs.h5"));
    io::H5File f = io::H5File::create(path);
    f.root().write_dataset<float>("x", src.root().read_dataset<float>("inputs/dense_1_input"));
    f.root().write_dataset<float>("labels", src.root().read_dataset<float>("outputs/dense_3")); // one-hot
    f.close();
    return path;
}

} // namespace

TEST_CASE("cli: help, usage errors and typed errors")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_help");
    Run h = run(tmp, { "--help" });
    CHECK(h.status == 0);
    CHECK(h.out.find("gradcheck") != std::string::npos);
    for (const char* c : { "summary", "predict", "evaluate", "fit", "gradcheck" }) {
        INFO(c);
        Run r = run(tmp, { c, "--help" });
        CHECK(r.status == 0);
        CHECK(r.out.rfind(std::string("usage: xtape ") + c, 0) == 0);
    }
    Run unknown = run(tmp, { "train" });
    CHECK(unknown.status == 2);
    check_one_error_line(unknown);
    Run no_model = run(tmp, { "summary" });
    CHECK(no_model.status == 2);
    check_one_error_line(no_model);
    Run bad_opt = run(tmp, { "predict", "m.h5", "--bogus", "1" });
    CHECK(bad_opt.status == 2);
    CHECK(bad_opt.err.find("--bogus") != std::string::npos);
    Run missing = run(tmp, { "summary", tmp.file("absent.h5") });
    CHECK(missing.status == 1);
    check_one_error_line(missing);
    CHECK(missing.err.find("absent.h5") != std::string::npos);
    if (!have_keras_models())
        return;
    Run conv = run(tmp, { "summary", keras_file("dl4j-test-resources/fullconfigs/cnn/cnn_batch_norm.h5") });
    CHECK(conv.status == 1);
    check_one_error_line(conv);
    CHECK(conv.err.find("cnn_batch_norm.h5: layer 'conv2d_1' (Conv2D)") != std::string::npos);
    Run no_output = run(tmp, { "predict", keras_file("dl4j-test-resources/examples/activations/ReLU_0_model.h5"),
                               "--input", "x.h5" });
    CHECK(no_output.status == 2);
    CHECK(no_output.err.find("--output") != std::string::npos);
}

TEST_CASE("cli: summary of ad01.h5")
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_summary");
    Run r = run(tmp, { "summary", keras_file("mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5") });
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("functional_1") != std::string::npos);
    CHECK(r.out.find("input_1 (InputLayer)") != std::string::npos);
    CHECK(r.out.find("batch_normalization_8") != std::string::npos); // the table wraps "(BatchNormalization)"
    CHECK(r.out.find("(BatchNormalization)") != std::string::npos);
    CHECK(r.out.find("dense_9 (Dense)") != std::string::npos);
    CHECK(r.out.find("269,992") != std::string::npos);
}

TEST_CASE("cli: predict reproduces Keras's stored predictions")
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_predict");
    const std::string model = mnist_model_file(tmp);
    const std::string io_file = keras_file(mnist + "mnist_mlp_tf_keras_2_inputs_and_outputs.h5");
    const std::string out = tmp.file("pred.h5");
    Run r = run(tmp, { "predict", model, "--input", io_file, "--dataset", "inputs/dense_1_input", "--output", out,
                       "--batch-size", "7" });
    INFO(r.err);
    REQUIRE(r.status == 0);
    io::H5File pf = io::H5File::open_read(out);
    CHECK(pf.root().dataset_dtype("y") == "float32");
    const array_t<float> y = pf.root().read_dataset<float>("y");
    io::H5File ef = io::H5File::open_read(io_file);
    const array_t<float> expected = ef.root().read_dataset<float>("predictions/dense_3");
    const double diff = max_abs_diff(y, expected);
    MESSAGE("xtape predict on mnist_mlp (100 rows): max |xtape - Keras| = " << diff);
    CHECK(diff < 1e-5);

    // A real model.save file directly, and .npy in and out (float64 input converted).
    const std::string relu = "dl4j-test-resources/examples/activations/";
    io::H5File rf = io::H5File::open_read(keras_file(relu + "ReLU_0_inputs_and_outputs.h5"));
    const std::string npy_in = tmp.file("x.npy"), npy_out = tmp.file("y.npy");
    io::write_npy<double>(npy_in, rf.root().read_dataset<double>("inputs/dense_input"));
    Run n = run(tmp, { "predict", keras_file(relu + "ReLU_0_model.h5"), "--input", npy_in, "--output", npy_out });
    INFO(n.err);
    REQUIRE(n.status == 0);
    CHECK(max_abs_diff(io::read_npy<float>(npy_out), rf.root().read_dataset<float>("predictions/re_lu_1")) < 1e-5);

    // A dataset that is not there names the file, the dataset and what exists.
    Run bad = run(tmp, { "predict", model, "--input", io_file, "--output", out });
    CHECK(bad.status == 1);
    check_one_error_line(bad);
    CHECK(bad.err.find("no dataset 'x'") != std::string::npos);
    CHECK(bad.err.find("inputs") != std::string::npos);
}

TEST_CASE("cli: evaluate prints one JSON object")
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_evaluate");
    const std::string model = mnist_model_file(tmp);
    const std::string data = mnist_data_file(tmp);
    // No training_config in this file: the loss must be given.
    Run none = run(tmp, { "evaluate", model, "--data", data, "--y", "labels" });
    CHECK(none.status == 1);
    check_one_error_line(none);
    CHECK(none.err.find("--loss") != std::string::npos);

    Run r = run(tmp, { "evaluate", model, "--data", data, "--y", "labels", "--loss", "categorical_crossentropy" });
    INFO(r.err);
    REQUIRE(r.status == 0);
    const json j = json::parse(r.out);
    REQUIRE(j.contains("loss"));
    io::H5File ef = io::H5File::open_read(keras_file(mnist + "mnist_mlp_tf_keras_2_inputs_and_outputs.h5"));
    const double keras_loss = ef.root().read_dataset<double>("scores/loss")(0);
    MESSAGE("evaluate mnist_mlp: xtape loss " << j["loss"].get<double>() << ", Keras's stored score " << keras_loss);
    CHECK(j["loss"].get<double>() == doctest::Approx(keras_loss).epsilon(1e-4));

    // A model.save file with training_config (mse, metrics ["mae"]) on its own predictions.
    const std::string relu = "dl4j-test-resources/examples/activations/";
    const std::string d2 = tmp.file("relu_data.h5");
    {
        io::H5File src = io::H5File::open_read(keras_file(relu + "ReLU_0_inputs_and_outputs.h5"));
        io::H5File f = io::H5File::create(d2);
        f.root().write_dataset<float>("x", src.root().read_dataset<float>("inputs/dense_input"));
        f.root().write_dataset<float>("y", src.root().read_dataset<float>("predictions/re_lu_1"));
        f.close();
    }
    Run e = run(tmp, { "evaluate", keras_file(relu + "ReLU_0_model.h5"), "--data", d2 });
    INFO(e.err);
    REQUIRE(e.status == 0);
    const json k = json::parse(e.out);
    CHECK(k.at("loss").get<double>() < 1e-10);
    CHECK(k.at("mae").get<double>() < 1e-5);
}

TEST_CASE("cli: fit --no-shuffle writes a model that loads and equals the same training in-process")
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_fit");
    const std::string model = mnist_model_file(tmp);
    const std::string data = mnist_data_file(tmp);
    const std::string out = tmp.file("trained.h5");
    Run r = run(tmp, { "fit", model, "--data", data, "--y", "labels", "--output", out, "--epochs", "2", "--batch-size",
                       "20", "--optimizer", "sgd", "--learning-rate", "0.05", "--loss", "categorical_crossentropy",
                       "--no-shuffle", "--seed", "11", "--validation-split", "0.2" });
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("Epoch 2/2") != std::string::npos);
    CHECK(r.out.find("val_loss") != std::string::npos);
    auto trained = load_model<float>(out);
    REQUIRE(trained->compiled());
    CHECK(trained->optimizer()->class_name() == "SGD");
    CHECK(trained->optimizer()->iterations() == 8); // 80 training samples / 20, two epochs

    // The same run in this process.
    set_random_seed(11);
    auto ref = load_model<float>(model);
    ref->compile(get_optimizer<float>(json("sgd")), "categorical_crossentropy");
    ref->optimizer()->set_learning_rate(0.05);
    io::H5File df = io::H5File::open_read(data);
    FitOptions<float> fo;
    fo.epochs = 2;
    fo.batch_size = 20;
    fo.shuffle = false;
    fo.verbose = 0;
    fo.validation_split = 0.2;
    ref->fit(df.root().read_dataset<float>("x"), df.root().read_dataset<float>("labels"), fo);
    const auto a = trained->get_weights(), b = ref->get_weights();
    REQUIRE(a.size() == b.size());
    double diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        diff = std::max(diff, max_abs_diff(a[i], b[i]));
    CHECK(diff == 0.0);
    auto before = load_model<float>(model);
    CHECK(max_abs_diff(before->get_weights()[0], a[0]) > 0); // training changed the weights

    // A second fit continues from the saved optimizer state (no --optimizer: the file's).
    const std::string out2 = tmp.file("trained2.h5");
    Run r2 = run(tmp, { "fit", out, "--data", data, "--y", "labels", "--output", out2, "--batch-size", "20",
                        "--no-shuffle" });
    INFO(r2.err);
    REQUIRE(r2.status == 0);
    CHECK(load_model<float>(out2)->optimizer()->iterations() == 13);
}

TEST_CASE("cli: gradcheck passes on a small model and fails when it should")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_gradcheck");
    reset_layer_names();
    set_random_seed(2);
    Sequential<float> m("small");
    m.add(std::make_shared<InputLayer<float>>(dims_t{ 5 }));
    DenseOptions<float> o;
    o.units = 6;
    o.activation = "tanh";
    o.kernel_regularizer = get_regularizer<float>(json("l2"));
    m.add(std::make_shared<Dense<float>>(o));
    m.add(std::make_shared<BatchNormalization<float>>());
    m.add(std::make_shared<Dropout<float>>(0.3));
    m.add(std::make_shared<Dense<float>>(3, "softmax"));
    m.compile("adam", "sparse_categorical_crossentropy");
    const std::string model = tmp.file("small.h5");
    save_model(m, model);
    const std::string data = tmp.file("d.h5");
    {
        std::mt19937 gen(4);
        std::uniform_real_distribution<float> u(-1, 1);
        array_t<float> x = array_t<float>::from_shape({ 12, 5 });
        array_t<std::int32_t> y = array_t<std::int32_t>::from_shape({ 12 });
        for (auto& v : x)
            v = u(gen);
        for (std::size_t i = 0; i < 12; ++i)
            y(i) = static_cast<std::int32_t>(i % 3);
        io::H5File f = io::H5File::create(data);
        f.root().write_dataset<float>("x", x);
        f.root().write_dataset<double>("y", array_t<double>(y)); // labels of another type than the model's
        f.close();
    }
    Run ok = run(tmp, { "gradcheck", model, "--data", data, "--samples", "6" });
    INFO(ok.out << ok.err);
    CHECK(ok.status == 0);
    CHECK(ok.out.find("gradcheck passed: 6 weights") != std::string::npos);
    CHECK(ok.out.find("ok   dense/kernel (5, 6)") != std::string::npos);
    CHECK(ok.out.find("ok   batch_normalization/gamma (6,)") != std::string::npos);
    CHECK(ok.out.find("FAIL") == std::string::npos);

    // A huge step makes the central differences wrong: the check must fail, status 1.
    Run bad = run(tmp, { "gradcheck", model, "--data", data, "--samples", "6", "--eps", "0.5" });
    INFO(bad.out << bad.err);
    CHECK(bad.status == 1);
    CHECK(bad.out.find("FAIL") != std::string::npos);
    check_one_error_line(bad);
    CHECK(bad.err.find("gradcheck failed") != std::string::npos);
}
