// Keras's learning-rate schedules: the learning rate as a function of the optimizer's step
// (iterations() before the update, so the first step sees step 0). Computed in double; Keras
// computes in float32, which differs only in the last bits.
#pragma once

#include "framework/config.hpp"
#include "framework/optimizer.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace xtape {

using SchedulePtr = std::shared_ptr<const LearningRateSchedule>;

/// initial_learning_rate * decay_rate ^ (step / decay_steps); with staircase the exponent is floored.
/// requires: decay_steps > 0 (ValueError otherwise).
class ExponentialDecay : public LearningRateSchedule {
public:
    /// keras.optimizers.schedules.ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase = false).
    ExponentialDecay(double initial_learning_rate, double decay_steps, double decay_rate, bool staircase = false,
                     std::string name = "ExponentialDecay");
    double operator()(std::int64_t step) const override;
    std::string class_name() const override { return "ExponentialDecay"; }
    json get_config() const override;

private:
    double m_initial, m_decay_steps, m_decay_rate;
    bool m_staircase;
    std::string m_name;
};

/// values[0] while step <= boundaries[0], values[i] while boundaries[i-1] < step <= boundaries[i],
/// values.back() after the last boundary.
/// requires: values.size() == boundaries.size() + 1 (ValueError otherwise).
class PiecewiseConstantDecay : public LearningRateSchedule {
public:
    /// keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values); boundaries in steps, increasing.
    PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values,
                           std::string name = "PiecewiseConstant");
    double operator()(std::int64_t step) const override;
    std::string class_name() const override { return "PiecewiseConstantDecay"; }
    json get_config() const override;

private:
    std::vector<double> m_boundaries, m_values;
    std::string m_name;
};

/// (initial - end) * (1 - s / decay_steps) ^ power + end, s = min(step, decay_steps); with cycle,
/// decay_steps grows to the first multiple of itself that is >= step (1 multiple at step 0).
class PolynomialDecay : public LearningRateSchedule {
public:
    /// keras.optimizers.schedules.PolynomialDecay(initial_learning_rate, decay_steps, end_learning_rate = 1e-4, power = 1, cycle = false).
    PolynomialDecay(double initial_learning_rate, double decay_steps, double end_learning_rate = 0.0001,
                    double power = 1.0, bool cycle = false, std::string name = "PolynomialDecay");
    double operator()(std::int64_t step) const override;
    std::string class_name() const override { return "PolynomialDecay"; }
    json get_config() const override;

private:
    double m_initial, m_decay_steps, m_end, m_power;
    bool m_cycle;
    std::string m_name;
};

/// initial_learning_rate / (1 + decay_rate * step / decay_steps) (exponent floored with staircase).
class InverseTimeDecay : public LearningRateSchedule {
public:
    /// keras.optimizers.schedules.InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate, staircase = false).
    InverseTimeDecay(double initial_learning_rate, double decay_steps, double decay_rate, bool staircase = false,
                     std::string name = "InverseTimeDecay");
    double operator()(std::int64_t step) const override;
    std::string class_name() const override { return "InverseTimeDecay"; }
    json get_config() const override;

private:
    double m_initial, m_decay_steps, m_decay_rate;
    bool m_staircase;
    std::string m_name;
};

/// Without warmup_target: lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha),
/// s = min(step, decay_steps). With warmup_target: a linear ramp from initial_learning_rate to
/// warmup_target over warmup_steps, then the cosine decay from warmup_target over decay_steps.
class CosineDecay : public LearningRateSchedule {
public:
    /// keras.optimizers.schedules.CosineDecay(initial_learning_rate, decay_steps, alpha = 0, name, warmup_target = None, warmup_steps = 0).
    CosineDecay(double initial_learning_rate, double decay_steps, double alpha = 0.0, std::string name = "CosineDecay",
                std::optional<double> warmup_target = std::nullopt, double warmup_steps = 0.0);
    double operator()(std::int64_t step) const override;
    std::string class_name() const override { return "CosineDecay"; }
    json get_config() const override;

private:
    double decay(double step, double from_lr) const;
    double m_initial, m_decay_steps, m_alpha;
    std::string m_name;
    std::optional<double> m_warmup_target;
    double m_warmup_steps;
};

/// From {class_name, config} (Keras 2) or Keras 3's module form. KeyError naming an unknown class.
SchedulePtr get_schedule(const json& spec);
/// Keras 3's form: {"module": "keras.optimizers.schedules", "class_name", "config", "registered_name"}.
json serialize_schedule(const LearningRateSchedule& s);

} // namespace xtape
