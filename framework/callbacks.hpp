// Callbacks: hooks the training loop calls around epochs and batches, as Keras's
// keras.callbacks. Write your own by deriving from Callback<T> and overriding what you need:
//
//   struct PrintLoss : Callback<float> {
//       void on_epoch_end(int epoch, Logs& logs) override { std::cout << epoch << ' ' << logs["loss"] << '\n'; }
//   };
//   FitOptions<float> fo; fo.callbacks = { std::make_shared<PrintLoss>() }; model.fit(x, y, fo);
//
// Logs map names to values: "loss" and the compiled metrics ("accuracy", ...), with "val_"
// versions at the end of an epoch when there is validation data. One Logs object is passed
// to every callback in turn, so a callback may add entries (ReduceLROnPlateau adds
// "learning_rate") that the callbacks after it (History, the progress bar) see.
// Callbacks run in the order given, then History, then the progress bar (Keras's order).
#pragma once

#include "framework/tensor.hpp"

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace xtape {

using Logs = std::map<std::string, double>;

template <class T>
class Model;

/// What fit/evaluate/predict tell their callbacks (Keras's callback.params).
struct CallbackParams {
    int verbose = 1;        ///< 0 silent, 1 progress bar, 2 one line per epoch
    int epochs = 1;
    std::int64_t steps = 0; ///< batches per epoch (0: unknown)
};

template <class T>
/// keras.callbacks.Callback: the base of training hooks; every hook does nothing by default.
class Callback {
public:
    /// Destroys the callback (held through CallbackPtr by the options that list it).
    virtual ~Callback() = default;

    /// Called by fit/evaluate/predict before the first hook with verbose, epochs and steps.
    virtual void set_params(const CallbackParams& params) { m_params = params; }
    /// The model being trained; callbacks may read and change it (weights, stop_training,
    /// the optimizer's learning rate). Not owned.
    virtual void set_model(Model<T>* model) { m_model = model; }
    /// The model set by set_model (null outside fit/evaluate/predict).
    Model<T>* model() const { return m_model; }
    /// The parameters set by set_params (Keras's callback.params).
    const CallbackParams& params() const { return m_params; }

    /// Called once at the start of fit, before the first epoch; the logs are empty.
    virtual void on_train_begin(Logs&) {}
    /// Called once at the end of fit (also after an early stop); the logs are the last epoch's.
    virtual void on_train_end(Logs&) {}
    /// Called at the start of each epoch (`epoch` counts from 0, initial_epoch first).
    virtual void on_epoch_begin(int /*epoch*/, Logs&) {}
    /// Called at the end of each epoch with that epoch's training and "val_" logs; a callback may add entries.
    virtual void on_epoch_end(int /*epoch*/, Logs&) {}
    /// `batch` counts from 0 within the epoch; the logs of batch_end hold the running values
    /// of the epoch so far.
    virtual void on_train_batch_begin(int /*batch*/, Logs&) {}
    /// Called after each training step with the running logs of the epoch so far.
    virtual void on_train_batch_end(int /*batch*/, Logs&) {}
    /// Called at the start of evaluate and of fit's validation at each epoch end.
    virtual void on_test_begin(Logs&) {}
    /// Called at the end of evaluate or of a validation pass, with its final logs.
    virtual void on_test_end(Logs&) {}
    /// Called before each evaluation batch (`batch` counts from 0).
    virtual void on_test_batch_begin(int /*batch*/, Logs&) {}
    /// Called after each evaluation batch with the running logs.
    virtual void on_test_batch_end(int /*batch*/, Logs&) {}
    /// Called at the start of predict.
    virtual void on_predict_begin(Logs&) {}
    /// Called at the end of predict.
    virtual void on_predict_end(Logs&) {}
    /// Called before each prediction batch (`batch` counts from 0).
    virtual void on_predict_batch_begin(int /*batch*/, Logs&) {}
    /// Called after each prediction batch; the logs are empty.
    virtual void on_predict_batch_end(int /*batch*/, Logs&) {}
    /// True for callbacks that print or write files (progress bar, CSV log, checkpoints): in
    /// data-parallel training only rank 0 runs them; every other callback runs on every rank,
    /// on logs that are the same everywhere (framework/collective.hpp).
    virtual bool chief_only() const { return false; }

protected:
    Model<T>* m_model = nullptr;
    CallbackParams m_params;
};

template <class T>
using CallbackPtr = std::shared_ptr<Callback<T>>;

/// keras.utils.Progbar. verbose 1: "469/469 ━━━━━━━━━━━━━━━━━━━━ 3s 6ms/step - accuracy: 0.8123 - loss: 0.5012".
/// On a terminal the line updates in place (carriage return, at most every `interval` seconds) with Keras's
/// colours; when the output is not a terminal, plain lines without escape codes are written:
/// the final line of each run and, for long runs, one line every 10 seconds (Keras would write
/// a line every 0.05 s, which floods log files). verbose 2: one line at the end,
/// "469/469 - 3s - 6ms/step - accuracy: 0.8123 - loss: 0.5012".
/// Values are averaged over steps unless the update is final (Keras's "stateless" metrics),
/// shown with 4 decimals, or in %.4e below 1e-3.
class Progbar {
public:
    using Values = std::vector<std::pair<std::string, double>>;

    /// target <= 0: unknown number of steps. `out` null: std::cout. dynamic_display -1: decide by
    /// isatty(stdout) (or false for another stream), 0/1 force it.
    explicit Progbar(std::int64_t target, int width = 20, int verbose = 1, double interval = 0.05,
                     std::string unit_name = "step", std::ostream* out = nullptr, int dynamic_display = -1);

    /// finalize -1: current >= target.
    void update(std::int64_t current, const Values& values = {}, int finalize = -1);
    /// Advances the bar by `n` steps with `values` (update(seen + n, values)).
    void add(std::int64_t n, const Values& values = {}) { update(m_seen + n, values); }
    /// The total number of steps; <= 0 when unknown.
    std::int64_t target() const { return m_target; }
    /// Sets the total number of steps (the logger sets it at the end of a run whose length was unknown).
    void set_target(std::int64_t t) { m_target = t; }

    /// For tests: replaces the clock (seconds, monotonic).
    void set_clock(std::function<double()> clock);

private:
    double now() const;
    double step_duration(std::int64_t current, double now);
    std::string format_values(bool abs_threshold) const;

    std::int64_t m_target;
    int m_width, m_verbose;
    double m_interval;
    std::string m_unit;
    std::ostream* m_out;
    bool m_dynamic;
    std::function<double()> m_clock;
    std::int64_t m_seen = 0;
    std::vector<std::string> m_order;
    std::map<std::string, std::pair<double, double>> m_values; // name -> (weighted sum, count)
    double m_start = 0, m_last_update = 0;
    std::optional<double> m_after_first_step;
    std::size_t m_prev_width = 0;
};

/// Prints "Epoch i/n" and a Progbar per epoch (training), or per run (evaluate, predict).
/// Inside fit, validation is silent (Keras).
template <class T>
class ProgbarLogger : public Callback<T> {
public:
    bool chief_only() const override { return true; }
    /// `out` null: std::cout; dynamic_display as Progbar's (-1: in-place updates on a terminal only).
    explicit ProgbarLogger(std::ostream* out = nullptr, int dynamic_display = -1)
        : m_out(out)
        , m_dynamic(dynamic_display)
    {
    }
    void set_params(const CallbackParams& params) override;
    void on_train_begin(Logs&) override { m_in_fit = true; }
    void on_epoch_begin(int epoch, Logs&) override;
    void on_epoch_end(int epoch, Logs& logs) override;
    void on_train_batch_end(int batch, Logs& logs) override { update(batch, logs); }
    void on_test_begin(Logs&) override;
    void on_test_batch_end(int batch, Logs& logs) override;
    void on_test_end(Logs& logs) override;
    void on_predict_begin(Logs&) override { reset(); }
    void on_predict_batch_end(int batch, Logs&) override;
    void on_predict_end(Logs&) override;

    /// For tests: the clock of every progress bar this logger creates.
    void set_clock(std::function<double()> clock) { m_clock = std::move(clock); }

private:
    void reset();
    void update(int batch, const Logs& logs);
    void finalize(const Logs& logs);
    Progbar& bar();

    std::ostream* m_out;
    int m_dynamic;
    std::function<double()> m_clock;
    std::unique_ptr<Progbar> m_bar;
    std::int64_t m_seen = 0;
    std::int64_t m_target = 0;
    int m_verbose = 1;
    int m_epochs = 1;
    bool m_in_fit = false;
};

/// Records the epoch logs: history["loss"][i] is the loss of the i-th epoch run.
template <class T>
class History : public Callback<T> {
public:
    std::vector<int> epoch;
    std::map<std::string, std::vector<double>> history;

    void on_train_begin(Logs&) override { epoch.clear(); }
    void on_epoch_end(int e, Logs& logs) override
    {
        epoch.push_back(e);
        for (const auto& kv : logs)
            history[kv.first].push_back(kv.second);
    }
};

/// keras.callbacks.EarlyStopping's arguments with Keras 3's defaults (monitor "val_loss", patience 0).
struct EarlyStoppingOptions {
    std::string monitor = "val_loss";
    double min_delta = 0;
    int patience = 0;
    int verbose = 0;
    std::string mode = "auto";      ///< "auto", "min" or "max"
    std::optional<double> baseline; ///< stop unless the monitored value beats this
    bool restore_best_weights = false;
    int start_from_epoch = 0;
};

/// Stops training when the monitored value stopped improving for `patience` epochs (Keras 3's
/// rules: an improvement beats the best by more than min_delta; with restore_best_weights
/// the weights of the best epoch are set back when training ends, also when it was not stopped
/// early). Mode "auto": min for losses, the metric's direction otherwise (ValueError if
/// unknown). A missing monitor value writes a warning to stderr and skips the epoch.
template <class T>
class EarlyStopping : public Callback<T> {
public:
    /// An unknown mode warns on stderr and falls back to "auto", as Keras does.
    explicit EarlyStopping(EarlyStoppingOptions options = {});
    void on_train_begin(Logs&) override;
    void on_epoch_end(int epoch, Logs& logs) override;
    void on_train_end(Logs&) override;

    /// The epoch at which training was stopped, 0 when it was not.
    int stopped_epoch() const { return m_stopped_epoch; }
    /// The epoch with the best monitored value so far.
    int best_epoch() const { return m_best_epoch; }
    /// The best monitored value so far.
    double best() const { return m_best; }
    /// Epochs since the last improvement.
    int wait() const { return m_wait; }

private:
    bool improves(double value, double reference) const;
    void set_monitor_op();

    EarlyStoppingOptions m_opt;
    int m_sign = 0; // -1: lower is better, +1: higher is better, 0: not decided yet
    double m_delta = 0;
    double m_best = 0;
    int m_wait = 0, m_stopped_epoch = 0, m_best_epoch = 0;
    std::optional<std::vector<array_t<T>>> m_best_weights;
};

/// Streams epoch logs to a CSV file: the header "epoch" then the sorted log keys (fixed by
/// the first epoch; a key missing later is written "NA"), values written as Python's repr of
/// a float, rows ending in "\r\n" as Python's csv module writes them. append=true keeps an
/// existing file and writes the header only if the file is empty.
/// Every epoch replaces the file atomically with all its rows so far (framework/io/atomic_file.hpp;
/// the rows are few): a crash or a failed write (IOError naming the file) leaves the file as the
/// previous epoch wrote it, never a torn row. train begin writes the starting file (empty, or
/// the existing one when appending), so an unwritable path fails before the first epoch.
template <class T>
class CSVLogger : public Callback<T> {
public:
    bool chief_only() const override { return true; }
    /// CSVLogger(filename, separator = ",", append = false); the file is opened at on_train_begin (IOError if it cannot be).
    explicit CSVLogger(std::string filename, std::string separator = ",", bool append = false);
    void on_train_begin(Logs&) override;
    void on_epoch_end(int epoch, Logs& logs) override;
    void on_train_end(Logs&) override;

private:
    std::string m_filename, m_sep;
    bool m_append;
    bool m_header = true;
    bool m_open = false;
    std::string m_content; ///< the whole file as the last epoch wrote it
    std::vector<std::string> m_keys;
};

/// Stops training when the batch loss becomes NaN or infinite, printing Keras's
/// "Batch i: Invalid loss, terminating training".
/// Unlike Keras (which only stops, leaving the weights the bad step produced), xtape also
/// restores the model's weights (trainable and non-trainable) and the optimizer's state (slots
/// and iteration count) from before the step that produced the bad loss: it copies both at every
/// batch begin. A NaN on the optimizer's very first step leaves the slots that step made.
template <class T>
class TerminateOnNaN : public Callback<T> {
public:
    void on_train_batch_begin(int batch, Logs&) override;
    void on_train_batch_end(int batch, Logs& logs) override;
    /// True once it stopped a training run.
    bool terminated() const { return m_terminated; }

private:
    std::vector<array_t<T>> m_saved;     ///< the model's weights before the batch
    std::vector<array_t<T>> m_opt_saved; ///< the optimizer's state before the batch (empty before its first step)
    bool m_terminated = false;
};

/// keras.callbacks.ReduceLROnPlateau's arguments with Keras's defaults (factor 0.1, patience 10, min_delta 1e-4).
struct ReduceLROnPlateauOptions {
    std::string monitor = "val_loss";
    double factor = 0.1;
    int patience = 10;
    int verbose = 0;
    std::string mode = "auto"; ///< "auto": max when the monitor's name contains "acc", else min
    double min_delta = 1e-4;
    int cooldown = 0;
    double min_lr = 0.0;
};

/// Multiplies the learning rate by `factor` when the monitored value did not improve by more
/// than min_delta for `patience` epochs (then waits `cooldown` epochs); never below min_lr.
/// Adds "learning_rate" to the epoch logs.
template <class T>
class ReduceLROnPlateau : public Callback<T> {
public:
    /// requires: factor < 1 (ValueError otherwise, as Keras).
    explicit ReduceLROnPlateau(ReduceLROnPlateauOptions options = {});
    void on_train_begin(Logs&) override { reset(); }
    void on_epoch_end(int epoch, Logs& logs) override;

private:
    void reset();
    bool improves(double value, double best) const;

    ReduceLROnPlateauOptions m_opt;
    bool m_max = false;
    double m_best = 0;
    int m_wait = 0, m_cooldown_counter = 0;
};

/// Sets the learning rate at each epoch begin to schedule(epoch, current learning rate);
/// adds "learning_rate" to the epoch logs.
template <class T>
class LearningRateScheduler : public Callback<T> {
public:
    /// `schedule` gets the epoch (from 0) and the current rate and returns the new rate; verbose 1 prints the change.
    explicit LearningRateScheduler(std::function<double(int epoch, double lr)> schedule, int verbose = 0)
        : m_schedule(std::move(schedule))
        , m_verbose(verbose)
    {
    }
    void on_epoch_begin(int epoch, Logs&) override;
    void on_epoch_end(int epoch, Logs& logs) override;

private:
    std::function<double(int, double)> m_schedule;
    int m_verbose;
};

/// Runs fit/evaluate/predict's callbacks in order (user callbacks, then History, then the
/// progress bar when asked for and the user gave none).
template <class T>
class CallbackList {
public:
    /// Adds a History (add_history, unless the list has one) and a ProgbarLogger (add_progbar, unless it has one), then sets `model` and `params` on each; ValueError for a null callback.
    CallbackList(std::vector<CallbackPtr<T>> callbacks, bool add_history, bool add_progbar, Model<T>* model,
                 const CallbackParams& params);

    /// The list's History: the user's or the one added (null when neither).
    const std::shared_ptr<History<T>>& history() const { return m_history; }
    /// Every callback in the order they run.
    const std::vector<CallbackPtr<T>>& callbacks() const { return m_callbacks; }

    /// Calls on_train_begin of every callback in order, on the same logs.
    void on_train_begin(Logs& logs) { each([&](Callback<T>& c) { c.on_train_begin(logs); }); }
    /// Calls on_train_end of every callback in order, on the same logs.
    void on_train_end(Logs& logs) { each([&](Callback<T>& c) { c.on_train_end(logs); }); }
    /// Calls on_epoch_begin of every callback in order, on the same logs.
    void on_epoch_begin(int e, Logs& logs) { each([&](Callback<T>& c) { c.on_epoch_begin(e, logs); }); }
    /// Calls on_epoch_end of every callback in order, on the same logs.
    void on_epoch_end(int e, Logs& logs) { each([&](Callback<T>& c) { c.on_epoch_end(e, logs); }); }
    /// Calls on_train_batch_begin of every callback in order, on the same logs.
    void on_train_batch_begin(int b, Logs& logs) { each([&](Callback<T>& c) { c.on_train_batch_begin(b, logs); }); }
    /// Calls on_train_batch_end of every callback in order, on the same logs.
    void on_train_batch_end(int b, Logs& logs) { each([&](Callback<T>& c) { c.on_train_batch_end(b, logs); }); }
    /// Calls on_test_begin of every callback in order, on the same logs.
    void on_test_begin(Logs& logs) { each([&](Callback<T>& c) { c.on_test_begin(logs); }); }
    /// Calls on_test_end of every callback in order, on the same logs.
    void on_test_end(Logs& logs) { each([&](Callback<T>& c) { c.on_test_end(logs); }); }
    /// Calls on_test_batch_begin of every callback in order, on the same logs.
    void on_test_batch_begin(int b, Logs& logs) { each([&](Callback<T>& c) { c.on_test_batch_begin(b, logs); }); }
    /// Calls on_test_batch_end of every callback in order, on the same logs.
    void on_test_batch_end(int b, Logs& logs) { each([&](Callback<T>& c) { c.on_test_batch_end(b, logs); }); }
    /// Calls on_predict_begin of every callback in order, on the same logs.
    void on_predict_begin(Logs& logs) { each([&](Callback<T>& c) { c.on_predict_begin(logs); }); }
    /// Calls on_predict_end of every callback in order, on the same logs.
    void on_predict_end(Logs& logs) { each([&](Callback<T>& c) { c.on_predict_end(logs); }); }
    /// Calls on_predict_batch_begin of every callback in order, on the same logs.
    void on_predict_batch_begin(int b, Logs& logs) { each([&](Callback<T>& c) { c.on_predict_batch_begin(b, logs); }); }
    /// Calls on_predict_batch_end of every callback in order, on the same logs.
    void on_predict_batch_end(int b, Logs& logs) { each([&](Callback<T>& c) { c.on_predict_batch_end(b, logs); }); }

private:
    template <class F>
    void each(F&& f)
    {
        for (auto& c : m_callbacks)
            f(*c);
    }
    std::vector<CallbackPtr<T>> m_callbacks;
    std::shared_ptr<History<T>> m_history;
};

/// Python's repr() of a float: the shortest digits that read back to the same double,
/// fixed notation for exponents in [-4, 16), else scientific ("1e-05"); "nan", "inf".
std::string python_float_repr(double v);

} // namespace xtape
