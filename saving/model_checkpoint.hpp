// ModelCheckpoint: Keras's keras.callbacks.ModelCheckpoint writing Keras HDF5 files.
//
//   ModelCheckpointOptions o;
//   o.monitor = "val_loss"; o.save_best_only = true;
//   auto ckpt = std::make_shared<ModelCheckpoint<float>>("ckpt/model-{epoch:02d}-{val_loss:.2f}.h5", o);
//   fo.callbacks.push_back(ckpt);
//
// The file path is formatted like Python's str.format with epoch (counted from 1), batch
// (counted from 1, when saving every N batches) and every log value as fields; format specs
// such as {epoch:02d}, {val_loss:.4f}, {loss:e} or {acc:>8.3f} follow Python's mini-language.
// Saving goes through save_model / save_weights, so every write is atomic: a crash during a
// checkpoint never destroys the previous checkpoint. Missing parent folders are created.
// With several processes it runs on every rank, since save_model is a collective call (rank 0
// writes, Note [Saving on rank 0] in framework/collective.hpp); only rank 0 prints.
#pragma once

#include "framework/callbacks.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace xtape {

/// keras.callbacks.ModelCheckpoint's arguments with Keras's defaults (monitor "val_loss", save every epoch).
struct ModelCheckpointOptions {
    std::string monitor = "val_loss";
    /// 0 silent; 1 prints Keras's "Epoch 3: val_loss improved from 0.41234 to 0.39876, saving model to ...".
    int verbose = 0;
    /// Save only when `monitor` improves on the best value seen so far (a missing monitor value
    /// writes a warning to stderr and skips that save, as Keras does).
    bool save_best_only = false;
    /// save_weights (Keras's weights-only layout) instead of save_model.
    bool save_weights_only = false;
    /// "auto", "min" or "max". auto: the metric's direction when the model knows it, else Keras's
    /// rule (max when the name contains "acc" or starts with "fmeasure", min otherwise).
    std::string mode = "auto";
    /// "epoch" or a positive number of batches as a string ("100").
    std::string save_freq = "epoch";
    /// The best value to beat before the first save (save_best_only).
    std::optional<double> initial_value_threshold;
};

template <class T>
/// keras.callbacks.ModelCheckpoint(filepath, ...): saves the model (or its weights) to a formatted path during fit.
class ModelCheckpoint : public Callback<T> {
public:
    /// requires: a valid mode and save_freq (ValueError otherwise, with Keras's wording).
    ModelCheckpoint(std::string filepath, ModelCheckpointOptions options = {});

    void on_train_begin(Logs&) override;
    void on_epoch_begin(int epoch, Logs&) override { m_current_epoch = epoch; }
    void on_train_batch_end(int batch, Logs& logs) override;
    void on_epoch_end(int epoch, Logs& logs) override;

    /// The best monitored value so far (save_best_only), initial_value_threshold or +-inf before the first.
    double best() const { return m_best; }
    /// The path of the last file written ("" before the first save).
    const std::string& last_saved() const { return m_last_saved; }

private:
    void save(int epoch, std::optional<int> batch, const Logs& logs);
    bool improves(double current) const;

    std::string m_filepath;
    ModelCheckpointOptions m_opt;
    std::int64_t m_save_every = 0; // batches; 0 means "epoch"
    std::int64_t m_batches_since_save = 0;
    int m_current_epoch = 0;
    int m_sign = 0; // -1 lower is better, +1 higher is better, 0 decided at train begin
    double m_best = 0;
    std::string m_last_saved;
};

/// Python's str.format for checkpoint paths: "{epoch:02d}" and "{val_loss:.2f}" style fields;
/// "{{" and "}}" are literal braces. `epoch` and `batch` are given as Keras counts them here
/// (already +1). A field with no value gives KeyError ("Failed to format this callback
/// filepath: ..."), a spec Python would refuse gives ValueError.
std::string format_checkpoint_path(const std::string& pattern, int epoch, std::optional<int> batch, const Logs& logs);

} // namespace xtape
