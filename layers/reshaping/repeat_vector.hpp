// Keras's RepeatVector: (batch, features) -> (batch, n, features), each sample's vector repeated n
// times (the repeat_elements op; the backward sums the n copies). No mask passes on.
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template <class T>
/// keras.layers.RepeatVector(n): (batch, features) -> (batch, n, features).
class RepeatVector : public Layer<T> {
public:
    /// requires: n > 0 (ValueError, Keras's message).
    explicit RepeatVector(long n, const std::string& name = "", bool trainable = true);
    /// Builds the layer from a Keras config ("n").
    static std::shared_ptr<RepeatVector> from_config(const json& config);
    json get_config() const override;
    /// (batch, n, features).
    dims_t compute_output_shape(const dims_t& input_shape) const override;
    /// How many times each vector is repeated.
    std::size_t n() const { return m_n; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Rank 2, any number of features (Keras's InputSpec(ndim=2)).
    void check_input(const shape_t& x) const override;

private:
    std::size_t m_n;
};

} // namespace xtape
