#include "optim/schedules.hpp"

#include "framework/keras_object.hpp"

#include <algorithm>
#include <cmath>

namespace xtape {
namespace {

constexpr double pi = 3.14159265358979323846;

void check_decay_steps(double decay_steps, const char* key = "decay_steps")
{
    if (!(decay_steps > 0))
        throw ValueError(std::string("Argument `") + key + "` must be > 0. Received: " + key + "=" +
                         std::to_string(decay_steps));
}

std::vector<double> number_list(const json& c, const std::string& key)
{
    auto it = c.find(key);
    if (it == c.end() || !it->is_array())
        throw ValueError("schedule config '" + key + "': expected a list of numbers");
    std::vector<double> out;
    for (const auto& v : *it) {
        if (!v.is_number())
            throw ValueError("schedule config '" + key + "': expected numbers, got " + v.dump());
        out.push_back(v.get<double>());
    }
    return out;
}

double required_number(const json& c, const std::string& key, const std::string& cls)
{
    auto it = c.find(key);
    if (it == c.end() || !it->is_number())
        throw ValueError(cls + " config: missing number '" + key + "'");
    return it->get<double>();
}

} // namespace

ExponentialDecay::ExponentialDecay(double initial_learning_rate, double decay_steps, double decay_rate, bool staircase,
                                   std::string name)
    : m_initial(initial_learning_rate)
    , m_decay_steps(decay_steps)
    , m_decay_rate(decay_rate)
    , m_staircase(staircase)
    , m_name(std::move(name))
{
    check_decay_steps(decay_steps);
}

double ExponentialDecay::operator()(std::int64_t step) const
{
    double p = static_cast<double>(step) / m_decay_steps;
    if (m_staircase)
        p = std::floor(p);
    return m_initial * std::pow(m_decay_rate, p);
}

json ExponentialDecay::get_config() const
{
    return { { "initial_learning_rate", m_initial }, { "decay_steps", m_decay_steps }, { "decay_rate", m_decay_rate },
             { "staircase", m_staircase }, { "name", m_name } };
}

PiecewiseConstantDecay::PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values,
                                               std::string name)
    : m_boundaries(std::move(boundaries))
    , m_values(std::move(values))
    , m_name(std::move(name))
{
    if (m_boundaries.size() + 1 != m_values.size())
        throw ValueError("The length of boundaries should be 1 less than the length of values. Received: boundaries "
                         "of length " + std::to_string(m_boundaries.size()) + ", and values of length " +
                         std::to_string(m_values.size()) + ".");
}

double PiecewiseConstantDecay::operator()(std::int64_t step) const
{
    const double s = static_cast<double>(step);
    for (std::size_t i = 0; i < m_boundaries.size(); ++i)
        if (s <= m_boundaries[i])
            return m_values[i];
    return m_values.back();
}

json PiecewiseConstantDecay::get_config() const
{
    return { { "boundaries", m_boundaries }, { "values", m_values }, { "name", m_name } };
}

PolynomialDecay::PolynomialDecay(double initial_learning_rate, double decay_steps, double end_learning_rate,
                                 double power, bool cycle, std::string name)
    : m_initial(initial_learning_rate)
    , m_decay_steps(decay_steps)
    , m_end(end_learning_rate)
    , m_power(power)
    , m_cycle(cycle)
    , m_name(std::move(name))
{
    check_decay_steps(decay_steps);
}

double PolynomialDecay::operator()(std::int64_t step) const
{
    double s = static_cast<double>(step);
    double d = m_decay_steps;
    if (m_cycle)
        d *= (s == 0.0) ? 1.0 : std::ceil(s / m_decay_steps);
    else
        s = std::min(s, d);
    return (m_initial - m_end) * std::pow(1.0 - s / d, m_power) + m_end;
}

json PolynomialDecay::get_config() const
{
    return { { "initial_learning_rate", m_initial }, { "decay_steps", m_decay_steps }, { "end_learning_rate", m_end },
             { "power", m_power }, { "cycle", m_cycle }, { "name", m_name } };
}

InverseTimeDecay::InverseTimeDecay(double initial_learning_rate, double decay_steps, double decay_rate, bool staircase,
                                   std::string name)
    : m_initial(initial_learning_rate)
    , m_decay_steps(decay_steps)
    , m_decay_rate(decay_rate)
    , m_staircase(staircase)
    , m_name(std::move(name))
{
    check_decay_steps(decay_steps);
}

double InverseTimeDecay::operator()(std::int64_t step) const
{
    double p = static_cast<double>(step) / m_decay_steps;
    if (m_staircase)
        p = std::floor(p);
    return m_initial / (1.0 + m_decay_rate * p);
}

json InverseTimeDecay::get_config() const
{
    return { { "initial_learning_rate", m_initial }, { "decay_steps", m_decay_steps }, { "decay_rate", m_decay_rate },
             { "staircase", m_staircase }, { "name", m_name } };
}

CosineDecay::CosineDecay(double initial_learning_rate, double decay_steps, double alpha, std::string name,
                         std::optional<double> warmup_target, double warmup_steps)
    : m_initial(initial_learning_rate)
    , m_decay_steps(decay_steps)
    , m_alpha(alpha)
    , m_name(std::move(name))
    , m_warmup_target(warmup_target)
    , m_warmup_steps(warmup_steps)
{
    check_decay_steps(decay_steps);
}

double CosineDecay::decay(double step, double from_lr) const
{
    const double cosine = 0.5 * (1.0 + std::cos(pi * step / m_decay_steps));
    return from_lr * ((1.0 - m_alpha) * cosine + m_alpha);
}

double CosineDecay::operator()(std::int64_t step) const
{
    double s = static_cast<double>(step);
    if (!m_warmup_target)
        return decay(std::min(s, m_decay_steps), m_initial);
    s = std::min(s, m_decay_steps + m_warmup_steps);
    if (s < m_warmup_steps)
        return (*m_warmup_target - m_initial) * (s / m_warmup_steps) + m_initial;
    return decay(s - m_warmup_steps, *m_warmup_target);
}

json CosineDecay::get_config() const
{
    return { { "initial_learning_rate", m_initial }, { "decay_steps", m_decay_steps },
             { "alpha", m_alpha },
             { "name", m_name },
             { "warmup_target", optional_to_json(m_warmup_target) },
             { "warmup_steps", m_warmup_steps } };
}

SchedulePtr get_schedule(const json& spec)
{
    KerasSpec s = split_keras_spec(spec, "learning rate schedule");
    const json& c = s.config;
    const std::string& n = s.class_name;
    if (n == "ExponentialDecay")
        return std::make_shared<ExponentialDecay>(
            required_number(c, "initial_learning_rate", n), required_number(c, "decay_steps", n),
            required_number(c, "decay_rate", n), config_bool(c, "staircase", false),
            config_string(c, "name", "ExponentialDecay"));
    if (n == "PiecewiseConstantDecay")
        return std::make_shared<PiecewiseConstantDecay>(number_list(c, "boundaries"), number_list(c, "values"),
                                                        config_string(c, "name", "PiecewiseConstant"));
    if (n == "PolynomialDecay")
        return std::make_shared<PolynomialDecay>(
            required_number(c, "initial_learning_rate", n), required_number(c, "decay_steps", n),
            config_number(c, "end_learning_rate", 0.0001), config_number(c, "power", 1.0),
            config_bool(c, "cycle", false), config_string(c, "name", "PolynomialDecay"));
    if (n == "InverseTimeDecay")
        return std::make_shared<InverseTimeDecay>(
            required_number(c, "initial_learning_rate", n), required_number(c, "decay_steps", n),
            required_number(c, "decay_rate", n), config_bool(c, "staircase", false),
            config_string(c, "name", "InverseTimeDecay"));
    if (n == "CosineDecay")
        return std::make_shared<CosineDecay>(required_number(c, "initial_learning_rate", n),
                                             required_number(c, "decay_steps", n), config_number(c, "alpha", 0.0),
                                             config_string(c, "name", "CosineDecay"),
                                             config_optional_number(c, "warmup_target"),
                                             config_number(c, "warmup_steps", 0.0));
    throw KeyError("Unknown learning rate schedule: '" + n +
                   "'. Known: ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay");
}

json serialize_schedule(const LearningRateSchedule& s)
{
    return keras3_serialized("keras.optimizers.schedules", s.class_name(), s.get_config());
}

} // namespace xtape
