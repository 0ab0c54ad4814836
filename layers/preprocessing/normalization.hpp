// Normalization: Keras's keras.layers.Normalization preprocessing layer.
//
//   Normalization<float> norm;                 // axis -1: a mean and variance per feature
//   norm.adapt(train_x);                       // or norm.adapt({batch0, batch1, ...}): one pass
//   Tensor<float> y = norm(x);                 // (x - mean) / max(sqrt(variance), 1e-7)
//
// `axis` lists the axes that keep their own statistics (Keras: an int, a tuple, or None for one
// mean and variance over everything); the others are reduced. Given `mean` and `variance` (a
// scalar, or an array aligned right to the kept axes) the layer has no weights; otherwise it has
// Keras's three non-trainable weights mean, variance (kept axes' shape) and count (shape ()); adapt
// sets mean and variance (Keras 3 leaves count at 0: it is kept for older files) and they save and
// load in that order. `invert` maps back: mean + x * max(sqrt(variance), 1e-7).
//
// Note [Normalization adapt]: adapt computes, per kept position, the count, the mean and M2 (the
// sum of squared deviations) of each batch in double by two passes over the batch, and merges the
// batches by Chan et al.'s pairwise formula (delta = mean_b - mean_a; mean += delta n_b / n;
// M2 += M2_b + delta^2 n_a n_b / n), so the variance never comes from E[x^2] - E[x]^2 and the
// result does not depend on how the data is split (equal up to double rounding; tested). The
// variance is biased (M2 / n), as numpy's np.var that Keras uses. Keras 3 replaces the statistics
// on every adapt call (it does not accumulate over calls); so does this layer.
//
// Before adapt, Keras 3 does not raise: the built layer holds mean 0 and variance 1 and passes the
// data through unchanged; this layer does the same. The errors Keras raises are kept: mean without
// variance (or the reverse), mismatching shapes, an axis outside [-ndim, ndim), an unknown kept
// dimension, and adapt with data whose kept axes differ from the built shape.
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// keras.layers.Normalization's arguments: kept axes (default -1), optional fixed mean and variance, invert.
struct NormalizationOptions {
    std::vector<int> axis{ -1 };  ///< kept axes; empty: Keras's axis=None (one mean and variance)
    std::optional<array_t<T>> mean, variance;
    bool invert = false;
    std::string name;             ///< empty: "normalization", "normalization_1", ...
};

template <class T>
/// keras.layers.Normalization: (x - mean) / max(sqrt(variance), 1e-7) with statistics given or computed by adapt().
class Normalization : public Layer<T> {
public:
    /// requires: mean and variance both given or both absent, of the same shape, of rank at most the
    ///           number of kept axes (Keras's ValueErrors otherwise).
    explicit Normalization(const NormalizationOptions<T>& options = {});
    /// Keras 3's and tf.keras's configs (axis an int, a list or null; mean/variance null, a number or
    /// nested lists; invert).
    static std::shared_ptr<Normalization> from_config(const json& config);
    json get_config() const override;

    /// Sets mean and variance from all of `data` (builds from its shape first).
    void adapt(const Tensor<T>& data);
    /// The same from batches, in one streaming pass (Note [Normalization adapt]).
    /// requires: at least one batch; every batch of the built rank and kept sizes (ValueError).
    void adapt(const std::vector<Tensor<T>>& batches);

    /// The statistics in use, in the broadcast shape (1 on reduced axes). requires: built.
    const array_t<T>& mean() const;
    /// The (biased) variance in use, in the broadcast shape (1 on reduced axes). requires: built.
    const array_t<T>& variance() const;

protected:
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// The built rank and the built sizes on the kept axes; other sizes may vary (ShapeError naming the layer).
    void check_input(const shape_t& x) const override;

private:
    NormalizationOptions<T> m_options;
    std::vector<std::size_t> m_keep;   ///< sorted kept axes (after build)
    shape_t m_keep_shape, m_broadcast; ///< kept axes' sizes; the input rank with 1 on reduced axes
    Variable<T> m_mean_w, m_variance_w, m_count_w;
    mutable array_t<T> m_mean, m_variance; ///< broadcast-shaped statistics (from the weights at each call)
};

} // namespace xtape
