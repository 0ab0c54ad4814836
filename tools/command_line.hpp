// The command line of the xtape tool, parsed by CLI11: what each subcommand takes, its --help,
// --version, and the checks of every value. Parsing is separate from running the command, so
// that fuzz/fuzz_cli_args.cpp can fuzz it on its own (Note [Fuzz targets]).
#pragma once

#include "framework/errors.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace xtape::cli {

/// A usage error (unknown command or option, a missing or bad value): exit status 2, like
/// argparse. The message names the command and the flag.
struct UsageError : ValueError {
    using ValueError::ValueError;
};

/// What the command line asks for. Numbers are checked (type and range) when parsed.
struct Args {
    /// summary, predict, evaluate, fit, gradcheck, fold or plot; empty when `text` is all.
    std::string command;
    /// --help or --version: print this and exit with status 0.
    std::string text;
    /// The positional file: MODEL.h5 (plot: LOG.csv or H.json).
    std::string model;
    std::string output;
    /// Repeatable options, every value in order (Note [Datasets of several inputs and outputs]).
    std::vector<std::string> input, dataset, x, y;
    std::string data, loss, optimizer;
    std::string history; ///< fit --history: where to write the History JSON
    std::size_t batch_size = 32;
    int epochs = 1;
    bool shuffle = true;       ///< false with --no-shuffle
    bool output_names = false; ///< predict --output-names
    bool json = false;         ///< summary --json
    std::optional<double> learning_rate, validation_split, eps, max_rel_error, min_abs_error;
    std::optional<std::uint64_t> seed;
    std::size_t samples = 0; ///< gradcheck: 8, fold: 256
    std::size_t max_elements = 64;
    std::vector<std::string> metrics; ///< plot --metrics, split at commas
    std::size_t width = 0, height = 0; ///< plot --size WxH (0: the plot's default)
};

/// Parses argv (argv[0] is the program). Throws UsageError on a bad command line.
Args parse_command_line(int argc, const char* const* argv);

/// "xtape 0.2.0" and the versions of the libraries it runs on (HDF5, OpenBLAS, xtensor, CLI11).
std::string version_text();

} // namespace xtape::cli
