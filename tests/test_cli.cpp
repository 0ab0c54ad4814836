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
#include "layers/merging/merge.hpp"
#include "saving/keras_h5.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <map>
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

const std::string ad01_path = "mlcommons-tiny/benchmark/training/anomaly_detection/trained_models/ad01.h5";

/// Autoencoder data for ad01 (640 inputs, targets = inputs): `rows` rows in [0, 1) from `seed`.
std::string ad01_data_file(const TempDir& tmp, std::size_t rows, unsigned seed = 21)
{
    const std::string path = tmp.file("ad01_data_" + std::to_string(rows) + ".h5");
    std::mt19937 gen(seed);
    std::uniform_real_distribution<float> u(0, 1);
    array_t<float> x = array_t<float>::from_shape({ rows, 640 });
    for (auto& v : x)
        v = u(gen);
    io::H5File f = io::H5File::create(path);
    f.root().write_dataset<float>("x", x);
    f.root().write_dataset<float>("y", x);
    f.close();
    return path;
}

double max_weights_diff(const std::vector<array_t<float>>& a, const std::vector<array_t<float>>& b)
{
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        d = std::max(d, max_abs_diff(a[i], b[i]));
    return d;
}

/// Checks that every BatchNormalization of `before` has other moving statistics in `after` (fit
/// trains them: training mode, momentum below 1); returns how many BN layers there are.
int count_moved_bn_statistics(const Model<float>& before, const Model<float>& after)
{
    int bn_layers = 0;
    for (const auto& l : before.layers()) {
        if (l->class_name() != "BatchNormalization")
            continue;
        ++bn_layers;
        INFO(l->name());
        const auto b = l->get_weights(), a = after.get_layer(l->name())->get_weights();
        CHECK(max_abs_diff(b[2], a[2]) > 0); // moving_mean
        CHECK(max_abs_diff(b[3], a[3]) > 0); // moving_variance
    }
    return bn_layers;
}

/// The weights of a model file, as loaded.
std::vector<array_t<float>> weights_of(const std::string& path) { return load_model<float>(path, false)->get_weights(); }

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
}

TEST_CASE("cli: real files with pooling load; usage errors name the option" * xtape::testing::real_files())
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_errors_real");
    // issue_9560 (Conv1D, MaxPooling1D) was the refused example before those layers existed.
    Run conv = run(tmp, { "summary", keras_file("dl4j-test-resources/weights/issue_9560.h5") });
    CHECK(conv.status == 0);
    CHECK(conv.out.find("MaxPooling1D") != std::string::npos);
    Run no_output = run(tmp, { "predict", keras_file("dl4j-test-resources/examples/activations/ReLU_0_model.h5"),
                               "--input", "x.h5" });
    CHECK(no_output.status == 2);
    CHECK(no_output.err.find("--output") != std::string::npos);
}

TEST_CASE("cli: summary of ad01.h5" * xtape::testing::real_files())
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

TEST_CASE("cli: predict reproduces Keras's stored predictions" * xtape::testing::real_files())
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

TEST_CASE("cli: evaluate prints one JSON object" * xtape::testing::real_files())
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

TEST_CASE("cli: fit --no-shuffle writes a model that loads and equals the same training in-process" * xtape::testing::real_files())
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

TEST_CASE("cli: fit ad01.h5 compiles from its training_config, trains BN statistics, reproduces with --no-shuffle" * xtape::testing::real_files())
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_fit_ad01");
    const std::string model = keras_file(ad01_path);
    const std::string data = ad01_data_file(tmp, 48);
    auto original = load_model<float>(model);
    REQUIRE(original->compiled());
    const std::int64_t iterations = original->optimizer()->iterations();
    REQUIRE(original->optimizer()->variables().size() == 77);

    // No --optimizer/--loss: Adam and mse from the file, with its optimizer state.
    const std::string out = tmp.file("ad01_fit.h5"), again = tmp.file("ad01_fit_again.h5");
    const std::vector<std::string> args{ "fit", model, "--data", data, "--batch-size", "16", "--epochs", "1",
                                         "--no-shuffle", "--seed", "5" };
    auto with_output = [&](const std::string& o) {
        std::vector<std::string> v = args;
        v.insert(v.end(), { "--output", o });
        return v;
    };
    Run r = run(tmp, with_output(out));
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("3/3") != std::string::npos); // the progress bar: 48 rows / 16
    CHECK(r.out.find("loss") != std::string::npos);

    auto trained = load_model<float>(out);
    REQUIRE(trained->compiled());
    CHECK(trained->optimizer()->class_name() == "Adam");
    CHECK(trained->loss()->class_name() == "MeanSquaredError");
    CHECK(trained->optimizer()->iterations() == iterations + 3); // continued, not restarted
    CHECK(trained->optimizer()->variables().size() == 77);
    CHECK(trained->optimizer()->get_config() == original->optimizer()->get_config());

    CHECK(count_moved_bn_statistics(*original, *trained) == 9);
    CHECK(max_abs_diff(original->get_weights()[0], trained->get_weights()[0]) > 0);

    // The same run gives the same weights and optimizer state.
    Run r2 = run(tmp, with_output(again));
    INFO(r2.err);
    REQUIRE(r2.status == 0);
    CHECK(max_weights_diff(weights_of(out), weights_of(again)) == 0.0);
    auto trained2 = load_model<float>(again);
    const auto s1 = trained->optimizer()->variables(), s2 = trained2->optimizer()->variables();
    REQUIRE(s1.size() == s2.size());
    double state_diff = 0;
    for (std::size_t i = 0; i < s1.size(); ++i)
        state_diff = std::max(state_diff, max_abs_diff(s1[i].value(), s2[i].value()));
    CHECK(state_diff == 0.0);

    // The written file predicts as the trained model would: finite and loadable in float64 too.
    auto back64 = load_model<double>(out);
    io::H5File df = io::H5File::open_read(data);
    PredictOptions<double> po;
    po.verbose = 0;
    const array_t<double> y = back64->predict(df.root().read_dataset<double>("x"), po);
    CHECK(std::all_of(y.begin(), y.end(), [](double v) { return std::isfinite(v); }));
}

TEST_CASE("cli: fit continues issue_9560, pretrainedResnet and str_ww_ref_model from their training_config and "
          "optimizer state" * xtape::testing::real_files())
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_fit_trained");
    struct Trained {
        std::string rel, optimizer, loss;
        std::vector<std::string> logged; // metrics fit must print, as the file compiled them
        int bn_layers;
    };
    const std::string tiny = "mlcommons-tiny/benchmark/training/";
    for (const Trained& c :
         { Trained{ "dl4j-test-resources/weights/issue_9560.h5", "Adam", "CategoricalCrossentropy", { "accuracy" }, 2 },
           Trained{ tiny + "image_classification/trained_models/pretrainedResnet.h5", "Adam", "CategoricalCrossentropy",
                    { "accuracy" }, 7 },
           // tf.keras 2.14: CategoricalAccuracy, Precision and Recall at threshold 0.95 for class 0.
           Trained{ tiny + "streaming_wakeword/trained_models/str_ww_ref_model.h5", "Adam", "CategoricalCrossentropy",
                    { "categorical_accuracy", "precision", "recall" }, 4 } }) {
        INFO(c.rel);
        const std::string model = keras_file(c.rel);
        auto original = load_model<float>(model);
        REQUIRE(original->compiled()); // every metric of the training_config is known
        const std::int64_t iterations = original->optimizer()->iterations();
        CHECK(iterations > 0); // trained: the state is the file's, not a fresh optimizer's
        const std::size_t state_size = original->optimizer()->variables().size();

        // 16 random samples of the model's input shape, one-hot labels: two batches of 8.
        const dims_t in = original->build_input_shape();
        shape_t xs{ 16 };
        for (std::size_t d = 1; d < in.size(); ++d)
            xs.push_back(static_cast<std::size_t>(in[d]));
        const std::size_t classes = original->predict(array_t<float>(xt::zeros<float>(xs))).shape().back();
        std::mt19937 gen(3);
        std::normal_distribution<float> normal(0.f, 1.f);
        array_t<float> x = array_t<float>::from_shape(xs), y = xt::zeros<float>({ std::size_t(16), classes });
        for (auto& v : x)
            v = normal(gen);
        for (std::size_t i = 0; i < 16; ++i)
            y(i, i % classes) = 1;
        const std::string data = tmp.file("data.h5"), out = tmp.file("out.h5");
        {
            io::H5File f = io::H5File::create(data);
            f.root().write_dataset<float>("x", x);
            f.root().write_dataset<float>("y", y);
            f.close();
        }
        Run r = run(tmp, { "fit", model, "--data", data, "--output", out, "--batch-size", "8", "--no-shuffle", "--seed",
                           "7" });
        INFO(r.out << r.err);
        REQUIRE(r.status == 0);
        CHECK(r.err.find("uncompiled") == std::string::npos);
        CHECK(r.out.find("2/2") != std::string::npos);
        for (const auto& name : c.logged)
            CHECK(r.out.find(name + ": ") != std::string::npos);

        auto trained = load_model<float>(out);
        REQUIRE(trained->compiled());
        CHECK(trained->optimizer()->class_name() == c.optimizer);
        CHECK(trained->loss()->class_name() == c.loss);
        CHECK(trained->optimizer()->iterations() == iterations + 2); // continued, not restarted
        CHECK(trained->optimizer()->variables().size() == state_size);
        CHECK(trained->optimizer()->get_config() == original->optimizer()->get_config());
        const std::string saved_metrics = training_config_of(*trained)["metrics"].dump(); // written back
        for (const auto& name : c.logged)
            CHECK(saved_metrics.find('"' + name + '"') != std::string::npos);
        CHECK(count_moved_bn_statistics(*original, *trained) == c.bn_layers);
        CHECK(max_weights_diff(weights_of(model), weights_of(out)) > 0);
    }
}

TEST_CASE("cli: fit with shuffling is reproducible for a fixed --seed" * xtape::testing::real_files())
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_fit_seed");
    const std::string model = keras_file(ad01_path);
    const std::string data = ad01_data_file(tmp, 40);
    auto fit = [&](const std::string& seed, const std::string& out) {
        Run r = run(tmp, { "fit", model, "--data", data, "--output", out, "--batch-size", "8", "--seed", seed });
        INFO(r.err);
        CHECK(r.status == 0);
        return weights_of(out);
    };
    const auto a = fit("3", tmp.file("a.h5")), b = fit("3", tmp.file("b.h5")), c = fit("4", tmp.file("c.h5"));
    CHECK(max_weights_diff(a, b) == 0.0);
    CHECK(max_weights_diff(a, c) > 0); // another seed, another order of batches
}

TEST_CASE("cli: gradcheck on real files checks a seeded subset of each weight" * xtape::testing::real_files())
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_gradcheck_real");
    // ad01: Functional, 9 Dense/BN/relu blocks (38 trainable weights), Adam/mse from the file.
    const std::string data = ad01_data_file(tmp, 6);
    const std::string model = keras_file(ad01_path);
    Run r = run(tmp, { "gradcheck", model, "--data", data, "--samples", "3", "--max-elements", "8" });
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("gradcheck passed: 38 weights") != std::string::npos);
    CHECK(r.out.find("mean_squared_error") != std::string::npos);
    CHECK(r.out.find("ok   dense/kernel (640, 128)") != std::string::npos);
    CHECK(r.out.find("0/8 failed (8 of 81920 elements sampled)") != std::string::npos);
    CHECK(r.out.find("ok   batch_normalization_8/beta (128,)") != std::string::npos);
    CHECK(r.out.find("FAIL") == std::string::npos);
    // One line per weight, each with its worst relative error.
    std::size_t lines = 0;
    for (std::size_t p = r.out.find("max rel error"); p != std::string::npos; p = r.out.find("max rel error", p + 1))
        ++lines;
    CHECK(lines == 38);
    // Another seed picks other elements (the same seed the same ones: test_gradcheck).
    Run other = run(tmp, { "gradcheck", model, "--data", data, "--samples", "3", "--max-elements", "8", "--seed", "9" });
    CHECK(other.status == 0);
    CHECK(other.out != r.out);

    // mnist_mlp (Keras 2.0.6, with Dropout): softmax + categorical crossentropy given by --loss.
    const std::string mnist_model = mnist_model_file(tmp), mnist_data = mnist_data_file(tmp);
    Run m = run(tmp, { "gradcheck", mnist_model, "--data", mnist_data, "--y", "labels", "--loss",
                       "categorical_crossentropy", "--samples", "3", "--max-elements", "10" });
    INFO(m.out << m.err);
    CHECK(m.status == 0);
    CHECK(m.out.find("gradcheck passed: 6 weights") != std::string::npos);
    CHECK(m.out.find("ok   dense_1/kernel (784, 512)") != std::string::npos);
    CHECK(m.out.find("ok   dense_3/bias (10,): max rel error") != std::string::npos);
    CHECK(m.out.find("0/10 failed (10 of 401408 elements sampled)") != std::string::npos);
    // A weight no larger than --max-elements is checked whole (dense_3/bias has 10 elements).
    const auto bias_line = m.out.find("ok   dense_3/bias (10,)");
    REQUIRE(bias_line != std::string::npos);
    const std::string line = m.out.substr(bias_line, m.out.find('\n', bias_line) - bias_line);
    CHECK(line.find("0/10 failed") != std::string::npos);
    CHECK(line.find("sampled") == std::string::npos);
}

TEST_CASE("cli: data with no samples is a one-line error for gradcheck, fit, evaluate and predict")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_empty");
    reset_layer_names();
    Sequential<float> m("tiny");
    m.add(std::make_shared<InputLayer<float>>(dims_t{ 3 }));
    m.add(std::make_shared<Dense<float>>(2));
    m.compile("sgd", "mse");
    const std::string model = tmp.file("tiny.h5");
    save_model(m, model);
    const std::string data = tmp.file("empty.h5");
    {
        io::H5File f = io::H5File::create(data);
        f.root().write_dataset<float>("x", array_t<float>::from_shape({ 0, 3 }));
        f.root().write_dataset<float>("y", array_t<float>::from_shape({ 0, 2 }));
        f.close();
    }
    for (const std::vector<std::string>& args :
         { std::vector<std::string>{ "gradcheck", model, "--data", data },
           std::vector<std::string>{ "fit", model, "--data", data, "--output", tmp.file("out.h5") },
           std::vector<std::string>{ "evaluate", model, "--data", data },
           std::vector<std::string>{ "predict", model, "--input", data, "--output", tmp.file("out.h5") } }) {
        Run r = run(tmp, args);
        INFO(args[0] << ": " << r.out << r.err);
        CHECK(r.status == 1);
        check_one_error_line(r);
        CHECK(r.err.find("empty.h5") != std::string::npos);
        CHECK(r.err.find("(0, 3)") != std::string::npos);
        CHECK(r.err.find("no samples") != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(tmp.file("out.h5")));
}

namespace {

/// A small compiled model file (Adam, lr 0.001) and its data: x (20, 4) with targets y (20, 2).
struct SmallFiles {
    std::string model, data;
    array_t<float> x, y;
};

SmallFiles small_files(const TempDir& tmp)
{
    SmallFiles s;
    reset_layer_names();
    set_random_seed(8);
    Sequential<float> m("small");
    m.add(std::make_shared<InputLayer<float>>(dims_t{ 4 }));
    m.add(std::make_shared<Dense<float>>(5, "tanh"));
    m.add(std::make_shared<Dense<float>>(2));
    m.compile("adam", "mse", { "mae" });
    s.model = tmp.file("small.h5");
    save_model(m, s.model);
    std::mt19937 gen(9);
    std::uniform_real_distribution<float> u(-1, 1);
    s.x = array_t<float>::from_shape({ 20, 4 });
    s.y = array_t<float>::from_shape({ 20, 2 });
    for (auto& v : s.x)
        v = u(gen);
    for (std::size_t i = 0; i < 20; ++i) {
        s.y(i, 0) = s.x(i, 0) - s.x(i, 1);
        s.y(i, 1) = 0.5f * s.x(i, 2) * s.x(i, 3);
    }
    s.data = tmp.file("small_data.h5");
    io::H5File f = io::H5File::create(s.data);
    f.root().write_dataset<float>("features", s.x);
    f.root().write_dataset<float>("targets", s.y);
    f.close();
    return s;
}

} // namespace

TEST_CASE("cli: predict takes integer inputs from .h5 and .npy")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_predict_int");
    const SmallFiles s = small_files(tmp);
    array_t<std::int32_t> xi = array_t<std::int32_t>::from_shape({ 6, 4 });
    for (std::size_t i = 0; i < xi.size(); ++i)
        xi.data()[i] = static_cast<std::int32_t>(i % 7) - 3;
    const std::string h5_in = tmp.file("ints.h5"), npy_in = tmp.file("ints.npy");
    {
        io::H5File f = io::H5File::create(h5_in);
        f.root().write_dataset<std::int32_t>("x", xi);
        f.root().write_dataset<std::uint8_t>("bytes", array_t<std::uint8_t>(xi + 3));
        f.close();
    }
    io::write_npy<std::int64_t>(npy_in, array_t<std::int64_t>(xi));
    auto model = load_model<float>(s.model);
    PredictOptions<float> po;
    po.verbose = 0;
    const array_t<float> expected = model->predict(array_t<float>(xi), po);
    const array_t<float> expected_bytes = model->predict(array_t<float>(xi + 3), po);

    Run a = run(tmp, { "predict", s.model, "--input", h5_in, "--output", tmp.file("a.h5") });
    INFO(a.err);
    REQUIRE(a.status == 0);
    io::H5File af = io::H5File::open_read(tmp.file("a.h5"));
    CHECK(af.root().dataset_dtype("y") == "float32");
    CHECK(max_abs_diff(af.root().read_dataset<float>("y"), expected) == 0.0);
    Run b = run(tmp, { "predict", s.model, "--input", h5_in, "--dataset", "bytes", "--output", tmp.file("b.h5") });
    REQUIRE(b.status == 0);
    io::H5File bf = io::H5File::open_read(tmp.file("b.h5"));
    CHECK(max_abs_diff(bf.root().read_dataset<float>("y"), expected_bytes) == 0.0);
    Run c = run(tmp, { "predict", s.model, "--input", npy_in, "--output", tmp.file("c.npy"), "--batch-size", "4" });
    INFO(c.err);
    REQUIRE(c.status == 0);
    CHECK(max_abs_diff(io::read_npy<float>(tmp.file("c.npy")), expected) == 0.0);
}

TEST_CASE("cli: evaluate with --x, --y and --batch-size")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_evaluate_opts");
    const SmallFiles s = small_files(tmp);
    auto model = load_model<float>(s.model);
    EvaluateOptions<float> eo;
    eo.verbose = 0;
    eo.batch_size = 20;
    const Logs ref = model->evaluate(s.x, s.y, eo);
    for (const char* batch : { "3", "20", "64" }) {
        INFO("batch size " << batch);
        Run r = run(tmp, { "evaluate", s.model, "--data", s.data, "--x", "features", "--y", "targets", "--batch-size",
                           batch });
        INFO(r.err);
        REQUIRE(r.status == 0);
        const json j = json::parse(r.out);
        CHECK(j.size() == 2);
        // The batch losses are averaged weighted by batch size: the same figure for any batch size.
        CHECK(j.at("loss").get<double>() == doctest::Approx(ref.at("loss")).epsilon(1e-6));
        CHECK(j.at("mae").get<double>() == doctest::Approx(ref.at("mae")).epsilon(1e-6));
    }
    Run bad = run(tmp, { "evaluate", s.model, "--data", s.data, "--x", "features", "--y", "targets", "--batch-size", "0" });
    CHECK(bad.status == 2);
    check_one_error_line(bad);
    CHECK(bad.err.find("--batch-size") != std::string::npos);
    Run no_x = run(tmp, { "evaluate", s.model, "--data", s.data, "--y", "targets" });
    CHECK(no_x.status == 1);
    check_one_error_line(no_x);
    CHECK(no_x.err.find("no dataset 'x'") != std::string::npos);
    CHECK(no_x.err.find("features") != std::string::npos);
}

TEST_CASE("cli: fit --x, every --optimizer, and --learning-rate alone keeps the file's optimizer")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_fit_opts");
    const SmallFiles s = small_files(tmp);
    const std::vector<std::string> base{ "fit", s.model, "--data", s.data, "--x", "features", "--y", "targets",
                                         "--batch-size", "5", "--no-shuffle" };
    auto fit = [&](std::vector<std::string> extra, const std::string& out) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        args.insert(args.end(), { "--output", out });
        Run r = run(tmp, args);
        INFO(r.out << r.err);
        REQUIRE(r.status == 0);
        return load_model<float>(out);
    };
    const std::map<std::string, std::string> classes{ { "sgd", "SGD" },         { "adam", "Adam" },
                                                      { "rmsprop", "RMSprop" }, { "adagrad", "Adagrad" },
                                                      { "adamw", "AdamW" },     { "nadam", "Nadam" } };
    auto original = load_model<float>(s.model);
    for (const auto& entry : classes) {
        // Not a structured binding: clang 14 (the sanitizer build) cannot capture one in INFO's lambda.
        const std::string& flag = entry.first;
        const std::string& cls = entry.second;
        INFO(flag);
        auto m = fit({ "--optimizer", flag, "--learning-rate", "0.02" }, tmp.file(flag + ".h5"));
        CHECK(m->optimizer()->class_name() == cls);
        CHECK(m->optimizer()->get_config().at("learning_rate").get<double>() == doctest::Approx(0.02));
        CHECK(m->optimizer()->iterations() == 4); // a fresh optimizer, 20 rows / 5
        CHECK(m->loss()->class_name() == "MeanSquaredError"); // the file's loss is kept
        CHECK(max_abs_diff(m->get_weights()[0], original->get_weights()[0]) > 0);
    }
    // The in-process equivalent of "--optimizer rmsprop --learning-rate 0.02".
    {
        auto ref = load_model<float>(s.model);
        auto opt = get_optimizer<float>(json("rmsprop"));
        opt->set_learning_rate(0.02);
        ref->compile(OptimizerSpec<float>(opt), "mse", { "mae" });
        FitOptions<float> fo;
        fo.batch_size = 5;
        fo.shuffle = false;
        fo.verbose = 0;
        ref->fit(s.x, s.y, fo);
        CHECK(max_weights_diff(ref->get_weights(), weights_of(tmp.file("rmsprop.h5"))) == 0.0);
    }
    Run unknown = run(tmp, { "fit", s.model, "--data", s.data, "--x", "features", "--y", "targets", "--optimizer",
                             "lbfgs", "--output", tmp.file("x.h5") });
    CHECK(unknown.status == 1);
    check_one_error_line(unknown);
    CHECK(unknown.err.find("lbfgs") != std::string::npos);

    // --learning-rate alone: the file's Adam (trained once already, so with state) at a new rate.
    auto once = fit({}, tmp.file("once.h5"));
    CHECK(once->optimizer()->class_name() == "Adam");
    CHECK(once->optimizer()->get_config().at("learning_rate").get<double>() == doctest::Approx(0.001));
    CHECK(once->optimizer()->iterations() == 4);
    std::vector<std::string> args{ "fit", tmp.file("once.h5"), "--data", s.data, "--x", "features", "--y", "targets",
                                   "--batch-size", "5", "--no-shuffle", "--learning-rate", "0.05", "--output",
                                   tmp.file("cont.h5") };
    Run r = run(tmp, args);
    INFO(r.err);
    REQUIRE(r.status == 0);
    auto cont = load_model<float>(tmp.file("cont.h5"));
    CHECK(cont->optimizer()->class_name() == "Adam");
    CHECK(cont->optimizer()->get_config().at("learning_rate").get<double>() == doctest::Approx(0.05));
    CHECK(cont->optimizer()->iterations() == 8); // the saved state continued: 4 + 4
    CHECK(cont->metric_specs().size() == 1);     // the file's metrics too
}

TEST_CASE("cli: gradcheck refuses a non-finite loss with one line")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_gradcheck_nan");
    const SmallFiles s = small_files(tmp);
    auto m = load_model<float>(s.model);
    auto w = m->get_layer("dense")->get_weights();
    w[0](0, 0) = std::numeric_limits<float>::quiet_NaN();
    m->get_layer("dense")->set_weights(w);
    const std::string nan_model = tmp.file("nan.h5");
    save_model(*m, nan_model);
    Run r = run(tmp, { "gradcheck", nan_model, "--data", s.data, "--x", "features", "--y", "targets" });
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    check_one_error_line(r);
    CHECK(r.err.find("nan.h5") != std::string::npos);
    CHECK(r.err.find("non-finite loss") != std::string::npos);
}

TEST_CASE("cli: fold folds str_ww_ref_model's BatchNormalization layers and writes a loadable file" *
          xtape::testing::real_files())
{
    if (!have_cli() || !have_keras_models())
        return;
    TempDir tmp("cli_fold");
    const std::string in =
        keras_file("mlcommons-tiny/benchmark/training/streaming_wakeword/trained_models/str_ww_ref_model.h5");
    Run r = run(tmp, { "fold", in, "--output", tmp.file("folded.h5"), "--samples", "16" });
    INFO(r.err);
    REQUIRE(r.status == 0);
    const json j = json::parse(r.out);
    CHECK(j["folded"].size() == 4);
    CHECK(j["max_abs_diff"].get<double>() < 1e-5);
    CHECK(j.contains("predict_ms_before"));
    Run s = run(tmp, { "summary", tmp.file("folded.h5") });
    CHECK(s.status == 0);
    CHECK(s.out.find("batch_normalization") == std::string::npos);
    Run missing = run(tmp, { "fold", in });
    CHECK(missing.status == 2);
    CHECK(missing.err.find("--output") != std::string::npos);
}

namespace {

/// A functional model with inputs "left" (3) and "right" (2) and outputs "score" (sigmoid,
/// binary_crossentropy, accuracy) and "value" (2, mse, mae), compiled with Adam, and its data:
/// x_0, x_1, y_0, y_1 (the CLI's default names) and the same inputs as "l", "r".
struct TwoTowerFiles {
    std::string model, data;
    std::vector<array_t<float>> x, y;
};

TwoTowerFiles two_tower_files(const TempDir& tmp)
{
    TwoTowerFiles s;
    reset_layer_names();
    set_random_seed(14);
    auto left = Input<float>({ 3 }, "left"), right = Input<float>({ 2 }, "right");
    auto enc = std::make_shared<Dense<float>>(4, "tanh", true, "enc");
    auto hl = (*enc)((*std::make_shared<Dense<float>>(4, "linear", true, "pad_left"))(left));
    auto hr = (*enc)((*std::make_shared<Dense<float>>(4, "linear", true, "pad_right"))(right));
    auto cat = (*std::make_shared<Concatenate<float>>(-1, "cat"))({ hl, hr });
    auto score = (*std::make_shared<Dense<float>>(1, "sigmoid", true, "score"))(cat);
    auto value = (*std::make_shared<Dense<float>>(2, "linear", true, "value"))(hr);
    Model<float> m(std::vector<KerasTensor<float>>{ left, right }, std::vector<KerasTensor<float>>{ score, value },
                   "two_tower");
    CompileOptions<float> co;
    co.loss = { "binary_crossentropy", "mse" };
    co.loss_weights = { 1.0, 0.5 };
    co.metrics = { { "accuracy" }, { "mae" } };
    m.compile("adam", co);
    s.model = tmp.file("two_tower.h5");
    save_model(m, s.model);
    std::mt19937 gen(15);
    std::uniform_real_distribution<float> u(-1, 1);
    s.x = { array_t<float>::from_shape({ 12, 3 }), array_t<float>::from_shape({ 12, 2 }) };
    s.y = { array_t<float>::from_shape({ 12, 1 }), array_t<float>::from_shape({ 12, 2 }) };
    for (auto& a : s.x)
        for (auto& v : a)
            v = u(gen);
    for (std::size_t i = 0; i < 12; ++i) {
        s.y[0](i, 0) = s.x[0](i, 0) + s.x[1](i, 1) > 0 ? 1.f : 0.f;
        s.y[1](i, 0) = s.x[1](i, 0);
        s.y[1](i, 1) = s.x[0](i, 2) * s.x[1](i, 1);
    }
    s.data = tmp.file("two_tower_data.h5");
    io::H5File f = io::H5File::create(s.data);
    for (std::size_t i = 0; i < 2; ++i) {
        f.root().write_dataset<float>("x_" + std::to_string(i), s.x[i]);
        f.root().write_dataset<float>("y_" + std::to_string(i), s.y[i]);
    }
    f.root().write_dataset<float>("l", s.x[0]);
    f.root().write_dataset<float>("r", s.x[1]);
    f.close();
    return s;
}

} // namespace

TEST_CASE("cli: predict, evaluate, fit and gradcheck on a functional file with two inputs and two outputs")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_two_tower");
    const TwoTowerFiles s = two_tower_files(tmp);
    auto model = load_model<float>(s.model);
    PredictOptions<float> po;
    po.verbose = 0;
    const std::vector<array_t<float>> expected = model->predict_list(s.x, po);

    // One file for both inputs (a --dataset per input), or a file per input; outputs y_0, y_1.
    const std::string right_npy = tmp.file("right.npy");
    io::write_npy<float>(right_npy, s.x[1]);
    for (const auto& args : std::vector<std::vector<std::string>>{
             { "--input", s.data, "--dataset", "l", "--dataset", "r" },
             { "--input", s.data, "--input", right_npy, "--dataset", "x_0", "--dataset", "ignored_for_npy" },
             { "--input", s.data } }) {
        std::vector<std::string> cmd{ "predict", s.model, "--output", tmp.file("p.h5") };
        cmd.insert(cmd.end(), args.begin(), args.end());
        Run r = run(tmp, cmd);
        INFO(r.err);
        REQUIRE(r.status == 0);
        io::H5File f = io::H5File::open_read(tmp.file("p.h5"));
        CHECK(max_abs_diff(f.root().read_dataset<float>("y_0"), expected[0]) == 0.0);
        CHECK(max_abs_diff(f.root().read_dataset<float>("y_1"), expected[1]) == 0.0);
    }
    Run named = run(tmp, { "predict", s.model, "--input", s.data, "--output", tmp.file("n.h5"), "--output-names" });
    REQUIRE(named.status == 0);
    {
        io::H5File f = io::H5File::open_read(tmp.file("n.h5"));
        CHECK(max_abs_diff(f.root().read_dataset<float>("score"), expected[0]) == 0.0);
        CHECK(max_abs_diff(f.root().read_dataset<float>("value"), expected[1]) == 0.0);
    }
    Run one = run(tmp, { "predict", s.model, "--input", s.data, "--dataset", "l", "--output", tmp.file("x.h5") });
    CHECK(one.status == 2);
    check_one_error_line(one);
    CHECK(one.err.find("the model has 2 inputs, so --dataset is needed once per input; got it 1 time(s)") !=
          std::string::npos);
    Run npy = run(tmp, { "predict", s.model, "--input", s.data, "--output", tmp.file("y.npy") });
    CHECK(npy.status == 1);
    check_one_error_line(npy);
    CHECK(npy.err.find("2 outputs and a .npy file holds one array") != std::string::npos);

    // evaluate: the file's per-output losses, weights and metrics, under Keras's names.
    EvaluateOptions<float> eo;
    eo.verbose = 0;
    const Logs ref = model->evaluate(s.x, s.y, eo);
    Run ev = run(tmp, { "evaluate", s.model, "--data", s.data });
    INFO(ev.err);
    REQUIRE(ev.status == 0);
    const json j = json::parse(ev.out);
    CHECK(j.size() == 5);
    for (const char* key : { "loss", "score_loss", "value_loss", "score_accuracy", "value_mae" })
        CHECK(j.at(key).get<double>() == doctest::Approx(ref.at(key)).epsilon(1e-6));

    // fit --no-shuffle equals the same training in-process, and keeps the training_config.
    Run fit = run(tmp, { "fit", s.model, "--data", s.data, "--x", "l", "--x", "r", "--batch-size", "5", "--no-shuffle",
                         "--epochs", "2", "--output", tmp.file("trained.h5") });
    INFO(fit.err);
    REQUIRE(fit.status == 0);
    FitOptions<float> fo;
    fo.batch_size = 5;
    fo.epochs = 2;
    fo.shuffle = false;
    fo.verbose = 0;
    model->fit(s.x, s.y, fo);
    auto trained = load_model<float>(tmp.file("trained.h5"));
    CHECK(max_weights_diff(trained->get_weights(), model->get_weights()) == 0.0);
    CHECK(trained->compile_options().loss.size() == 2);
    CHECK(trained->compile_options().loss_weights == std::vector<double>{ 1.0, 0.5 });

    // gradcheck through the graph (the shared encoder collects two gradients).
    Run gc = run(tmp, { "gradcheck", s.model, "--data", s.data, "--max-elements", "0" });
    INFO(gc.out << gc.err);
    CHECK(gc.status == 0);
    CHECK(gc.out.find("gradcheck passed: 10 weights") != std::string::npos);
    CHECK(gc.out.find("enc/kernel") != std::string::npos);
}

TEST_CASE("cli: summary, predict, evaluate, fit and gradcheck take .keras archives; fit --output OUT.keras writes one")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_keras3");
    const SmallFiles s = small_files(tmp);
    const std::string model = tmp.file("small.keras");
    save_model(*load_model<float>(s.model), model);
    Run r = run(tmp, { "summary", model });
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("Total params: 37") != std::string::npos);

    r = run(tmp, { "predict", model, "--input", s.data, "--dataset", "features", "--output", tmp.file("pred.h5") });
    REQUIRE(r.status == 0);
    PredictOptions<float> po;
    po.verbose = 0;
    const array_t<float> want = load_model<float>(s.model)->predict(s.x, po);
    CHECK(max_abs_diff(io::H5File::open_read(tmp.file("pred.h5")).root().read_dataset<float>("y"), want) == 0.0);

    r = run(tmp, { "evaluate", model, "--data", s.data, "--x", "features", "--y", "targets" });
    REQUIRE(r.status == 0);
    CHECK(json::parse(r.out).contains("loss"));

    const std::string out = tmp.file("trained.keras");
    r = run(tmp, { "fit", model, "--data", s.data, "--x", "features", "--y", "targets", "--output", out, "--epochs", "2",
                   "--batch-size", "5", "--no-shuffle" });
    REQUIRE(r.status == 0);
    {
        std::ifstream in(out, std::ios::binary);
        char magic[4] = {};
        in.read(magic, 4);
        CHECK(std::string(magic, 4) == std::string("PK\x03\x04", 4));
    }
    auto trained = load_model<float>(out);
    REQUIRE(trained->compiled());
    CHECK(trained->optimizer()->class_name() == "Adam");
    CHECK(trained->optimizer()->iterations() == 8);
    // A second fit continues from the archive's optimizer state.
    const std::string out2 = tmp.file("trained2.keras");
    r = run(tmp, { "fit", out, "--data", s.data, "--x", "features", "--y", "targets", "--output", out2, "--batch-size",
                   "5", "--no-shuffle" });
    REQUIRE(r.status == 0);
    CHECK(load_model<float>(out2)->optimizer()->iterations() == 12);

    r = run(tmp, { "gradcheck", model, "--data", s.data, "--x", "features", "--y", "targets" });
    CHECK(r.status == 0);
    // A truncated archive: one error line naming the file.
    {
        std::ifstream in(model, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::ofstream o(tmp.file("cut.keras"), std::ios::binary);
        o.write(bytes.data(), static_cast<std::streamsize>(bytes.size() / 2));
    }
    r = run(tmp, { "summary", tmp.file("cut.keras") });
    CHECK(r.status == 1);
    check_one_error_line(r);
    CHECK(r.err.find("cut.keras") != std::string::npos);
}

TEST_CASE("cli: --version, numbers checked by type and range, typo suggestions")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_parse");
    Run v = run(tmp, { "--version" });
    CHECK(v.status == 0);
    for (const char* part : { "xtape 0.2.0", "HDF5 1.", "OpenBLAS", "xtensor 0.", "CLI11 2." })
        CHECK_MESSAGE(v.out.find(part) != std::string::npos, part << " in " << v.out);
    for (const char* c : { "fold", "plot" }) {
        Run r = run(tmp, { c, "--help" });
        CHECK(r.status == 0);
        CHECK(r.out.rfind(std::string("usage: xtape ") + c, 0) == 0);
        CHECK(r.out.find("--output") != std::string::npos);
    }
    const std::string m = tmp.file("m.h5"), d = tmp.file("d.h5"), o = tmp.file("o.h5");
    struct Bad {
        std::vector<std::string> args;
        std::string flag, message;
    };
    for (const Bad& b : {
           Bad{ { "fit", m, "--data", d, "--output", o, "--epochs", "-1" }, "--epochs", "expects an integer >= 1" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--epochs", "1.5" }, "--epochs", "got '1.5'" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--batch-size", "0" }, "--batch-size", "integer >= 1" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--learning-rate", "abc" }, "--learning-rate",
                "expects a number > 0, got 'abc'" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--learning-rate", "nan" }, "--learning-rate", "'nan'" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--validation-split", "1" }, "--validation-split",
                "in [0, 1)" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--seed", "99999999999999999999999" }, "--seed", "integer" },
           Bad{ { "gradcheck", m, "--data", d, "--seed", "4294967296" }, "--seed", "<= 4294967295" },
           Bad{ { "gradcheck", m, "--data", d, "--eps", "0" }, "--eps", "> 0" },
           Bad{ { "predict", m, "--input", d, "--output", o, "--batch-size", "x" }, "--batch-size", "got 'x'" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--epoch", "3" }, "--epoch", "did you mean --epochs?" },
           Bad{ { "fit", m, "--data", d, "--output", o, "--learning", "3" }, "--learning",
                "did you mean --learning-rate?" },
           Bad{ { "fti", m }, "fti", "did you mean fit?" },
           Bad{ { "plot", tmp.file("log.csv"), "--output", "c.png", "--size", "10x10" }, "--size", "WIDTHxHEIGHT" },
           Bad{ { "fit", m, "--data", d }, "--output", "required" },
           Bad{ { "summary", m, "extra" }, "summary", "unexpected argument 'extra'" },
         }) {
        Run r = run(tmp, b.args);
        INFO(b.args[0] << " " << b.flag << ": " << r.err);
        CHECK(r.status == 2);
        check_one_error_line(r);
        CHECK(r.err.find(b.flag) != std::string::npos);
        CHECK(r.err.find(b.message) != std::string::npos);
    }
}

TEST_CASE("cli: summary --json lists the layers, shapes and parameter counts")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_summary_json");
    const SmallFiles s = small_files(tmp);
    Run r = run(tmp, { "summary", s.model, "--json" });
    INFO(r.err);
    REQUIRE(r.status == 0);
    const json j = json::parse(r.out);
    CHECK(j.at("name") == "small");
    CHECK(j.at("class_name") == "Sequential");
    REQUIRE(j.at("layers").size() == 2);
    CHECK(j["layers"][0].at("class_name") == "Dense");
    CHECK(j["layers"][0].at("output_shapes") == json::parse("[[null, 5]]"));
    CHECK(j["layers"][0].at("params") == 4 * 5 + 5);
    CHECK(j["layers"][1].at("output_shapes") == json::parse("[[null, 2]]"));
    CHECK(j["layers"][1].at("params") == 5 * 2 + 2);
    CHECK(j.at("trainable_params") == 37);
    CHECK(j.at("non_trainable_params") == 0);
    CHECK(j.at("total_params") == 37 + j.at("optimizer_params").get<int>());

    // A functional model: every layer with its inputs, two outputs.
    const TwoTowerFiles t = two_tower_files(tmp);
    Run f = run(tmp, { "summary", t.model, "--json" });
    INFO(f.err);
    REQUIRE(f.status == 0);
    const json g = json::parse(f.out);
    bool found = false;
    for (const auto& l : g.at("layers"))
        if (l.at("name") == "enc") {
            found = true;
            CHECK(l.at("connected_to") == json::parse(R"(["pad_left[0][0]", "pad_right[0][0]"])"));
            CHECK(l.at("output_shapes") == json::parse("[[null, 4]]"));
        }
    CHECK(found);
}

TEST_CASE("cli: plot draws a CSVLogger file; bad inputs are one-line errors")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_plot");
    const std::string log = tmp.file("train_log.csv");
    {
        std::ofstream out(log, std::ios::binary);
        out << "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.5,1.2,0.55,1.1\r\n1,0.7,0.8,0.68,0.9\r\n";
    }
    Run r = run(tmp, { "plot", log, "--output", tmp.file("c.svg"), "--metrics", "loss", "--size", "500x400" });
    INFO(r.err);
    REQUIRE(r.status == 0);
    const std::string svg = slurp(tmp.file("c.svg"));
    CHECK(svg.find("width=\"500\" height=\"400\"") != std::string::npos);
    CHECK(svg.find("train_log.csv") != std::string::npos);
    CHECK(svg.find("val_loss") != std::string::npos);
    CHECK(svg.find("val_accuracy") == std::string::npos);
    Run png = run(tmp, { "plot", log, "--output", tmp.file("c.png") });
    REQUIRE(png.status == 0);
    CHECK(slurp(tmp.file("c.png")).rfind("\x89PNG", 0) == 0);

    const std::string text_only = tmp.file("text.csv");
    {
        std::ofstream out(text_only);
        out << "epoch,note\n0,warmup\n";
    }
    struct Bad {
        std::vector<std::string> args;
        std::string message;
    };
    for (const Bad& b : { Bad{ { "plot", tmp.file("absent.csv"), "--output", tmp.file("x.png") }, "absent.csv" },
                          Bad{ { "plot", text_only, "--output", tmp.file("x.png") }, "no numeric columns" },
                          Bad{ { "plot", log, "--output", tmp.file("x.png"), "--metrics", "loss,mae" },
                               "no metric 'mae' (the log has: accuracy, loss)" },
                          Bad{ { "plot", log, "--output", tmp.file("x.gif") }, ".png or .svg" } }) {
        Run e = run(tmp, b.args);
        INFO(e.err);
        CHECK(e.status == 1);
        check_one_error_line(e);
        CHECK(e.err.find(b.message) != std::string::npos);
    }
    CHECK_FALSE(std::filesystem::exists(tmp.file("x.png")));
}

TEST_CASE("cli: fit --history writes the History JSON that plot draws")
{
    if (!have_cli())
        return;
    TempDir tmp("cli_history");
    const SmallFiles s = small_files(tmp);
    const std::string history = tmp.file("history.json");
    Run r = run(tmp, { "fit", s.model, "--data", s.data, "--x", "features", "--y", "targets", "--output",
                       tmp.file("out.h5"), "--epochs", "3", "--batch-size", "5", "--validation-split", "0.25",
                       "--history", history });
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    const json j = json::parse(slurp(history));
    CHECK(j.size() == 4); // loss, mae, val_loss, val_mae
    CHECK(j.at("val_mae").size() == 3);
    Run p = run(tmp, { "plot", history, "--output", tmp.file("h.svg") });
    INFO(p.err);
    REQUIRE(p.status == 0);
    const std::string svg = slurp(tmp.file("h.svg"));
    CHECK(svg.find("history.json") != std::string::npos);
    CHECK(svg.find("val_mae") != std::string::npos);
    // A History JSON as Keras users write it, with NaN.
    {
        std::ofstream out(tmp.file("keras.json"));
        out << "{\"loss\": [1.0, 0.5, NaN], \"val_loss\": [1.2, 0.7, 0.6]}";
    }
    Run k = run(tmp, { "plot", tmp.file("keras.json"), "--output", tmp.file("k.png") });
    INFO(k.err);
    CHECK(k.status == 0);
    Run bad = run(tmp, { "plot", tmp.file("keras.json"), "--output", tmp.file("x.png"), "--metrics", "mae" });
    CHECK(bad.status == 1);
    check_one_error_line(bad);
    CHECK(bad.err.find("no metric 'mae'") != std::string::npos);
}
