// GroupNormalization and UnitNormalization: Keras's keras.layers.GroupNormalization and
// keras.layers.UnitNormalization.
//
// GroupNormalization splits the channels (axis, default -1) into `groups` groups of consecutive
// channels and normalizes each sample's group over its channels and every other non-batch axis;
// gamma and beta are per channel, shape (C,). groups=-1 is instance normalization (one channel
// per group). Epsilon 1e-3. The statistics run on the layer-norm kernels (framework/layer_norm.hpp)
// after the group's elements are made contiguous (a reshape, and a transpose unless the channel
// axis is axis 1); gamma and beta apply by broadcasting. Errors with Keras's wording: a channel
// count smaller than groups or not a multiple of it, an undefined channel axis.
//
// UnitNormalization scales each sample to unit L2 norm over `axis` (an int or a list):
// y = x / sqrt(max(sum(x^2), 1e-24)) - Keras's ops.normalize(order=2, epsilon=1e-12), whose clamp
// gives a zero vector a finite gradient. Both layers pass masks through (supports_masking).
#pragma once

#include "framework/layer.hpp"
#include "framework/layer_norm.hpp"
#include "layers/normalization/affine_params.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// keras.layers.GroupNormalization's arguments with Keras's defaults (groups 32, axis -1, epsilon 1e-3).
struct GroupNormalizationOptions {
    long groups = 32; ///< -1: one group per channel
    int axis = -1;
    double epsilon = 1e-3;
    AffineParams<T> affine;
    std::string name;
    bool trainable = true;
};

template <class T>
/// keras.layers.GroupNormalization: each sample normalized per group of consecutive channels; -1 groups is instance normalization.
class GroupNormalization : public Layer<T> {
public:
    /// requires: groups > 0 or -1 (Keras's ValueError otherwise).
    explicit GroupNormalization(const GroupNormalizationOptions<T>& options = {});
    /// Builds the layer from a Keras config (groups, axis, epsilon and the gamma/beta keys).
    static std::shared_ptr<GroupNormalization> from_config(const json& config);
    json get_config() const override;
    /// The arguments the layer was constructed with.
    const GroupNormalizationOptions<T>& options() const { return m_options; }
    /// requires: built with scale / center (RuntimeError otherwise).
    const Variable<T>& gamma() const;
    /// The per-channel offset, shape (C,) (RuntimeError unless built with center).
    const Variable<T>& beta() const;

protected:
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Keras's InputSpec(ndim, axes={axis: C}).
    void check_input(const shape_t& x) const override;

private:
    GroupNormalizationOptions<T> m_options;
    std::size_t m_axis = 0; ///< non-negative channel axis (after build)
    Variable<T> m_gamma, m_beta;
    std::shared_ptr<ln::Workspace<T>> m_workspace;
};

template <class T>
/// keras.layers.UnitNormalization: x / sqrt(max(sum(x^2 over axis), 1e-24)), each sample to unit L2 norm.
class UnitNormalization : public Layer<T> {
public:
    /// UnitNormalization(axis = -1); `axis_is_list` makes get_config write axis as a list, as given.
    explicit UnitNormalization(std::vector<int> axis = { -1 }, bool axis_is_list = false, const std::string& name = "");
    /// Builds the layer from a Keras config (axis an int or a list; ValueError for anything else).
    static std::shared_ptr<UnitNormalization> from_config(const json& config);
    json get_config() const override;
    /// The normalized axes as given (negative values count from the end).
    const std::vector<int>& axis() const { return m_axis; }

protected:
    /// ValueError for an axis out of bounds, naming the layer and the shape.
    void build(const dims_t& input_shape) override;
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    void check_input(const shape_t& x) const override;

private:
    std::vector<int> m_axis;
    bool m_axis_is_list;
};

} // namespace xtape
