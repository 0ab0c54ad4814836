// Batch sources: what fit, evaluate and predict iterate over (Keras 3's PyDataset). A source says
// how many batches an epoch has and gives batch i; it may reorder its batches between epochs.
// In-memory arrays are one source (ArrayBatches, what fit(x, y) builds); an HDF5 file read a
// batch at a time is another (io::H5Batches, framework/io/hdf5_batches.hpp); users write their
// own for data that does not fit in memory or is made on the fly:
//
//   struct Squares : BatchSource<float> {
//       std::size_t num_batches() const override { return 100; }
//       Batch<float> get_batch(std::size_t i) override {
//           array_t<float> x = ..., y = ...;               // a batch of 32 samples
//           return { { std::move(x) }, { std::move(y) } };
//       }
//   };
//   Squares data;
//   model.fit(data, fo);   model.evaluate(data);   model.predict(data);
//
// Note [Batch sources and data-parallel training]: with several processes every rank asks its
// source for the same batch (every rank holds the same source, as every rank holds the whole
// arrays) and takes its contiguous share of it (Note [Data-parallel training]); a source that
// shuffles must draw the same order on every rank (io::H5Batches and ArrayBatches do: a seed
// or rank 0's order).
#pragma once

#include "framework/errors.hpp"
#include "framework/tensor.hpp"

#include <cstddef>
#include <optional>
#include <vector>

namespace xtape {

/// One batch: the arrays of every model input, of every output's targets and, optionally, sample
/// weights, each with the batch's samples on its first axis.
template <class T>
struct Batch {
    /// One array per model input, in the model's input order.
    std::vector<array_t<T>> x;
    /// One array per model output (predict ignores them; a source for predict may leave it empty).
    std::vector<array_t<T>> y;
    /// None, one for every output, or one per output (an empty optional: that output unweighted).
    std::vector<std::optional<array_t<T>>> sample_weight;
};

/// Keras's PyDataset: a sequence of batches.
template <class T>
class BatchSource {
public:
    virtual ~BatchSource() = default;
    /// The number of batches in an epoch (Keras's __len__ / num_batches).
    virtual std::size_t num_batches() const = 0;
    /// Batch `index` of this epoch (Keras's __getitem__).
    ///   requires: index < num_batches().
    ///   ensures:  the arrays of a batch have the same number of samples, at least one.
    virtual Batch<T> get_batch(std::size_t index) = 0;
    /// Called before each epoch of fit (after the callbacks' on_epoch_begin) and before evaluate and
    /// predict: a source that shuffles draws its order here.
    virtual void on_epoch_begin() {}
    /// Called after each epoch of fit (before validation) and after evaluate and predict.
    virtual void on_epoch_end() {}
    /// This epoch's order, which a backup saves (BackupAndRestore); empty when the source keeps none.
    /// A source that returns one resumes an interrupted epoch exactly through set_epoch_order.
    virtual std::vector<std::size_t> epoch_order() const { return {}; }
    /// Resuming an interrupted epoch: puts back the order epoch_order() gave, instead of
    /// on_epoch_begin() drawing a new one (the generators are already past that draw).
    ///   requires: an order this kind of source gave (ValueError otherwise).
    virtual void set_epoch_order(const std::vector<std::size_t>& order)
    {
        if (!order.empty())
            throw ValueError("this batch source keeps no epoch order, so it cannot resume a shuffled epoch");
    }
};

/// Rows [begin, begin + count) of `a` (its first axis), as a new array.
///   requires: begin + count <= a.shape()[0], a.dimension() >= 1.
template <class T>
array_t<T> take_rows(const array_t<T>& a, std::size_t begin, std::size_t count);

/// In-memory arrays as a batch source: rows [begin, end) in batches of `batch_size` (the last may
/// be smaller), in order or, with `shuffle`, in a fresh permutation of the rows every epoch drawn
/// serially from the global generator in on_epoch_begin (rank 0's permutation under MPI). The
/// arrays are viewed, not copied: they must outlive the source.
template <class T>
class ArrayBatches : public BatchSource<T> {
public:
    /// One pointer per input / output; sample weights: none, or one per output (null: unweighted).
    ///   requires: every array has at least `end` rows, batch_size >= 1 (ValueError otherwise).
    ArrayBatches(std::vector<const array_t<T>*> x, std::vector<const array_t<T>*> y,
                 std::vector<const array_t<T>*> sample_weight, std::size_t batch_size, bool shuffle = false,
                 std::size_t begin = 0, std::optional<std::size_t> end = std::nullopt);
    /// ceil(rows / batch_size).
    std::size_t num_batches() const override { return (m_count + m_batch_size - 1) / m_batch_size; }
    /// Batch `index`: rows of this epoch's order, gathered into new arrays.
    Batch<T> get_batch(std::size_t index) override;
    /// With shuffle: draws this epoch's permutation of the rows.
    void on_epoch_begin() override;
    /// With shuffle: this epoch's permutation (row offsets); empty without shuffle.
    std::vector<std::size_t> epoch_order() const override { return m_order; }
    /// requires: empty, or a permutation of [0, num_samples()) (ValueError otherwise).
    void set_epoch_order(const std::vector<std::size_t>& order) override;
    /// The number of rows it serves.
    std::size_t num_samples() const { return m_count; }

private:
    std::vector<const array_t<T>*> m_x, m_y, m_sample_weight;
    std::size_t m_batch_size, m_begin, m_count;
    bool m_shuffle;
    std::vector<std::size_t> m_order; ///< row offsets from m_begin; empty: in order
};

} // namespace xtape
