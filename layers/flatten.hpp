// Flatten: Keras's keras.layers.Flatten, (batch, d1, ..., dn) -> (batch, d1*...*dn); a rank-1
// input (batch,) becomes (batch, 1). With data_format "channels_first" the channel axis is
// moved last first, so the flattened order matches a channels_last model.
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <string>

namespace xtape {

template<class T>
/// keras.layers.Flatten: (batch, d1, ..., dn) -> (batch, d1*...*dn), channels moved last first for "channels_first".
class Flatten : public Layer<T>
{
public:
    /// requires: data_format "channels_last" or "channels_first" (ValueError otherwise).
    explicit Flatten(const std::string& data_format = "channels_last",
                     const std::string& name = "",
                     bool trainable = true);

    /// Keras 2/3 configs; Keras 1 configs have no data_format (channels_last).
    static std::shared_ptr<Flatten> from_config(const json& config);
    json get_config() const override;
    /// (batch, product of the other dimensions), None when any of them is None; (batch, 1) for a rank-1 input.
    dims_t compute_output_shape(const dims_t& input_shape) const override;

    /// "channels_last" (default) or "channels_first".
    const std::string& data_format() const { return m_data_format; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any input of rank >= 1 (Keras's InputSpec(min_ndim=1)).
    void check_input(const shape_t& x) const override;

private:
    std::string m_data_format;
};

} // namespace xtape
