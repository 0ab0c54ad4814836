// BackupAndRestore: Keras's keras.callbacks.BackupAndRestore, so that a training job killed
// midway (preempted, out of memory, SIGKILL) continues where it was when fit runs again.
//
//   auto backup = std::make_shared<BackupAndRestore<float>>("/scratch/run1/backup");
//   fo.callbacks.push_back(backup);
//   model.fit(x, y, fo);   // started again after a kill: resumes from the last backup
//
// What a backup holds (Note [One backup file]): the model's weights (trainable and not), the
// optimizer's state (iterations and slots), the position in fit (epoch, batches of that epoch
// done, the epoch's sample order), and the random generators' state: the global generator that
// draws the shuffling order and every layer's own (dropout masks). A run resumed from a backup
// therefore continues with the same numbers as the uninterrupted run: with the same data, seed
// and thread count its final weights are bit-identical (tests/test_backup_and_restore.cpp).
//
// Differences from Keras: Keras restarts an interrupted epoch from its first batch; xtape skips
// the batches done (the metrics of that epoch then cover only the batches run after the restart).
// Keras writes latest.weights.h5 and training_metadata.json, two files that a kill between the
// two writes leaves out of step; xtape writes one file, atomically. The learning rate set by a
// callback (ReduceLROnPlateau) is not part of the backup (as in Keras).
#pragma once

#include "framework/callbacks.hpp"

#include <cstdint>
#include <string>

namespace xtape {

/// Keras's BackupAndRestore callback: backs up a training run and resumes it (see above).
template <class T>
class BackupAndRestore : public Callback<T> {
public:
    /// Runs on every rank of a data-parallel fit: each restores the backup (rank 0 alone writes it).
    bool chief_only() const override { return false; }
    /// save_freq: "epoch" (a backup at each epoch end) or a positive number of batches ("100").
    /// delete_checkpoint: remove the backup when fit ends without an error (a run stopped by a
    /// callback, e.g. EarlyStopping, ended normally too).
    /// requires: a non-empty backup_dir, a valid save_freq (ValueError with Keras's wording).
    BackupAndRestore(std::string backup_dir, std::string save_freq = "epoch", bool delete_checkpoint = true);

    /// Restores the backup when there is one. requires: the model is built (ValueError, Keras's
    /// message) and of the backup's structure (ValueError naming the file otherwise).
    void on_train_begin(Logs&) override;
    void on_train_batch_end(int batch, Logs& logs) override;
    void on_epoch_end(int epoch, Logs& logs) override;
    void on_train_end(Logs&) override;

    /// The backup file: backup_dir + "/backup.h5".
    std::string backup_path() const;
    /// Whether on_train_begin of the last fit restored a backup.
    bool restored() const { return m_restored; }

private:
    void save(int epoch, std::int64_t step, bool with_order);
    void restore();

    std::string m_dir;
    std::int64_t m_save_every = 0; // batches; 0 means "epoch"
    bool m_delete;
    std::int64_t m_batches_since_save = 0;
    bool m_restored = false;
};

} // namespace xtape
