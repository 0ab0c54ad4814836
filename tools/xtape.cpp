// xtape: the command-line tool for Keras HDF5 models.
//
//   xtape summary MODEL.h5 [--json]
//   xtape predict MODEL.h5 --input IN.h5 [--dataset x] --output OUT.h5 [--batch-size N] [--output-names]
//   xtape evaluate MODEL.h5 --data D.h5 [--x x] [--y y] [--batch-size N] [--loss NAME]
//   xtape fit MODEL.h5 --data D.h5 --output OUT.h5 [--x x] [--y y] [--epochs 1] [--batch-size 32]
//             [--optimizer NAME] [--learning-rate LR] [--loss NAME] [--no-shuffle]
//             [--validation-split F] [--seed S] [--history H.json]
//   xtape gradcheck MODEL.h5 --data D.h5 [--x x] [--y y] [--loss NAME] [--samples N] [--max-elements N]
//   xtape fold MODEL.h5 --output OUT.h5 [--samples N] [--batch-size N]
//   xtape plot LOG.csv|H.json --output curves.png|svg [--metrics loss,accuracy] [--size WxH]
//
// The command line is parsed by tools/command_line.cpp (CLI11): every subcommand has --help, and
// xtape --version names the libraries. A model with several inputs or outputs takes
// --input/--dataset, --x and --y once per input or output (Note [Datasets of several inputs and
// outputs]). fit, evaluate and predict read HDF5 data a batch at a time (Note [Streaming the data
// files]). Errors print one line "xtape: error: ..." to stderr; the exit status is 0 on
// success, 1 on an error (or a failed gradient check), 2 on a usage error.
#include "framework/collective.hpp"
#include "framework/gradcheck.hpp"
#include "framework/gradcheck_model.hpp"
#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/hdf5_batches.hpp"
#include "framework/io/npy.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/tape.hpp"
#include "framework/sequential.hpp"
#include "framework/training_curves.hpp"
#include "layers/dropout.hpp"
#include "layers/fold_batch_norm.hpp"
#include "saving/keras_h5.hpp"
#ifdef XTAPE_WITH_MPI
#include "distributed/mpi.hpp"
#endif
#include <cstdio>
#include "tools/command_line.hpp"

#include <xtensor/xview.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

using namespace xtape;
using cli::Args;
using cli::UsageError;

namespace {

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
    io::require_dataset(root, path, dataset);
    return root.read_dataset<T>(dataset);
}

// Note [Datasets of several inputs and outputs]
// A model's inputs are read from --input/--dataset (predict) or --data/--x (the others), its
// targets from --data/--y. One dataset per input (target), in the model's input (output) order:
// given by repeating the option, or by default "x" / "y" for one and "x_0", "x_1", ... /
// "y_0", "y_1", ... for several, so that predict's outputs (y_0, y_1, ...) are ready targets.
// predict takes one --input file per input, or one for all of them.

/// Where the `count` inputs (or targets) are: `files` (one, or one per array) and `datasets`
/// (none: the defaults of the Note above; otherwise one per array).
std::vector<io::H5DatasetRef> data_refs(const std::string& command, const std::vector<std::string>& files,
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
    std::vector<io::H5DatasetRef> out;
    for (std::size_t i = 0; i < count; ++i)
        out.push_back({ files.size() == 1 ? files[0] : files[i], datasets[i] });
    return out;
}

template <class T>
std::vector<array_t<T>> read_arrays(const std::vector<io::H5DatasetRef>& refs)
{
    std::vector<array_t<T>> out;
    for (const auto& r : refs)
        out.push_back(read_array<T>(r.file, r.dataset));
    return out;
}

// Note [Streaming the data files]
// fit, evaluate and predict read HDF5 data files a batch at a time (io::H5Batches: a hyperslab
// per batch, the next batch read in the background), so a file larger than memory works; .npy
// files are read whole. fit shuffles the order of the batches (each batch holds consecutive rows
// of the file; Note [Shuffling batches of a file]), seeded by --seed through the global
// generator; --validation-split serves the last rows of the file as a second source, as Keras
// takes them from the end. predict holds its outputs in memory (one row per sample per output).

bool streamable(const std::vector<io::H5DatasetRef>& refs)
{
    return std::none_of(refs.begin(), refs.end(), [](const io::H5DatasetRef& r) { return ends_with(r.file, ".npy"); });
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

/// Where the inputs and targets of `fit`, `evaluate` and `gradcheck` are: --data with --x and --y.
template <class T>
std::pair<std::vector<io::H5DatasetRef>, std::vector<io::H5DatasetRef>> data_of(const Args& a, const Model<T>& model)
{
    return { data_refs(a.command, { a.data }, a.x, count_inputs(model), "x", "--x", "input"),
             data_refs(a.command, { a.data }, a.y, count_outputs(model), "y", "--y", "output") };
}

/// The inputs and targets, read whole.
template <class T>
std::pair<std::vector<array_t<T>>, std::vector<array_t<T>>> read_data(const Args& a, const Model<T>& model)
{
    const auto refs = data_of(a, model);
    auto x = read_arrays<T>(refs.first), y = read_arrays<T>(refs.second);
    check_samples(x, y, a.data);
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
    const std::string loss_flag = a.loss;
    const std::string optimizer_flag = needs_optimizer_flags ? a.optimizer : "";
    const std::optional<double> lr = needs_optimizer_flags ? a.learning_rate : std::nullopt;

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

/// The summary's rows as JSON, for scripts: a shape's unknown dimension is null.
json summary_json(const Model<float>& model)
{
    auto shape_json = [](const dims_t& d) {
        json j = json::array();
        for (auto v : d)
            j.push_back(v < 0 ? json() : json(v));
        return j;
    };
    json layers = json::array();
    for (const auto& r : model.summary_rows()) {
        json shapes = json::array();
        for (const auto& d : r.output_shapes)
            shapes.push_back(shape_json(d));
        json l = { { "name", r.name }, { "class_name", r.class_name },
                   { "output_shapes", r.output_shapes.empty() ? json() : shapes }, { "params", r.params },
                   { "built", r.built } };
        if (model.graph())
            l["connected_to"] = r.connected_to;
        layers.push_back(l);
    }
    const auto counts = model.param_counts();
    return { { "name", model.name() },
             { "class_name", model.class_name() },
             { "layers", layers },
             { "total_params", counts.trainable + counts.non_trainable + counts.optimizer },
             { "trainable_params", counts.trainable },
             { "non_trainable_params", counts.non_trainable },
             { "optimizer_params", counts.optimizer } };
}

int cmd_summary(const Args& a)
{
    auto model = load_model<float>(a.model, /*compile=*/false);
    if (a.json)
        std::cout << summary_json(*model).dump() << std::endl;
    else
        model->summary();
    return 0;
}

int cmd_plot(const Args& a)
{
    const TrainingLog log = read_training_log(a.model);
    PlotOptions po;
    po.metrics = a.metrics;
    po.width = a.width;
    po.height = a.height;
    plot_training_curves(log, a.output, po);
    std::cerr << "xtape: wrote the training curves of " << a.model << " to " << a.output << std::endl;
    return 0;
}

int cmd_predict(const Args& a)
{
    const std::string output = a.output;
    const std::size_t batch = a.batch_size;
    auto model = load_model<float>(a.model, false);
    const auto refs = data_refs(a.command, a.input, a.dataset, count_inputs(*model), "x", "--dataset", "input");
    PredictOptions<float> po;
    po.batch_size = batch;
    po.verbose = 0;
    std::vector<array_t<float>> y;
    if (streamable(refs)) { // Note [Streaming the data files]
        io::H5BatchOptions bo;
        bo.batch_size = batch;
        io::H5Batches<float> data(refs, {}, {}, bo);
        y = model->predict_list(data, po);
    } else {
        const std::vector<array_t<float>> x = read_arrays<float>(refs);
        for (const auto& xi : x)
            if (xi.dimension() == 0 || xi.shape()[0] == 0) // Keras: "Expected input data to be non-empty."
                throw ValueError(a.input.back() + ": the input " + shape_str(xi.shape()) +
                                 " holds no samples; at least one is needed");
        y = model->predict_list(x, po);
    }
    std::vector<std::string> names;
    for (std::size_t i = 0; i < y.size(); ++i)
        names.push_back(y.size() == 1 ? "y" : "y_" + std::to_string(i));
    if (a.output_names)
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
    const std::string output = a.output;
    const std::size_t samples = a.samples;
    const std::size_t batch = a.batch_size;
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
    const std::size_t batch = a.batch_size;
    auto model = load_model<float>(a.model, true);
    compile_for_command(*model, a, false);
    EvaluateOptions<float> eo;
    eo.batch_size = batch;
    eo.verbose = 0;
    const auto refs = data_of(a, *model);
    Logs logs;
    if (streamable(refs.first) && streamable(refs.second)) { // Note [Streaming the data files]
        io::H5BatchOptions bo;
        bo.batch_size = batch;
        io::H5Batches<float> data(refs.first, refs.second, {}, bo);
        logs = model->evaluate(data, eo);
    } else {
        const auto [x, y] = read_data<float>(a, *model);
        logs = model->evaluate(x, y, eo);
    }
    json out = json::object();
    for (const auto& kv : logs)
        out[kv.first] = kv.second;
    std::cout << out.dump() << std::endl;
    return 0;
}

int cmd_fit(const Args& a)
{
    const std::string output = a.output;
    FitOptions<float> fo;
    fo.epochs = a.epochs;
    fo.batch_size = a.batch_size;
    fo.shuffle = a.shuffle;
    if (a.validation_split)
        fo.validation_split = *a.validation_split;
    // Seed first: dropout layers take their seeds when the model is built.
    if (a.seed)
        set_random_seed(*a.seed);
    auto model = load_model<float>(a.model, true);
    compile_for_command(*model, a, true);
    const auto refs = data_of(a, *model);
    std::shared_ptr<History<float>> history;
    if (streamable(refs.first) && streamable(refs.second)) { // Note [Streaming the data files]
        io::H5BatchOptions bo;
        bo.batch_size = a.batch_size;
        bo.prefetch = false;
        // The number of rows (and every check of the datasets) before splitting them.
        const std::size_t rows = io::H5Batches<float>(refs.first, refs.second, {}, bo).num_samples();
        const std::size_t train_rows = fo.validation_split > 0 ? training_samples(rows, fo.validation_split) : rows;
        bo.prefetch = true;
        io::H5BatchOptions vo = bo;
        bo.shuffle = a.shuffle;
        bo.end = train_rows;
        io::H5Batches<float> train(refs.first, refs.second, {}, bo);
        std::optional<io::H5Batches<float>> validation;
        if (train_rows < rows) {
            vo.begin = train_rows;
            validation.emplace(refs.first, refs.second, std::vector<io::H5DatasetRef>{}, vo);
            fo.validation_data = ValidationData<float>(*validation);
        }
        fo.validation_split = 0;
        history = model->fit(train, fo);
    } else {
        const auto [x, y] = read_data<float>(a, *model);
        history = model->fit(x, y, fo);
    }
    save_model(*model, output); // every rank calls; rank 0 writes (Note [Saving on rank 0])
    if (collective().rank() != 0)
        return 0;
    std::cerr << "xtape: saved the trained model to " << output << std::endl;
    if (!a.history.empty()) {
        save_history_json(*history, a.history);
        std::cerr << "xtape: wrote the History to " << a.history << std::endl;
    }
    return 0;
}

int cmd_gradcheck(const Args& a)
{
    const std::string& data = a.data;
    const std::size_t samples = a.samples;
    GradcheckOptions go;
    go.max_elements = a.max_elements;
    if (a.seed)
        go.seed = static_cast<unsigned>(*a.seed); // at most UINT_MAX (command_line.cpp)
    if (a.eps)
        go.eps = *a.eps;
    if (a.max_rel_error)
        go.max_rel_error = *a.max_rel_error;
    const std::optional<double> min_abs_error = a.min_abs_error;
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

    // gradcheck_model restores the non-trainable weights and reseeds every layer before each
    // evaluation (Note [Stateful layers in a gradient check] in framework/gradcheck_model.cpp).
    if (min_abs_error)
        go.min_abs_error = *min_abs_error;
    ModelGradcheckResult r;
    try {
        r = gradcheck_model(*model, xs, ys, go, 1234, /*rounding_floor=*/!min_abs_error);
    } catch (const ShapeError& e) {
        throw ShapeError(a.model + " on the first " + std::to_string(n) + " sample(s) of " + data + ": " + e.what());
    } catch (const ValueError& e) {
        throw ValueError(a.model + " on the first " + std::to_string(n) + " sample(s) of " + data + ": " + e.what());
    }
    std::cout << "gradcheck: " << a.model << ", " << n << " sample(s), loss " << model->loss()->name() << " = "
              << r.loss << ", float64, training mode, eps " << go.eps << ", max relative error " << go.max_rel_error
              << ", differences below " << r.min_abs_error << " ignored, "
              << (go.max_elements ? "at most " + std::to_string(go.max_elements) + " elements per weight (seed " +
                                        std::to_string(go.seed) + ")"
                                  : std::string("every element"))
              << "\n";
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
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
#ifdef XTAPE_WITH_MPI
    // Under mpirun: data-parallel fit/evaluate/predict; rank 0 alone prints and saves.
    xtape::distributed::MpiGuard mpi(argc, argv);
    if (mpi.rank() != 0 && !std::freopen("/dev/null", "w", stdout))
        return 1;
#endif
    Args args;
    try {
        args = cli::parse_command_line(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "xtape: error: " << one_line(e.what()) << std::endl;
        return 2;
    }
    if (!args.text.empty()) { // --help, --version
        std::cout << args.text;
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
        if (args.command == "plot")
            return cmd_plot(args);
        return cmd_gradcheck(args);
    } catch (const UsageError& e) {
        std::cerr << "xtape: error: " << one_line(e.what()) << std::endl;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "xtape: error: " << one_line(e.what()) << std::endl;
        return 1;
    }
}
