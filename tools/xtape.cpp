// xtape: the command-line tool for Keras HDF5 models.
//
//   xtape summary MODEL.h5
//   xtape predict MODEL.h5 --input IN.h5 [--dataset x] --output OUT.h5 [--batch-size N] [--output-names]
//   xtape evaluate MODEL.h5 --data D.h5 [--x x] [--y y] [--batch-size N] [--loss NAME]
//   xtape fit MODEL.h5 --data D.h5 --output OUT.h5 [--x x] [--y y] [--epochs 1] [--batch-size 32]
//             [--optimizer NAME] [--learning-rate LR] [--loss NAME] [--no-shuffle]
//             [--validation-split F] [--seed S]
//   xtape gradcheck MODEL.h5 --data D.h5 [--x x] [--y y] [--loss NAME] [--samples N] [--max-elements N]
//   xtape fold MODEL.h5 --output OUT.h5 [--samples N] [--batch-size N]
//
// A model with several inputs or outputs takes --input/--dataset, --x and --y once per input or
// output (Note [Datasets of several inputs and outputs]). Every subcommand has --help. Errors print one line "xtape: error: ..." to stderr; the exit
// status is 0 on success, 1 on an error (or a failed gradient check), 2 on a usage error.
#include "framework/collective.hpp"
#include "framework/gradcheck.hpp"
#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/npy.hpp"
#include "framework/random.hpp"
#include "framework/tape.hpp"
#include "framework/sequential.hpp"
#include "layers/dropout.hpp"
#include "layers/fold_batch_norm.hpp"
#include "saving/keras_h5.hpp"
#ifdef XTAPE_WITH_MPI
#include "distributed/mpi.hpp"
#endif
#include <cstdio>

#include <xtensor/xview.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace xtape;

namespace {

/// A usage error: exit status 2, like argparse.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const char* const main_help = R"(usage: xtape <command> [options]

Keras HDF5 (.h5) models from the command line.

commands:
  summary     print Keras's summary table of a model
  predict     run a model on an input dataset and write the predictions
  evaluate    print the loss and metrics of a model on a dataset as JSON
  fit         train a model and save the trained model
  gradcheck   check the model's gradients against central differences (float64)
  fold        fold inference-mode BatchNormalization layers into the layer before them

Run "xtape <command> --help" for the options of a command.
)";

const std::map<std::string, std::string> command_help = {
    { "summary", R"(usage: xtape summary MODEL.h5

Prints Keras's summary table (layers, output shapes, parameter counts) of a model saved with
model.save (Keras 1.x, 2.x, tf.keras, Keras 3 legacy .h5, or xtape).
)" },
    { "predict", R"(usage: xtape predict MODEL.h5 --input IN.h5 [--dataset x] --output OUT.h5 [--batch-size N]

Runs the model (inference mode) on the input and writes the predictions as the float32
dataset "y" of OUT.h5 (or OUT.npy when the name ends in .npy). A model with several outputs
writes the datasets y_0, y_1, ... (or, with --output-names, one named after each output layer)
and needs an .h5 OUT.

  --input IN        an HDF5 file (the dataset named by --dataset) or a .npy file; any float
                    or integer type. A model with several inputs: once per input, or once
                    for all of them (then one --dataset per input)
  --dataset NAME    dataset inside IN.h5 (default: x; x_0, x_1, ... for several inputs);
                    once per input
  --output OUT      the file to write; replaced atomically
  --output-names    name the datasets of several outputs after the output layers
  --batch-size N    samples per batch (default: 32)
)" },
    { "evaluate", R"(usage: xtape evaluate MODEL.h5 --data D.h5 [--x x] [--y y] [--batch-size N] [--loss NAME]

Prints the loss and the compiled metrics over the data as one JSON object, e.g.
{"accuracy": 0.91, "loss": 0.27}. The loss and metrics come from the model's training_config;
--loss overrides the loss (and is required when the file has no training_config).

  --data D.h5       HDF5 file holding the inputs and the targets
  --x NAME          dataset of inputs (default: x; x_0, x_1, ... for several inputs), once per input
  --y NAME          dataset of targets (default: y; y_0, y_1, ... for several outputs), once per output
  --batch-size N    samples per batch (default: 32)
  --loss NAME       a Keras loss name (mse, categorical_crossentropy, ...), for every output
)" },
    { "fit", R"(usage: xtape fit MODEL.h5 --data D.h5 --output OUT.h5 [--x x] [--y y] [--epochs 1]
                 [--batch-size 32] [--optimizer NAME] [--learning-rate LR] [--loss NAME]
                 [--no-shuffle] [--validation-split F] [--seed S]

Trains the model with a progress bar and saves the whole model (weights, moving statistics,
training_config and optimizer state) to OUT.h5. The model is compiled from its training_config,
including the saved optimizer state; flags override it: --optimizer starts a fresh optimizer
(sgd, adam, rmsprop, adagrad, adamw, nadam), --learning-rate sets the learning rate, --loss
replaces the loss. A file without training_config needs --loss (the optimizer defaults to
rmsprop, Keras's compile default).

  --data D.h5             HDF5 file holding the inputs and the targets
  --x NAME / --y NAME     their datasets (default: x, y; x_0, ... / y_0, ... for several inputs
                          / outputs), once per input / output
  --epochs N              epochs to run (default: 1)
  --batch-size N          samples per batch (default: 32)
  --no-shuffle            take batches in order, as Keras's fit(shuffle=False)
  --validation-split F    fraction of the samples, from the end, kept for validation
  --seed S                seed for shuffling and dropout (keras.utils.set_random_seed)
)" },
    { "gradcheck", R"(usage: xtape gradcheck MODEL.h5 --data D.h5 [--x x] [--y y] [--loss NAME] [--samples N]
                       [--max-elements N] [--seed S] [--eps E] [--max-rel-error R] [--min-abs-error A]

Loads the model in float64, runs it in training mode on the first N samples and compares the
tape's gradient of the loss (regularization included) with respect to every trainable weight
with central differences. Prints the worst relative error per weight; exits with status 1
when a weight fails. Dropout masks are drawn once and reused by every evaluation, so the
differences measure the model, not the noise.

  --data D.h5             HDF5 file holding the inputs and the targets
  --x NAME / --y NAME     their datasets (default: x, y; x_0, ... / y_0, ... for several inputs
                          / outputs), once per input / output
  --loss NAME             the loss for every output (default: the model's training_config)
  --samples N             samples to use (default: 8)
  --max-elements N        elements checked per weight: a weight with more is checked on N
                          distinct elements drawn at random (two forward passes each);
                          0 checks every element (default: 64)
  --seed S                seed of that random choice (default: 12345)
  --eps E                 central difference step (default: 1e-6)
  --max-rel-error R       largest relative error that passes (default: 1e-5)
  --min-abs-error A       differences below this are ignored (default: the larger of 1e-8
                          and 32 ulp(loss) / (2 eps), the rounding floor of central
                          differences: a loss of 600 is only known to 1e-13, so in a deep
                          model a difference quotient carries an error of about 1e-7)
)" },
    { "fold", R"(usage: xtape fold MODEL.h5 --output OUT.h5 [--samples N] [--batch-size N]

Folds every BatchNormalization that directly follows a Dense, Conv1D/2D/3D or DepthwiseConv1D/2D
(no activation in between, the layer's output used only by it, on the layer's channel axis) into
that layer's kernel and bias, for inference, and saves the folded model (without optimizer state)
as an ordinary Keras file. Prints one JSON line: the pairs folded, the largest difference between
the two models' predictions on N random inputs of the model's input shape, and the time predict
took on them before and after (median of 5 runs).

options:
  --output OUT.h5     where to write the folded model
  --samples N         random inputs for the check and the timing (default: 256)
  --batch-size N      predict's batch size (default: 32)
)" },
};

struct Args {
    std::string command;
    std::string model;
    /// "--name" -> its values in order ("" for flags); repeatable options (--input, --dataset,
    /// --x, --y) keep every value, the others the last.
    std::map<std::string, std::vector<std::string>> options;
    bool help = false;
};

Args parse_args(int argc, char** argv)
{
    static const std::map<std::string, std::set<std::string>> allowed = {
        { "summary", {} },
        { "predict", { "--input", "--dataset", "--output", "--batch-size", "--output-names" } },
        { "evaluate", { "--data", "--x", "--y", "--batch-size", "--loss" } },
        { "fit",
          { "--data", "--x", "--y", "--output", "--epochs", "--batch-size", "--optimizer", "--learning-rate", "--loss",
            "--no-shuffle", "--validation-split", "--seed" } },
        { "gradcheck",
          { "--data", "--x", "--y", "--loss", "--samples", "--max-elements", "--seed", "--eps", "--max-rel-error",
            "--min-abs-error" } },
        { "fold", { "--output", "--samples", "--batch-size" } },
    };
    static const std::set<std::string> flags = { "--no-shuffle", "--output-names" };
    static const std::set<std::string> repeatable = { "--input", "--dataset", "--x", "--y" };
    Args a;
    if (argc < 2)
        throw UsageError("missing command (summary, predict, evaluate, fit, gradcheck, fold); see xtape --help");
    a.command = argv[1];
    if (a.command == "--help" || a.command == "-h") {
        a.help = true;
        return a;
    }
    auto cmd = allowed.find(a.command);
    if (cmd == allowed.end())
        throw UsageError("unknown command '" + a.command + "' (expected summary, predict, evaluate, fit, gradcheck or fold)");
    for (int i = 2; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            a.help = true;
            continue;
        }
        if (arg.rfind("--", 0) == 0) {
            std::string value;
            const auto eq = arg.find('=');
            if (eq != std::string::npos) {
                value = arg.substr(eq + 1);
                arg.erase(eq);
            }
            if (!cmd->second.count(arg))
                throw UsageError(a.command + ": unknown option " + arg);
            if (flags.count(arg)) {
                if (eq != std::string::npos)
                    throw UsageError(a.command + ": " + arg + " takes no value");
            } else if (eq == std::string::npos) {
                if (i + 1 >= argc)
                    throw UsageError(a.command + ": " + arg + " needs a value");
                value = argv[++i];
            }
            auto& values = a.options[arg];
            if (!repeatable.count(arg))
                values.clear();
            values.push_back(value);
        } else if (a.model.empty()) {
            a.model = arg;
        } else {
            throw UsageError(a.command + ": unexpected argument '" + arg + "'");
        }
    }
    if (!a.help && a.model.empty())
        throw UsageError(a.command + ": missing MODEL.h5");
    return a;
}

std::string opt(const Args& a, const std::string& name, const std::string& fallback)
{
    auto it = a.options.find(name);
    return it == a.options.end() ? fallback : it->second.back();
}

/// Every value of a repeatable option, in order (none: empty).
std::vector<std::string> opts(const Args& a, const std::string& name)
{
    auto it = a.options.find(name);
    return it == a.options.end() ? std::vector<std::string>{} : it->second;
}

std::string required(const Args& a, const std::string& name)
{
    auto it = a.options.find(name);
    if (it == a.options.end())
        throw UsageError(a.command + ": missing " + name);
    return it->second.back();
}

long long int_opt(const Args& a, const std::string& name, long long fallback, long long min_value)
{
    if (!a.options.count(name))
        return fallback;
    const std::string s = opt(a, name, "");
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < min_value)
        throw UsageError(a.command + ": " + name + " expects an integer >= " + std::to_string(min_value) + ", got '" +
                         s + "'");
    return v;
}

std::optional<double> double_opt(const Args& a, const std::string& name)
{
    if (!a.options.count(name))
        return std::nullopt;
    const std::string s = opt(a, name, "");
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0')
        throw UsageError(a.command + ": " + name + " expects a number, got '" + s + "'");
    return v;
}

bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// An array from a .npy file or a dataset of an HDF5 file, converted to T.
template <class T>
array_t<T> read_array(const std::string& path, const std::string& dataset)
{
    if (ends_with(path, ".npy"))
        return io::read_npy<T>(path);
    io::H5File f = io::H5File::open_read(path);
    io::H5Group root = f.root();
    if (!root.has_dataset(dataset)) {
        std::string names;
        for (const auto& n : root.member_names())
            names += (names.empty() ? "" : ", ") + n;
        throw IOError(path + ": no dataset '" + dataset + "' (the file's root holds: " +
                      (names.empty() ? std::string("nothing") : names) + ")");
    }
    return root.read_dataset<T>(dataset);
}

// Note [Datasets of several inputs and outputs]
// A model's inputs are read from --input/--dataset (predict) or --data/--x (the others), its
// targets from --data/--y. One dataset per input (target), in the model's input (output) order:
// given by repeating the option, or by default "x" / "y" for one and "x_0", "x_1", ... /
// "y_0", "y_1", ... for several, so that predict's outputs (y_0, y_1, ...) are ready targets.
// predict takes one --input file per input, or one for all of them.

/// The arrays of `count` inputs (or targets): from `files` (one, or one per array) and
/// `datasets` (none: the defaults of the Note above; otherwise one per array).
template <class T>
std::vector<array_t<T>> read_arrays(const std::string& command, const std::vector<std::string>& files,
                                    std::vector<std::string> datasets, std::size_t count, const std::string& stem,
                                    const std::string& flag, const std::string& what)
{
    if (files.size() != 1 && files.size() != count)
        throw UsageError(command + ": the model has " + std::to_string(count) + " " + what + "s; give one file for all or " +
                         std::to_string(count) + ", got " + std::to_string(files.size()));
    if (datasets.empty()) {
        for (std::size_t i = 0; i < count; ++i)
            datasets.push_back(count == 1 ? stem : stem + "_" + std::to_string(i));
    }
    if (datasets.size() != count)
        throw UsageError(command + ": the model has " + std::to_string(count) + " " + what + (count == 1 ? "" : "s") +
                         ", so " + flag + " is needed once per " + what + "; got it " + std::to_string(datasets.size()) +
                         " time(s)");
    std::vector<array_t<T>> out;
    for (std::size_t i = 0; i < count; ++i)
        out.push_back(read_array<T>(files.size() == 1 ? files[0] : files[i], datasets[i]));
    return out;
}

template <class T>
std::string shapes_str(const std::vector<array_t<T>>& v)
{
    std::string s;
    for (const auto& a : v)
        s += (s.empty() ? "" : ", ") + shape_str(shape_of(a));
    return s;
}

template <class T>
void check_samples(const std::vector<array_t<T>>& x, const std::vector<array_t<T>>& y, const std::string& data)
{
    bool same = true;
    for (const auto* v : { &x, &y })
        for (const auto& a : *v)
            same = same && a.dimension() > 0 && a.shape()[0] == x[0].shape()[0];
    if (!same)
        throw ValueError(data + ": the inputs have shape " + shapes_str(x) + " and the targets " + shapes_str(y) +
                         "; all need the same number of samples on their first axis");
    if (x[0].shape()[0] == 0)
        throw ValueError(data + ": the inputs " + shapes_str(x) + " and the targets " + shapes_str(y) +
                         " hold no samples; at least one is needed");
}

template <class T>
std::size_t count_inputs(const Model<T>& m)
{
    return m.graph() ? m.graph()->inputs().size() : 1;
}

template <class T>
std::size_t count_outputs(const Model<T>& m)
{
    return m.graph() ? m.graph()->outputs().size() : 1;
}

/// The inputs and targets of `fit`, `evaluate` and `gradcheck`: --data with --x and --y.
template <class T>
std::pair<std::vector<array_t<T>>, std::vector<array_t<T>>> read_data(const Args& a, const Model<T>& model)
{
    const std::string data = required(a, "--data");
    auto x = read_arrays<T>(a.command, { data }, opts(a, "--x"), count_inputs(model), "x", "--x", "input");
    auto y = read_arrays<T>(a.command, { data }, opts(a, "--y"), count_outputs(model), "y", "--y", "output");
    check_samples(x, y, data);
    return { std::move(x), std::move(y) };
}

json training_config_of_file(const std::string& path)
{
    io::H5File f = io::H5File::open_read(path);
    io::H5Group root = f.root();
    if (!root.has_attribute("training_config"))
        return json();
    try {
        return json::parse(root.read_string_attribute("training_config"));
    } catch (const json::parse_error&) {
        return json();
    }
}

/// Compiles as `fit`/`evaluate`/`gradcheck` need: the file's compile state, with --loss,
/// --optimizer and --learning-rate overriding it.
template <class T>
void compile_for_command(Model<T>& model, const Args& a, bool needs_optimizer_flags)
{
    const std::string loss_flag = opt(a, "--loss", "");
    const std::string optimizer_flag = needs_optimizer_flags ? opt(a, "--optimizer", "") : "";
    const std::optional<double> lr = needs_optimizer_flags ? double_opt(a, "--learning-rate") : std::nullopt;

    if (model.compiled() && loss_flag.empty() && optimizer_flag.empty()) {
        if (lr)
            model.optimizer()->set_learning_rate(*lr);
        return;
    }
    if (loss_flag.empty() && !model.compiled())
        throw ValueError(a.model + ": the model has no usable training_config, so its loss is unknown; pass --loss");
    OptimizerPtr<T> optimizer;
    if (!optimizer_flag.empty())
        optimizer = get_optimizer<T>(json(optimizer_flag));
    else if (model.compiled())
        optimizer = model.optimizer(); // keeps the restored state
    else
        optimizer = get_optimizer<T>(json("rmsprop"));
    if (lr)
        optimizer->set_learning_rate(*lr);
    // The file's compile arguments (per-output losses, weights, metrics) with --loss for every output.
    CompileOptions<T> co = model.compiled() ? model.compile_options() : CompileOptions<T>{};
    if (!loss_flag.empty()) {
        co.loss = { LossSpec<T>(loss_flag) };
        co.loss_by_name.clear();
    }
    if (!model.compiled()) { // the file's metrics, when its training_config could not compile the model
        std::vector<MetricSpec<T>> metrics;
        for (const auto& m : metrics_from_training_config(training_config_of_file(a.model)))
            metrics.emplace_back(m);
        if (!metrics.empty())
            co.metrics = { metrics };
    }
    model.compile(OptimizerSpec<T>(optimizer), std::move(co));
}

// ---- commands ---------------------------------------------------------------------------------------

int cmd_summary(const Args& a)
{
    auto model = load_model<float>(a.model, /*compile=*/false);
    model->summary();
    return 0;
}

int cmd_predict(const Args& a)
{
    required(a, "--input");
    const std::string output = required(a, "--output");
    const auto batch = static_cast<std::size_t>(int_opt(a, "--batch-size", 32, 1));
    auto model = load_model<float>(a.model, false);
    const std::vector<array_t<float>> x =
        read_arrays<float>(a.command, opts(a, "--input"), opts(a, "--dataset"), count_inputs(*model), "x", "--dataset",
                           "input");
    for (const auto& xi : x)
        if (xi.dimension() == 0 || xi.shape()[0] == 0) // Keras: "Expected input data to be non-empty."
            throw ValueError(opt(a, "--input", "") + ": the input " + shape_str(xi.shape()) +
                             " holds no samples; at least one is needed");
    PredictOptions<float> po;
    po.batch_size = batch;
    po.verbose = 0;
    const std::vector<array_t<float>> y = model->predict_list(x, po);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < y.size(); ++i)
        names.push_back(y.size() == 1 ? "y" : "y_" + std::to_string(i));
    if (a.options.count("--output-names"))
        names = model->graph() ? model->output_names() : std::vector<std::string>{ model->layers().back()->name() };
    if (ends_with(output, ".npy")) {
        if (y.size() != 1)
            throw ValueError(output + ": the model has " + std::to_string(y.size()) +
                             " outputs and a .npy file holds one array; write an .h5 file");
        io::write_npy<float>(output, y[0]);
    } else {
        io::write_atomically(output, [&](const std::string& tmp) {
            io::H5File f = io::H5File::create(tmp);
            for (std::size_t i = 0; i < y.size(); ++i)
                f.root().write_dataset<float>(names[i], y[i]);
            f.close();
        });
    }
    std::string written;
    for (std::size_t i = 0; i < y.size(); ++i)
        written += (i ? ", " : "") + (y.size() == 1 ? std::string() : names[i] + " ") + shape_str(y[i].shape());
    std::cerr << "xtape: wrote predictions " << written << " to " << output << std::endl;
    return 0;
}

int cmd_fold(const Args& a)
{
    const std::string output = required(a, "--output");
    const auto samples = static_cast<std::size_t>(int_opt(a, "--samples", 256, 1));
    const auto batch = static_cast<std::size_t>(int_opt(a, "--batch-size", 32, 1));
    auto model = load_model<float>(a.model, false);
    std::vector<std::string> pairs;
    auto folded = fold_batch_norm<float>(*model, &pairs);
    shape_t xs{ samples };
    const dims_t in = model->build_input_shape();
    for (std::size_t d = 1; d < in.size(); ++d) {
        if (in[d] < 0)
            throw ValueError(a.model + ": the input shape " + dims_str(in) + " has an unknown dimension; fold needs a "
                             "fixed input shape to check and time the folded model");
        xs.push_back(std::size_t(in[d]));
    }
    array_t<float> x = array_t<float>::from_shape(xs);
    std::mt19937 gen(12345);
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto& v : x)
        v = normal(gen);
    PredictOptions<float> po;
    po.batch_size = batch;
    po.verbose = 0;
    auto timed = [&](Model<float>& m, array_t<float>& y) {
        std::vector<double> ms;
        for (int r = 0; r < 5; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            y = m.predict(x, po);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        return ms[2];
    };
    array_t<float> y0, y1;
    const double before = timed(*model, y0), after = timed(*folded, y1);
    double diff = 0;
    for (std::size_t i = 0; i < y0.size(); ++i)
        diff = std::max(diff, double(std::abs(y0.data()[i] - y1.data()[i])));
    save_model(*folded, output, /*include_optimizer=*/false);
    json j = { { "folded", pairs }, { "max_abs_diff", diff }, { "samples", samples },
               { "predict_ms_before", before }, { "predict_ms_after", after }, { "output", output } };
    std::cout << j.dump() << std::endl;
    return 0;
}

int cmd_evaluate(const Args& a)
{
    required(a, "--data");
    const auto batch = static_cast<std::size_t>(int_opt(a, "--batch-size", 32, 1));
    auto model = load_model<float>(a.model, true);
    compile_for_command(*model, a, false);
    const auto [x, y] = read_data<float>(a, *model);
    EvaluateOptions<float> eo;
    eo.batch_size = batch;
    eo.verbose = 0;
    const Logs logs = model->evaluate(x, y, eo);
    json out = json::object();
    for (const auto& kv : logs)
        out[kv.first] = kv.second;
    std::cout << out.dump() << std::endl;
    return 0;
}

int cmd_fit(const Args& a)
{
    required(a, "--data");
    const std::string output = required(a, "--output");
    FitOptions<float> fo;
    fo.epochs = static_cast<int>(int_opt(a, "--epochs", 1, 1));
    fo.batch_size = static_cast<std::size_t>(int_opt(a, "--batch-size", 32, 1));
    fo.shuffle = !a.options.count("--no-shuffle");
    if (auto vs = double_opt(a, "--validation-split")) {
        if (*vs < 0 || *vs >= 1)
            throw UsageError("fit: --validation-split expects a number in [0, 1), got " + opt(a, "--validation-split", ""));
        fo.validation_split = *vs;
    }
    // Seed first: dropout layers take their seeds when the model is built.
    if (a.options.count("--seed"))
        set_random_seed(static_cast<std::uint64_t>(int_opt(a, "--seed", 0, 0)));
    auto model = load_model<float>(a.model, true);
    compile_for_command(*model, a, true);
    const auto [x, y] = read_data<float>(a, *model);
    model->fit(x, y, fo);
    if (collective().rank() != 0)
        return 0;
    save_model(*model, output);
    std::cerr << "xtape: saved the trained model to " << output << std::endl;
    return 0;
}

int cmd_gradcheck(const Args& a)
{
    const std::string data = required(a, "--data");
    const auto samples = static_cast<std::size_t>(int_opt(a, "--samples", 8, 1));
    GradcheckOptions go;
    go.max_elements = static_cast<std::size_t>(int_opt(a, "--max-elements", 64, 0));
    if (a.options.count("--seed"))
        go.seed = static_cast<unsigned>(int_opt(a, "--seed", 0, 0));
    if (auto e = double_opt(a, "--eps"))
        go.eps = *e;
    if (auto r = double_opt(a, "--max-rel-error"))
        go.max_rel_error = *r;
    const std::optional<double> min_abs_error = double_opt(a, "--min-abs-error");
    auto model = load_model<double>(a.model, true);
    compile_for_command(*model, a, false);
    const auto [x, y] = read_data<double>(a, *model);
    const std::size_t n = std::min(samples, x[0].shape()[0]);
    auto first_rows = [n](const std::vector<array_t<double>>& arrays) {
        std::vector<Tensor<double>> out;
        for (const auto& arr : arrays)
            out.emplace_back(array_t<double>(xt::view(arr, xt::range(0, n))));
        return out;
    };
    const std::vector<Tensor<double>> xs = first_rows(x), ys = first_rows(y);

    // The model's own weights (a layer shared by two branches, once), named as the file names them.
    std::vector<Tensor<double>> params;
    std::vector<std::string> names;
    for (const auto& v : model->trainable_weights()) {
        params.push_back(v.tensor());
        names.push_back(model->weight_path(v));
    }
    if (params.empty())
        throw ValueError(a.model + ": the model has no trainable weights to check");

    // Every Dropout (nested models included) restarts from its own seed before each evaluation,
    // so every evaluation draws the same masks.
    std::vector<std::shared_ptr<Dropout<double>>> dropouts;
    std::function<void(const Model<double>&)> collect = [&](const Model<double>& m) {
        for (const auto& l : m.layers()) {
            if (auto d = std::dynamic_pointer_cast<Dropout<double>>(l))
                dropouts.push_back(d);
            else if (auto sub = std::dynamic_pointer_cast<Model<double>>(l))
                collect(*sub);
        }
    };
    collect(*model);
    const std::uint64_t mask_seed = 1234;
    auto loss_fn = [&]() -> Tensor<double> {
        for (std::size_t i = 0; i < dropouts.size(); ++i)
            dropouts[i]->reseed(mask_seed + i);
        return model->compute_loss_list(ys, (*model)(xs, /*training=*/true));
    };
    double loss_value = 0;
    {
        NoGradGuard no_tape;
        loss_value = loss_fn().item();
    }
    if (!std::isfinite(loss_value))
        throw ValueError(a.model + ": the loss on the first " + std::to_string(n) + " sample(s) of " + data + " is " +
                         std::to_string(loss_value) + "; gradients of a non-finite loss cannot be checked");
    if (min_abs_error) {
        go.min_abs_error = *min_abs_error;
    } else {
        // f(w +- eps) are each rounded to within a few ulp of f, so their difference quotient
        // cannot resolve less than about ulp(f) / (2 eps); 32 ulp leaves room for the rounding
        // accumulated through the layers (measured on ad01: up to 3 ulp).
        const double ulp = std::nextafter(std::abs(loss_value), HUGE_VAL) - std::abs(loss_value);
        go.min_abs_error = std::max(go.min_abs_error, 32 * ulp / (2 * go.eps));
    }
    std::cout << "gradcheck: " << a.model << ", " << n << " sample(s), loss " << model->loss()->name() << " = "
              << loss_value << ", float64, training mode, eps " << go.eps << ", max relative error " << go.max_rel_error
              << ", differences below " << go.min_abs_error << " ignored, "
              << (go.max_elements ? "at most " + std::to_string(go.max_elements) + " elements per weight (seed " +
                                        std::to_string(go.seed) + ")"
                                  : std::string("every element"))
              << "\n";
    const GradcheckResult r = gradcheck(loss_fn, params, names, go);
    std::cout << r.report();
    std::size_t failed = 0;
    for (const auto& e : r.entries)
        failed += e.failed ? 1 : 0;
    if (!r.passed) {
        std::cout << "gradcheck FAILED" << std::endl;
        std::cerr << "xtape: error: gradcheck failed for " << failed << " of " << r.entries.size() << " weights"
                  << std::endl;
        return 1;
    }
    std::cout << "gradcheck passed: " << r.entries.size() << " weights" << std::endl;
    return 0;
}

/// One line: newlines inside a message become spaces.
std::string one_line(std::string s)
{
    for (char& c : s)
        if (c == '\n' || c == '\r')
            c = ' ';
    return s;
}

} // namespace

int main(int argc, char** argv)
{
#ifdef XTAPE_WITH_MPI
    // Under mpirun: data-parallel fit/evaluate/predict; rank 0 alone prints and saves.
    xtape::distributed::MpiGuard mpi(argc, argv);
    if (mpi.rank() != 0 && !std::freopen("/dev/null", "w", stdout))
        return 1;
#endif
    Args args;
    try {
        args = parse_args(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "xtape: error: " << one_line(e.what()) << std::endl;
        return 2;
    }
    if (args.help) {
        auto it = command_help.find(args.command);
        std::cout << (it == command_help.end() ? main_help : it->second);
        return 0;
    }
    try {
        if (args.command == "summary")
            return cmd_summary(args);
        if (args.command == "predict")
            return cmd_predict(args);
        if (args.command == "evaluate")
            return cmd_evaluate(args);
        if (args.command == "fit")
            return cmd_fit(args);
        if (args.command == "fold")
            return cmd_fold(args);
        return cmd_gradcheck(args);
    } catch (const UsageError& e) {
        std::cerr << "xtape: error: " << one_line(e.what()) << std::endl;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "xtape: error: " << one_line(e.what()) << std::endl;
        return 1;
    }
}
