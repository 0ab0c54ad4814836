// Batches of HDF5 datasets read from disk as training asks for them, for data larger than memory:
// a BatchSource (framework/batch_source.hpp) whose batch i is rows [i B, (i + 1) B) of every
// dataset, read as one hyperslab per dataset (HDF5 reads those rows only).
//
//   io::H5BatchOptions opt;
//   opt.batch_size = 256;
//   opt.shuffle = true;                                   // the order of the batches, each epoch
//   io::H5Batches<float> train({ { "train.h5", "x" } }, { { "train.h5", "y" } }, {}, opt);
//   model.fit(train, fo);
//
// Note [Shuffling batches of a file]: a batch is contiguous rows of the file, so that a read is
// one sequential hyperslab; shuffling permutes the order of the batches every epoch (the rows
// inside a batch and the batches' membership stay as in the file; shuffle the file once when
// writing it if its order is meaningful). The permutation comes from the source's own generator,
// seeded by H5BatchOptions::seed or, without one, by a seed drawn from the global generator at
// construction (rank 0's under MPI, so every rank reads the same batch at each step): a seeded
// run is reproducible, and the global generator is not touched during fit.
//
// Note [Prefetching a batch]: after returning batch i, get_batch starts reading the next batch
// of the epoch on a background thread (std::async), so the read overlaps the train step of
// batch i; the next call takes it when it asks for that batch, and otherwise waits for it,
// discards it and reads what it asked for. At most one batch is in flight, so memory holds two
// batches. HDF5 is not thread-safe here: every HDF5 call of this class (opening, reading,
// closing) holds io::hdf5_mutex(), in one place (H5Batches::locked).
#pragma once

#include "framework/batch_source.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/random.hpp"

#include <cstdint>
#include <future>
#include <optional>
#include <string>
#include <vector>

namespace xtape::io {

/// One array of a batch: a dataset (path inside the file) of an HDF5 file.
struct H5DatasetRef {
    std::string file, dataset;
};

/// Throws IOError "FILE: no dataset 'x' (the file's root holds: a, b)" unless `group` (the root
/// of `file`) holds the dataset: the message shows what a misspelt name should have been.
void require_dataset(const H5Group& group, const std::string& file, const std::string& dataset);

/// How H5Batches cuts, orders and reads the rows.
struct H5BatchOptions {
    std::size_t batch_size = 32;
    /// A new order of the batches every epoch (Note [Shuffling batches of a file]).
    bool shuffle = false;
    /// The shuffle's seed; none: drawn from the global generator at construction.
    std::optional<std::uint64_t> seed;
    /// Read the next batch in the background (Note [Prefetching a batch]).
    bool prefetch = true;
    /// Serve rows [begin, end) of the datasets only (end: none = all): a validation split.
    std::size_t begin = 0;
    std::optional<std::size_t> end;
};

/// HDF5 datasets as a BatchSource, read a batch at a time (the notes above).
template <class T>
class H5Batches : public BatchSource<T> {
public:
    /// The datasets of the inputs, the targets (none: for predict) and the sample weights (none,
    /// one for every output or one per output), converted to T when read.
    ///   requires: every dataset exists and holds numbers (IOError naming the file and dataset);
    ///             all have the same number of rows, at least one in [begin, end), and
    ///             batch_size >= 1 (ValueError naming the files, datasets and shapes).
    H5Batches(std::vector<H5DatasetRef> x, std::vector<H5DatasetRef> y = {},
              std::vector<H5DatasetRef> sample_weight = {}, H5BatchOptions options = {});
    /// Waits for the read in flight and closes the files (under the lock).
    ~H5Batches() override;
    H5Batches(const H5Batches&) = delete;
    H5Batches& operator=(const H5Batches&) = delete;

    /// ceil(rows / batch_size).
    std::size_t num_batches() const override { return (m_count + m_options.batch_size - 1) / m_options.batch_size; }
    /// Batch `index` of this epoch's order (IOError naming the file when a read fails).
    Batch<T> get_batch(std::size_t index) override;
    /// With shuffle: draws this epoch's order of the batches.
    void on_epoch_begin() override;
    /// The number of rows served.
    std::size_t num_samples() const { return m_count; }
    /// The order of the batches in this epoch (file batch of each index).
    const std::vector<std::size_t>& order() const { return m_order; }
    /// How many batches were served from a background read (Note [Prefetching a batch]).
    std::size_t prefetched() const { return m_prefetched; }

private:
    struct Dataset {
        H5DatasetRef ref;
        H5Group root;
        shape_t shape;
    };
    /// Runs f holding io::hdf5_mutex(): every HDF5 call of this class goes through here.
    template <class F>
    static auto locked(F&& f);
    std::vector<Dataset> open(const std::vector<H5DatasetRef>& refs, const char* what);
    /// Reads batch `file_batch` of the file (not of the epoch's order).
    Batch<T> read(std::size_t file_batch) const;
    /// Waits for the read in flight, if any, and forgets it.
    void drop_pending() noexcept;

    std::vector<Dataset> m_x, m_y, m_sample_weight;
    H5BatchOptions m_options;
    std::size_t m_count = 0;
    rng_t m_rng;
    std::vector<std::size_t> m_order;
    std::future<Batch<T>> m_pending;
    std::size_t m_pending_index = 0;
    std::size_t m_prefetched = 0;
};

} // namespace xtape::io
