// Training curves as pictures: the CSVLogger file of a run, read back, and drawn by gnuplot (one
// panel per metric, training and validation curves against the epochs), either from the file
// (`xtape plot LOG.csv --output curves.png`) or live by the PlotHistory callback.
//
// Note [Plotting with gnuplot]
// The picture is made by the gnuplot program (Debian's gnuplot-nox), fed a script on its standard
// input, not by a plotting library linked into xtape: gnuplot's pngcairo and svg terminals draw
// anti-aliased PNG and SVG with fonts, legends and multi-panel layouts from a dozen lines of
// script; PLplot would add a library dependency (and its drivers as run-time plug-ins) to every
// program linking xtape, for pictures that only a few programs draw. The price is a run-time
// dependency that may be missing: plot_training_curves then throws an IOError naming gnuplot.
// The picture is written through io::write_atomically, so an image viewer watching the file
// never sees half a PNG.
#pragma once

#include "framework/callbacks.hpp"

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace xtape {

/// The columns of a CSVLogger file. Missing values ("NA", empty) are NaN.
struct TrainingLog {
    std::string path;                 ///< where it was read from (the title of the picture)
    std::vector<double> epochs;       ///< the "epoch" column + 1 (Keras counts from 0, its progress bar from 1)
    std::vector<std::string> columns; ///< the numeric columns other than "epoch", in the file's order
    std::map<std::string, std::vector<double>> values; ///< column -> one value per row

    /// The metrics to draw: every column that is not a "val_" column, then the "val_" columns
    /// without a training column ("val_loss" alone gives the panel "loss").
    std::vector<std::string> metrics() const;
};

/// Reads the CSV file CSVLogger writes (header "epoch,<keys...>", Python's csv quoting,
/// "\r\n" or "\n" rows, "NA" for a missing value), or a History JSON file (a file starting with
/// '{' or '[': metric -> one value per epoch, as json.dump(history.history) writes; Note [History JSON]
/// in training_curves.cpp).
///   requires: a readable file whose rows have as many fields as its header (IOError naming the
///             file and the line otherwise) and at least one numeric column besides "epoch"
///             (ValueError). Columns holding text are left out.
TrainingLog read_training_log(const std::string& path, char separator = ',');

/// What plot_training_curves draws and how large.
struct PlotOptions {
    /// The metrics to draw (panels, in this order); empty: log.metrics(). A "val_" name stands for
    /// its metric.
    std::vector<std::string> metrics;
    /// Size of the whole picture in pixels; 0: 800 wide, 300 high per panel.
    std::size_t width = 0, height = 0;
    /// The picture's title; empty: the log's file name.
    std::string title;
    /// The gnuplot program (a name looked up in PATH, or a path).
    std::string gnuplot = "gnuplot";
};

/// Draws `log` into `output` (.png: pngcairo, .svg: svg), one panel per metric with its training
/// curve and, when the log has one, its validation curve ("val_" column), against the epochs, with
/// axis labels, a legend and the title. Written atomically (Note [Plotting with gnuplot]).
///   requires: output ends in .png or .svg (ValueError); every requested metric is a column of
///             the log (ValueError listing the columns); gnuplot can be run (IOError naming it);
///             gnuplot succeeds (IOError with its first error line).
void plot_training_curves(const TrainingLog& log, const std::string& output, const PlotOptions& options = {});

/// Redraws the training curves into `path` at the end of every epoch, so a long run can be watched
/// in an image viewer. It keeps its own copy of the epoch logs (no CSV file needed) and checks at
/// train begin that gnuplot can be run, so a missing gnuplot stops fit before the first epoch.
template <class T>
class PlotHistory : public Callback<T> {
public:
    /// Draws into `path` (.png or .svg) with `options`.
    explicit PlotHistory(std::string path, PlotOptions options = {});
    /// Checks the picture's name and that gnuplot can be run; starts a new log.
    void on_train_begin(Logs&) override;
    /// Adds the epoch's logs and redraws the picture.
    void on_epoch_end(int epoch, Logs& logs) override;

private:
    std::string m_path;
    PlotOptions m_options;
    TrainingLog m_log;
};

/// Writes history.history as one JSON object, metric -> one value per epoch (what Python's
/// json.dump(history.history) writes; a NaN or infinity as null), atomically; read_training_log reads it.
template <class T>
void save_history_json(const History<T>& history, const std::string& path);

/// Whether `program` (a name looked up in PATH, or a path) can be executed.
bool can_run_program(const std::string& program);

} // namespace xtape
