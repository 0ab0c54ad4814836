// Keras's Permute: reorders the non-batch axes of its input; dims are 1-based, as in Keras
// (Permute((2, 1)) swaps the two axes after the batch). No mask passes on.
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>
#include <vector>

namespace xtape {

template <class T>
/// keras.layers.Permute(dims): reorders the non-batch axes; dims are 1-based ((2, 1) swaps the two axes after the batch).
class Permute : public Layer<T> {
public:
    /// requires: dims a permutation of 1..len(dims) (ValueError, Keras's message).
    explicit Permute(const std::vector<long>& dims, const std::string& name = "", bool trainable = true);
    /// Builds the layer from a Keras config ("dims" as a list).
    static std::shared_ptr<Permute> from_config(const json& config);
    json get_config() const override;
    /// (batch, input_shape[dims[0]], input_shape[dims[1]], ...).
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// The 1-based permutation of the non-batch axes.
    const std::vector<long>& dims() const { return m_dims; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank len(dims) + 1, any sizes.
    void check_input(const shape_t& x) const override;

private:
    std::vector<long> m_dims;
};

} // namespace xtape
