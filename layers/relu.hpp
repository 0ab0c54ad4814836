// ReLU: Keras's keras.layers.ReLU, the rectifier with a cap, a leak and a threshold:
//   f(x) = max_value                         if x >= max_value
//   f(x) = x                                 if threshold <= x < max_value
//   f(x) = negative_slope * (x - threshold)  otherwise
#pragma once

#include "framework/layer.hpp"

#include <memory>
#include <optional>
#include <string>

namespace xtape {

/// keras.layers.ReLU's arguments with Keras's defaults (no cap, no leak, threshold 0).
struct ReLUOptions
{
    std::optional<double> max_value; ///< none: unlimited
    double negative_slope = 0.0;
    double threshold = 0.0;
    std::string name;
    bool trainable = true;
};

template<class T>
/// keras.layers.ReLU: the rectifier with an optional cap (max_value), leak (negative_slope) and threshold.
class ReLU : public Layer<T>
{
public:
    /// requires: max_value (if set), negative_slope and threshold >= 0 (ValueError otherwise).
    explicit ReLU(const ReLUOptions& options = {});
    /// ReLU(max_value, negative_slope, threshold) as Keras's positional arguments; ValueError for a negative one.
    ReLU(std::optional<double> max_value, double negative_slope = 0.0, double threshold = 0.0)
      : ReLU(make_options(max_value, negative_slope, threshold))
    {
    }

    /// Builds the layer from a Keras config; max_value may be null, missing keys take Keras's defaults.
    static std::shared_ptr<ReLU> from_config(const json& config);
    json get_config() const override;

    /// The cap on outputs; nullopt means unlimited.
    std::optional<double> max_value() const { return m_max_value; }
    /// The slope applied to (x - threshold) below the threshold.
    double negative_slope() const { return m_negative_slope; }
    /// Inputs below this value are leaked (or zeroed with negative_slope 0).
    double threshold() const { return m_threshold; }

protected:
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>& mask) override;
    /// Any shape: the function is elementwise.
    void check_input(const shape_t&) const override {}

private:
    static ReLUOptions make_options(std::optional<double> max_value, double negative_slope, double threshold)
    {
        ReLUOptions o;
        o.max_value = max_value;
        o.negative_slope = negative_slope;
        o.threshold = threshold;
        return o;
    }
    std::optional<double> m_max_value;
    double m_negative_slope;
    double m_threshold;
};

} // namespace xtape
