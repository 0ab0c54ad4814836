#include "tools/command_line.hpp"

#include <CLI/CLI.hpp>
#include <hdf5.h>
#include <xtensor-blas/xblas_config.hpp>
#include <xtensor/xtensor_config.hpp>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

extern "C" char* openblas_get_config(void);

#ifndef XTAPE_VERSION
#error "XTAPE_VERSION is defined by tools/CMakeLists.txt (the project's version)"
#endif

namespace xtape::cli {

namespace {

const char* const commands = "summary, predict, evaluate, fit, gradcheck, fold, plot";

// ---- values ----------------------------------------------------------------------------------------
// Validators see the text before CLI11 converts it, so they check the type and the range at once
// and the message (prefixed by CLI11 with the flag) says what was expected and what came.

CLI::Validator integer_at_least(long long min_value, long long max_value = LLONG_MAX)
{
    return CLI::Validator(
      [=](std::string& s) -> std::string {
          errno = 0;
          char* end = nullptr;
          const long long v = std::strtoll(s.c_str(), &end, 10);
          if (s.empty() || *end != '\0' || errno == ERANGE || v < min_value || v > max_value)
              return "expects an integer >= " + std::to_string(min_value) +
                     (max_value == LLONG_MAX ? "" : " and <= " + std::to_string(max_value)) + ", got '" + s + "'";
          return "";
      },
      "");
}

/// A finite number; `ok` says whether it is in range and `range` how that reads.
CLI::Validator number(std::function<bool(double)> ok = nullptr, const std::string& range = "")
{
    return CLI::Validator(
      [=](std::string& s) -> std::string {
          char* end = nullptr;
          const double v = std::strtod(s.c_str(), &end);
          if (s.empty() || *end != '\0' || !std::isfinite(v) || (ok && !ok(v)))
              return "expects a number" + (range.empty() ? std::string() : " " + range) + ", got '" + s + "'";
          return "";
      },
      "");
}

// ---- typo suggestions ------------------------------------------------------------------------------

std::size_t edit_distance(const std::string& a, const std::string& b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({ row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1) });
            diagonal = up;
        }
    }
    return row[b.size()];
}

/// " (did you mean X?)" for the closest candidate within two edits, or one that starts with
/// `typed` (CLI11 2.1 suggests nothing itself); "" when none is close.
std::string suggestion(const std::string& typed, const std::vector<std::string>& candidates)
{
    std::string best;
    std::size_t best_distance = 3;
    for (const auto& c : candidates) {
        const std::size_t d = edit_distance(typed, c);
        if (d < best_distance || (best.empty() && typed.size() >= 4 && c.rfind(typed, 0) == 0)) {
            best = c;
            best_distance = std::min(d, best_distance);
        }
    }
    return best.empty() ? "" : " (did you mean " + best + "?)";
}

// ---- help --------------------------------------------------------------------------------------------

/// `text` broken into lines of at most `width` characters at spaces.
std::string wrap(const std::string& text, std::size_t width)
{
    std::string out, line, word;
    auto flush_word = [&] {
        if (word.empty())
            return;
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            out += line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
        word.clear();
    };
    for (char c : text) {
        if (c == ' ')
            flush_word();
        else
            word += c;
    }
    flush_word();
    return out + line;
}

/// argparse's layout: "usage: xtape fit MODEL.h5 --data D.h5 --output OUT.h5 [options]", the
/// description, then CLI11's list of arguments and options, wrapped to 100 columns.
class Help : public CLI::Formatter {
public:
    static constexpr std::size_t width = 100, column = 30;

    Help()
    {
        label("REQUIRED", "(required)");
        column_width(column);
    }

    std::string make_usage(const CLI::App* app, std::string name) const override
    {
        std::string s = "usage: " + name;
        if (!app->get_subcommands({}).empty())
            s += " <command>";
        bool optional = false;
        for (const CLI::Option* o : app->get_options()) {
            if (o->get_positional())
                s += " " + o->get_name();
            else if (o->get_required())
                s += " " + o->get_name() + " " + o->get_type_name();
            else
                optional = true;
        }
        return s + (optional ? " [options]" : "") + "\n\n";
    }

    /// A command's description is "summary\n\ntext": its help shows the text, the command list
    /// the summary.
    std::string make_description(const CLI::App* app) const override
    {
        const std::string d = app->get_description();
        const auto cut = d.find("\n\n");
        return wrap(cut == std::string::npos ? d : d.substr(cut + 2), width) + "\n";
    }

    std::string make_subcommand(const CLI::App* sub) const override
    {
        const std::string d = sub->get_description();
        std::stringstream out;
        CLI::detail::format_help(out, sub->get_name(), d.substr(0, d.find("\n\n")), column_width_);
        return out.str();
    }

    std::string make_option_desc(const CLI::Option* o) const override
    {
        return wrap(o->get_description(), width - column);
    }

    std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode mode) const override
    {
        if (mode == CLI::AppFormatMode::Sub)
            return make_expanded(app);
        return make_usage(app, name) + make_description(app) + make_positionals(app) + make_groups(app, mode) +
               make_subcommands(app, mode) + (app->get_parent() ? "" : "\n" + make_footer(app));
    }
};

/// The subcommand's CLI11 options, bound to `a`.
struct Parser {
    CLI::App app{ "Keras HDF5 (.h5) models from the command line.", "xtape" };
    Args a;
    std::size_t gradcheck_samples = 8, fold_samples = 256;
    double learning_rate = 0, validation_split = 0, eps = 0, max_rel_error = 0, min_abs_error = 0;
    std::uint64_t seed = 0;
    std::string size;
    bool no_shuffle = false;
    std::map<std::string, CLI::Option*> optional_values; // "<command> <flag>" -> its option

    CLI::App* command(const std::string& name, const std::string& description, const std::string& positional)
    {
        CLI::App* c = app.add_subcommand(name, description);
        c->allow_extras(); // reported by check_extras, with a suggestion
        c->add_option(positional, a.model, positional == "LOG.csv" ? "the CSVLogger file (or History JSON) of a training run"
                                                                   : "the model, saved with model.save")
          ->required()
          ->type_name("");
        return c;
    }
    /// --data, --x and --y of fit, evaluate and gradcheck.
    void data_options(CLI::App* c)
    {
        c->add_option("--data", a.data, "HDF5 file holding the inputs and the targets")->required()->type_name("D.h5");
        repeatable(c->add_option("--x", a.x,
                                 "dataset of inputs (default: x; x_0, x_1, ... for several inputs), once per input"));
        repeatable(c->add_option("--y", a.y,
                                 "dataset of targets (default: y; y_0, y_1, ... for several outputs), once per output"));
    }
    static void repeatable(CLI::Option* o)
    {
        o->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->allow_extra_args(false)->type_name("NAME");
    }
    void batch_size(CLI::App* c)
    {
        c->add_option("--batch-size", a.batch_size, "samples per batch (default: 32)")
          ->check(integer_at_least(1))
          ->type_name("N");
    }
    void optional_number(CLI::App* c, const std::string& flag, double& value, const std::string& help,
                         CLI::Validator check)
    {
        optional_values[c->get_name() + " " + flag] = c->add_option(flag, value, help)->check(check)->type_name("X");
    }

    Parser()
    {
        // Repeating a flag keeps the last value, as the hand-written parser (and argparse) did.
        app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        app.formatter(std::make_shared<Help>());
        app.allow_extras(); // reported by check_extras, with a suggestion
        app.set_version_flag("--version", [] { return version_text(); }, "print xtape's version and its libraries'");
        app.footer("Run \"xtape <command> --help\" for the options of a command.");

        CLI::App* summary = command("summary",
                                    "print Keras's summary table of a model (or JSON)\n\n"
                                    "Prints Keras's summary table (layers, output shapes, parameter counts) of a model "
                                    "saved with model.save (Keras 1.x, 2.x, tf.keras, Keras 3 legacy .h5, or xtape).",
                                    "MODEL.h5");
        summary->add_flag("--json", a.json,
                          "print the layers, their output shapes and parameter counts as one JSON object");

        CLI::App* predict = command(
          "predict",
          "run a model on an input dataset and write the predictions\n\n"
          "Runs the model (inference mode) on the input and writes the predictions as the float32 dataset \"y\" of "
          "OUT.h5 (or OUT.npy when the name ends in .npy). A model with several outputs writes the datasets y_0, "
          "y_1, ... (or, with --output-names, one named after each output layer) and needs an .h5 OUT.",
          "MODEL.h5");
        repeatable(predict
                     ->add_option("--input", a.input,
                                  "an HDF5 file (the dataset named by --dataset) or a .npy file; any float or integer "
                                  "type. A model with several inputs: once per input, or once for all of them (then "
                                  "one --dataset per input)")
                     ->required());
        predict->get_option("--input")->type_name("IN");
        repeatable(predict->add_option("--dataset", a.dataset,
                                       "dataset inside IN.h5 (default: x; x_0, x_1, ... for several inputs); once "
                                       "per input"));
        predict->add_option("--output", a.output, "the file to write; replaced atomically")
          ->required()
          ->type_name("OUT");
        predict->add_flag("--output-names", a.output_names, "name the datasets of several outputs after the output layers");
        batch_size(predict);

        CLI::App* evaluate = command(
          "evaluate",
          "print the loss and metrics of a model on a dataset as JSON\n\n"
          "Prints the loss and the compiled metrics over the data as one JSON object, e.g. {\"accuracy\": 0.91, "
          "\"loss\": 0.27}. The loss and metrics come from the model's training_config; --loss overrides the loss "
          "(and is required when the file has no training_config).",
          "MODEL.h5");
        data_options(evaluate);
        batch_size(evaluate);
        evaluate->add_option("--loss", a.loss, "a Keras loss name (mse, categorical_crossentropy, ...), for every output")
          ->type_name("NAME");

        CLI::App* fit = command(
          "fit",
          "train a model and save the trained model\n\n"
          "Trains the model with a progress bar and saves the whole model (weights, moving statistics, "
          "training_config and optimizer state) to OUT.h5. The model is compiled from its training_config, "
          "including the saved optimizer state; flags override it: --optimizer starts a fresh optimizer, "
          "--learning-rate sets the learning rate, --loss replaces the loss. A file without training_config needs "
          "--loss (the optimizer defaults to rmsprop, Keras's compile default).",
          "MODEL.h5");
        data_options(fit);
        fit->add_option("--output", a.output, "where to write the trained model")->required()->type_name("OUT.h5");
        fit->add_option("--epochs", a.epochs, "epochs to run (default: 1)")
          ->check(integer_at_least(1, INT_MAX))
          ->type_name("N");
        batch_size(fit);
        fit->add_option("--optimizer", a.optimizer, "a fresh optimizer: sgd, adam, rmsprop, adagrad, adamw, nadam")
          ->type_name("NAME");
        optional_number(fit, "--learning-rate", learning_rate, "the optimizer's learning rate",
                        number([](double v) { return v > 0; }, "> 0"));
        fit->add_option("--loss", a.loss, "a Keras loss name, for every output")->type_name("NAME");
        fit->add_flag("--no-shuffle", no_shuffle,
                      "take batches in order, as Keras's fit(shuffle=False); otherwise an .h5 file's batches come in "
                      "a new order every epoch (each batch holds consecutive rows of the file)");
        optional_number(fit, "--validation-split", validation_split,
                        "fraction of the samples, from the end, kept for validation",
                        number([](double v) { return v >= 0 && v < 1; }, "in [0, 1)"));
        optional_values["fit --seed"] = fit->add_option("--seed", seed,
                                                        "seed for shuffling and dropout (keras.utils.set_random_seed)")
                                          ->check(integer_at_least(0))
                                          ->type_name("S");
        fit->add_option("--history", a.history,
                        "also write the History as JSON, metric -> one value per epoch (as Python's "
                        "json.dump(history.history)); xtape plot draws it")
          ->type_name("H.json");

        CLI::App* gradcheck = command(
          "gradcheck",
          "check the model's gradients against central differences (float64)\n\n"
          "Loads the model in float64, runs it in training mode on the first N samples and compares the tape's "
          "gradient of the loss (regularization included) with respect to every trainable weight with central "
          "differences. Prints the worst relative error per weight; exits with status 1 when a weight fails. "
          "Dropout masks are drawn once and reused by every evaluation, so the differences measure the model, not "
          "the noise.",
          "MODEL.h5");
        data_options(gradcheck);
        gradcheck->add_option("--loss", a.loss, "the loss for every output (default: the model's training_config)")
          ->type_name("NAME");
        gradcheck->add_option("--samples", gradcheck_samples, "samples to use (default: 8)")
          ->check(integer_at_least(1))
          ->type_name("N");
        gradcheck
          ->add_option("--max-elements", a.max_elements,
                       "elements checked per weight: a weight with more is checked on N distinct elements drawn at "
                       "random (two forward passes each); 0 checks every element (default: 64)")
          ->check(integer_at_least(0))
          ->type_name("N");
        optional_values["gradcheck --seed"] =
          gradcheck->add_option("--seed", seed, "seed of that random choice (default: 12345)")
            ->check(integer_at_least(0, std::numeric_limits<unsigned>::max()))
            ->type_name("S");
        optional_number(gradcheck, "--eps", eps, "central difference step (default: 1e-6)",
                        number([](double v) { return v > 0; }, "> 0"));
        optional_number(gradcheck, "--max-rel-error", max_rel_error,
                        "largest relative error that passes (default: 1e-5)",
                        number([](double v) { return v >= 0; }, ">= 0"));
        optional_number(gradcheck, "--min-abs-error", min_abs_error,
                        "differences below this are ignored (default: the larger of 1e-8 and 32 ulp(loss) / (2 "
                        "eps), the rounding floor of central differences)",
                        number([](double v) { return v >= 0; }, ">= 0"));

        CLI::App* fold = command(
          "fold",
          "fold inference-mode BatchNormalization layers into the layer before them\n\n"
          "Folds every BatchNormalization that directly follows a Dense, Conv1D/2D/3D or DepthwiseConv1D/2D (no "
          "activation in between, the layer's output used only by it, on the layer's channel axis) into that "
          "layer's kernel and bias, for inference, and saves the folded model (without optimizer state) as an "
          "ordinary Keras file. Prints one JSON line: the pairs folded, the largest difference between the two "
          "models' predictions on N random inputs of the model's input shape, and the time predict took on them "
          "before and after (median of 5 runs).",
          "MODEL.h5");
        fold->add_option("--output", a.output, "where to write the folded model")->required()->type_name("OUT.h5");
        fold->add_option("--samples", fold_samples, "random inputs for the check and the timing (default: 256)")
          ->check(integer_at_least(1))
          ->type_name("N");
        batch_size(fold);

        CLI::App* plot = command(
          "plot",
          "draw the training curves of a CSVLogger file or a History JSON as a PNG or SVG picture\n\n"
          "Draws the training curves of a CSVLogger file (what fit's CSVLogger callback writes) or of a History "
          "JSON file (json.dump(history.history) in Python, xtape fit --history) with gnuplot: one panel per metric, "
          "the training values and the validation ones (the val_ columns) against the epochs. "
          "The format follows OUT's extension: .png or .svg.",
          "LOG.csv");
        plot->add_option("--output", a.output, "the picture to write (.png or .svg); replaced atomically")
          ->required()
          ->type_name("OUT");
        plot->add_option("--metrics", a.metrics, "the metrics to draw, e.g. loss,accuracy (default: every column)")
          ->delimiter(',')
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
          ->allow_extra_args(false)
          ->type_name("M,...");
        plot->add_option("--size", size, "picture size in pixels (default: 800 wide, 300 per panel)")
          ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                const auto x = s.find('x');
                char* end = nullptr;
                const long w = x == std::string::npos ? 0 : std::strtol(s.c_str(), &end, 10);
                const bool w_ok = x != std::string::npos && end == s.c_str() + x;
                const long h = w_ok ? std::strtol(s.c_str() + x + 1, &end, 10) : 0;
                if (!w_ok || *end != '\0' || w < 64 || h < 64 || w > 10000 || h > 10000)
                    return "expects WIDTHxHEIGHT in pixels, each in [64, 10000], got '" + s + "'";
                return "";
            },
            ""))
          ->type_name("WxH");
    }

    /// Unknown options and stray arguments that CLI11 left over (allow_extras), with a suggestion.
    void check_extras(const CLI::App* c) const
    {
        const std::vector<std::string> rest = c->remaining();
        if (rest.empty())
            return;
        std::vector<std::string> flags;
        for (const CLI::Option* o : c->get_options())
            if (!o->get_positional())
                flags.push_back(o->get_name());
        for (const auto& r : rest) {
            if (r.size() > 1 && r[0] == '-') {
                const std::string name = r.substr(0, r.find('='));
                throw UsageError((c->get_parent() ? c->get_name() + ": " : std::string()) + "unknown option " + name +
                                 suggestion(name, flags));
            }
        }
        throw UsageError((c->get_parent() ? c->get_name() + ": " : std::string()) + "unexpected argument '" +
                         rest.front() + "'");
    }

    Args parse(int argc, const char* const* argv)
    {
        if (argc < 2)
            throw UsageError(std::string("missing command (") + commands + "); see xtape --help");
        const std::string first = argv[1];
        std::vector<std::string> names;
        for (const CLI::App* c : app.get_subcommands({}))
            names.push_back(c->get_name());
        if (first.empty() || (first[0] != '-' && std::find(names.begin(), names.end(), first) == names.end()))
            throw UsageError("unknown command '" + first + "'" + suggestion(first, names) + "; the commands are " +
                             commands);
        try {
            app.parse(argc, argv);
        } catch (const CLI::CallForHelp&) {
            a.text = app.help();
            return a;
        } catch (const CLI::CallForVersion& e) {
            a.text = std::string(e.what()) + "\n";
            return a;
        } catch (const CLI::ParseError& e) {
            // An unknown option explains a missing value better than "--output is required".
            const auto parsed = app.get_subcommands();
            check_extras(&app);
            if (!parsed.empty())
                check_extras(parsed[0]);
            throw UsageError((parsed.empty() ? std::string() : parsed[0]->get_name() + ": ") + e.what());
        }
        check_extras(&app);
        const auto parsed = app.get_subcommands();
        if (parsed.empty())
            throw UsageError(std::string("missing command (") + commands + "); see xtape --help");
        const CLI::App* c = parsed[0];
        check_extras(c);
        a.command = c->get_name();
        a.shuffle = !no_shuffle;
        a.samples = a.command == "fold" ? fold_samples : gradcheck_samples;
        auto given = [&](const std::string& flag) {
            auto it = optional_values.find(a.command + " " + flag);
            return it != optional_values.end() && it->second->count() > 0;
        };
        if (given("--learning-rate"))
            a.learning_rate = learning_rate;
        if (given("--validation-split"))
            a.validation_split = validation_split;
        if (given("--eps"))
            a.eps = eps;
        if (given("--max-rel-error"))
            a.max_rel_error = max_rel_error;
        if (given("--min-abs-error"))
            a.min_abs_error = min_abs_error;
        if (given("--seed"))
            a.seed = seed;
        if (!size.empty()) {
            a.width = std::stoul(size.substr(0, size.find('x')));
            a.height = std::stoul(size.substr(size.find('x') + 1));
        }
        return a;
    }
};

} // namespace

Args parse_command_line(int argc, const char* const* argv)
{
    Parser p;
    return p.parse(argc, argv);
}

std::string version_text()
{
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    const char* blas = openblas_get_config();
    return std::string("xtape ") + XTAPE_VERSION + "\nHDF5 " + std::to_string(major) + "." + std::to_string(minor) +
           "." + std::to_string(release) + "\n" + (blas ? blas : "OpenBLAS (version unknown)") + "\nxtensor " +
           std::to_string(XTENSOR_VERSION_MAJOR) + "." + std::to_string(XTENSOR_VERSION_MINOR) + "." +
           std::to_string(XTENSOR_VERSION_PATCH) + ", xtensor-blas " + std::to_string(XTENSOR_BLAS_VERSION_MAJOR) +
           "." + std::to_string(XTENSOR_BLAS_VERSION_MINOR) + "." + std::to_string(XTENSOR_BLAS_VERSION_PATCH) +
           "\nCLI11 " + CLI11_VERSION;
}

} // namespace xtape::cli
