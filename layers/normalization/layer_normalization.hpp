// LayerNormalization: Keras's keras.layers.LayerNormalization on the fused op of
// framework/layer_norm.hpp.
//
//   LayerNormalization<float> ln;                       // axis -1, epsilon 1e-3, gamma and beta
//   LayerNormalizationOptions<float> o; o.axis = { 1, 2 };
//   Tensor<float> y = LayerNormalization<float>(o)(x);  // each sample over axes 1 and 2
//
// Each sample is normalized by the mean and biased variance of its elements on `axis`; gamma and
// beta span those axes (shape: their sizes in sorted order, Keras's (20, 30, 40) for axis [1, 2, 3]).
// Training and inference compute the same thing. rms_scaling (deprecated in Keras 3, which warns
// that it scales by the variance, not the root mean square) keeps Keras's numbers: y = gamma x /
// sqrt(var + eps), gamma only. Masks pass through unchanged (supports_masking, as in Keras).
#pragma once

#include "framework/layer.hpp"
#include "framework/layer_norm.hpp"
#include "layers/normalization/affine_params.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// keras.layers.LayerNormalization's arguments with Keras 3's defaults (axis -1, epsilon 1e-3, center and scale).
struct LayerNormalizationOptions {
    std::vector<int> axis{ -1 };
    bool axis_is_list = false; ///< Keras writes back the form it was given (an int or a list)
    double epsilon = 1e-3;
    bool rms_scaling = false;
    AffineParams<T> affine;    ///< center, scale, initializers, regularizers, constraints
    std::string name;          ///< empty: "layer_normalization", "layer_normalization_1", ...
    bool trainable = true;
};

template <class T>
/// keras.layers.LayerNormalization: each sample normalized by its own mean and variance over `axis`, then scaled and shifted.
class LayerNormalization : public Layer<T> {
public:
    /// requires: a non-empty axis, epsilon >= 0 (ValueError otherwise).
    explicit LayerNormalization(const LayerNormalizationOptions<T>& options = {});
    /// tf.keras's and Keras 3's configs (axis an int or a list, Keras 3's rms_scaling).
    static std::shared_ptr<LayerNormalization> from_config(const json& config);
    /// Keras 3's keys; after build, axis is the sorted list of non-negative axes (as Keras writes it).
    json get_config() const override;

    /// The arguments the layer was constructed with.
    const LayerNormalizationOptions<T>& options() const { return m_options; }
    /// The normalized axes, sorted and non-negative (after build).
    const std::vector<std::size_t>& axes() const { return m_axes; }
    /// requires: built with scale (or rms_scaling) / center (RuntimeError naming the layer otherwise).
    const Variable<T>& gamma() const;
    /// The offset over the normalized axes (RuntimeError unless built with center).
    const Variable<T>& beta() const;

protected:
    /// ValueError for an axis out of bounds ("is out of bounds") or repeated ("Duplicate axes").
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// The rank and the normalized axes must match the built shape; other axes may vary.
    void check_input(const shape_t& x) const override;

private:
    LayerNormalizationOptions<T> m_options;
    LayerNormSpec m_spec;
    std::vector<std::size_t> m_axes;
    Variable<T> m_gamma, m_beta;
    std::shared_ptr<ln::Workspace<T>> m_workspace;
};

} // namespace xtape
