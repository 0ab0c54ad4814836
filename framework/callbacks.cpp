#include "framework/callbacks.hpp"

#include "framework/collective.hpp"
#include "framework/io/atomic_file.hpp"
#include "framework/model.hpp"
#include "framework/optimizer.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <sstream>
#include <unistd.h>

namespace xtape {

// ---- Python's float repr -----------------------------------------------------------------------

std::string python_float_repr(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    // The shortest %e form that reads back exactly (Python's repr uses the shortest round trip).
    char buf[64];
    for (int p = 0; p < 17; ++p) {
        std::snprintf(buf, sizeof buf, "%.*e", p, v);
        if (std::strtod(buf, nullptr) == v)
            break;
    }
    const std::string s = buf;
    const bool negative = s[0] == '-';
    const std::size_t epos = s.find('e');
    std::string digits;
    for (std::size_t i = negative ? 1 : 0; i < epos; ++i)
        if (s[i] != '.')
            digits += s[i];
    while (digits.size() > 1 && digits.back() == '0')
        digits.pop_back();
    const int exp = std::atoi(s.c_str() + epos + 1);
    std::string out = negative ? "-" : "";
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            out += "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
        } else {
            const std::size_t int_len = static_cast<std::size_t>(exp) + 1;
            std::string ip = digits.substr(0, std::min(int_len, digits.size()));
            if (ip.size() < int_len)
                ip += std::string(int_len - ip.size(), '0');
            const std::string fp = digits.size() > int_len ? digits.substr(int_len) : "0";
            out += ip + "." + fp;
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1)
        out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return out + e;
}

// ---- Progbar -------------------------------------------------------------------------------------

namespace {

double steady_seconds()
{
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

std::string printf_str(const char* fmt, double v)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

/// Keras's Progbar._format_time: " 6ms/step".
std::string format_time(double per_unit, const std::string& unit)
{
    if (per_unit >= 1 || per_unit == 0)
        return " " + printf_str("%.0f", per_unit) + "s/" + unit;
    if (per_unit >= 1e-3)
        return " " + printf_str("%.0f", per_unit * 1000.0) + "ms/" + unit;
    return " " + printf_str("%.0f", per_unit * 1000000.0) + "us/" + unit;
}

/// Columns on screen of a UTF-8 string without escape sequences (every code point is one column).
std::size_t visible_width(const std::string& s)
{
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == 0x1b) { // skip "\x1b[...m"
            while (i < s.size() && s[i] != 'm')
                ++i;
            continue;
        }
        n += (c & 0xC0) != 0x80;
    }
    return n;
}

std::string repeat(const std::string& s, int n)
{
    std::string out;
    for (int i = 0; i < n; ++i)
        out += s;
    return out;
}

/// Seconds between plain (non-terminal) progress lines that are not final.
constexpr double plain_line_interval = 10.0;

} // namespace

Progbar::Progbar(std::int64_t target, int width, int verbose, double interval, std::string unit_name,
                 std::ostream* out, int dynamic_display)
    : m_target(target)
    , m_width(width)
    , m_verbose(verbose)
    , m_interval(interval)
    , m_unit(std::move(unit_name))
    , m_out(out ? out : &std::cout)
{
    if (dynamic_display >= 0)
        m_dynamic = dynamic_display != 0;
    else
        m_dynamic = m_out == &std::cout && isatty(STDOUT_FILENO);
    m_start = now();
    m_last_update = 0;
}

void Progbar::set_clock(std::function<double()> clock)
{
    m_clock = std::move(clock);
    m_start = now();
    m_last_update = 0;
}

double Progbar::now() const { return m_clock ? m_clock() : steady_seconds(); }

double Progbar::step_duration(std::int64_t current, double t)
{
    // Keras ignores the first step (compilation, warm-up) once more steps are known.
    if (current == 0)
        return 0;
    double per;
    if (m_after_first_step && current > 1)
        per = (t - *m_after_first_step) / static_cast<double>(current - 1);
    else
        per = (t - m_start) / static_cast<double>(current);
    if (current == 1)
        m_after_first_step = t;
    return per;
}

std::string Progbar::format_values(bool abs_threshold) const
{
    std::string s;
    for (const auto& k : m_order) {
        const auto& [total, count] = m_values.at(k);
        const double avg = total / std::max(1.0, count);
        const bool fixed = abs_threshold ? std::abs(avg) > 1e-3 : avg > 1e-3;
        s += " - " + k + ": " + printf_str(fixed ? "%.4f" : "%.4e", avg);
    }
    return s;
}

void Progbar::update(std::int64_t current, const Values& values, int finalize_flag)
{
    const bool finalize = finalize_flag >= 0 ? finalize_flag != 0 : (m_target > 0 && current >= m_target);
    for (const auto& [k, v] : values) {
        if (m_values.find(k) == m_values.end())
            m_order.push_back(k);
        if (finalize) {
            m_values[k] = { v, 1.0 };
        } else {
            const double base = static_cast<double>(std::max<std::int64_t>(current - m_seen, 1));
            auto it = m_values.find(k);
            if (it == m_values.end())
                m_values[k] = { v * base, base };
            else {
                it->second.first += v * base;
                it->second.second += base;
            }
        }
    }
    m_seen = current;
    const double t = now();
    const double per_unit = step_duration(current, t);

    if (m_verbose == 1) {
        if (!finalize && t - m_last_update < m_interval)
            return;
        if (!m_dynamic && !finalize && t - std::max(m_last_update, m_start) < plain_line_interval)
            return;
        std::string bar;
        if (m_target > 0) {
            const int digits = static_cast<int>(std::log10(static_cast<double>(m_target))) + 1;
            char count[64];
            std::snprintf(count, sizeof count, "%*lld/%lld", digits, static_cast<long long>(current),
                          static_cast<long long>(m_target));
            const int done = static_cast<int>(m_width * (static_cast<double>(current) / static_cast<double>(m_target)));
            if (m_dynamic) {
                bar = std::string("\x1b[1m") + count + "\x1b[0m ";
                if (done > 0)
                    bar += "\x1b[32m" + repeat("━", done) + "\x1b[0m";
                bar += "\x1b[37m" + repeat("━", m_width - done) + "\x1b[0m";
            } else {
                bar = std::string(count) + " " + repeat("━", std::max(done, 0)) + std::string(std::max(m_width - done, 0), ' ');
            }
        } else {
            char count[64];
            std::snprintf(count, sizeof count, "%7lld/Unknown", static_cast<long long>(current));
            bar = count;
        }
        const std::string bold = m_dynamic ? "\x1b[1m" : "", reset = m_dynamic ? "\x1b[0m" : "";
        std::string info;
        if (m_target > 0 && !finalize) {
            const double eta = per_unit * static_cast<double>(m_target - current);
            char e[64];
            if (eta > 3600)
                std::snprintf(e, sizeof e, "%d:%02d:%02d", static_cast<int>(eta / 3600),
                              static_cast<int>(std::fmod(eta, 3600) / 60), static_cast<int>(std::fmod(eta, 60)));
            else if (eta > 60)
                std::snprintf(e, sizeof e, "%d:%02d", static_cast<int>(eta / 60), static_cast<int>(std::fmod(eta, 60)));
            else
                std::snprintf(e, sizeof e, "%ds", static_cast<int>(eta));
            info = " " + bold + e + reset;
        } else {
            info = " " + bold + printf_str("%.0f", t - m_start) + "s" + reset;
        }
        info += format_time(per_unit, m_unit);
        info += format_values(true);

        std::string message = m_dynamic ? "\r" : "";
        message += bar + info;
        const std::size_t width = visible_width(bar + info);
        if (m_dynamic && m_prev_width > width)
            message += std::string(m_prev_width - width, ' ');
        if (finalize || !m_dynamic)
            message += "\n";
        *m_out << message << std::flush;
        m_prev_width = width;
    } else if (m_verbose == 2) {
        if (finalize && m_target > 0) {
            const int digits = static_cast<int>(std::log10(static_cast<double>(m_target))) + 1;
            char count[64];
            std::snprintf(count, sizeof count, "%*lld/%lld", digits, static_cast<long long>(current),
                          static_cast<long long>(m_target));
            std::string info = std::string(count) + " - " + printf_str("%.0f", t - m_start) + "s -" +
                               format_time(per_unit, m_unit) + format_values(false) + "\n";
            *m_out << info << std::flush;
        }
    }
    m_last_update = t;
}

// ---- ProgbarLogger ---------------------------------------------------------------------------------

template <class T>
void ProgbarLogger<T>::set_params(const CallbackParams& params)
{
    Callback<T>::set_params(params);
    m_verbose = params.verbose < 0 ? 1 : params.verbose;
    m_epochs = params.epochs;
    m_target = params.steps;
}

template <class T>
void ProgbarLogger<T>::reset()
{
    m_seen = 0;
    m_bar.reset();
}

template <class T>
Progbar& ProgbarLogger<T>::bar()
{
    if (!m_bar) {
        m_bar = std::make_unique<Progbar>(m_target, 20, m_verbose, 0.05, "step", m_out, m_dynamic);
        if (m_clock)
            m_bar->set_clock(m_clock);
    }
    return *m_bar;
}

template <class T>
void ProgbarLogger<T>::on_epoch_begin(int epoch, Logs&)
{
    reset();
    bar();
    if (m_verbose && m_epochs > 1) {
        std::ostream& os = m_out ? *m_out : std::cout;
        os << "Epoch " << epoch + 1 << "/" << m_epochs << "\n" << std::flush;
    }
}

template <class T>
void ProgbarLogger<T>::update(int batch, const Logs& logs)
{
    Progbar& b = bar();
    m_seen = batch + 1;
    if (m_verbose == 1)
        b.update(m_seen, Progbar::Values(logs.begin(), logs.end()), 0);
}

template <class T>
void ProgbarLogger<T>::finalize(const Logs& logs)
{
    Progbar& b = bar();
    if (m_target <= 0) {
        m_target = m_seen;
        b.set_target(m_target);
    }
    b.update(m_target, Progbar::Values(logs.begin(), logs.end()), 1);
}

template <class T>
void ProgbarLogger<T>::on_epoch_end(int, Logs& logs)
{
    finalize(logs);
}

template <class T>
void ProgbarLogger<T>::on_test_begin(Logs&)
{
    if (!m_in_fit) {
        reset();
        bar();
    }
}

template <class T>
void ProgbarLogger<T>::on_test_batch_end(int batch, Logs& logs)
{
    if (!m_in_fit)
        update(batch, logs);
}

template <class T>
void ProgbarLogger<T>::on_test_end(Logs& logs)
{
    if (!m_in_fit)
        finalize(logs);
}

template <class T>
void ProgbarLogger<T>::on_predict_batch_end(int batch, Logs&)
{
    update(batch, Logs{});
}

template <class T>
void ProgbarLogger<T>::on_predict_end(Logs&)
{
    finalize(Logs{});
}

// ---- EarlyStopping -------------------------------------------------------------------------------

template <class T>
EarlyStopping<T>::EarlyStopping(EarlyStoppingOptions options)
    : m_opt(std::move(options))
{
    if (m_opt.mode != "auto" && m_opt.mode != "min" && m_opt.mode != "max") {
        std::cerr << "Warning: EarlyStopping mode " << m_opt.mode << " is unknown, fallback to auto mode.\n";
        m_opt.mode = "auto";
    }
}

template <class T>
void EarlyStopping<T>::set_monitor_op()
{
    if (m_opt.mode == "min")
        m_sign = -1;
    else if (m_opt.mode == "max")
        m_sign = 1;
    else {
        std::string metric = m_opt.monitor;
        if (metric.rfind("val_", 0) == 0)
            metric = metric.substr(4);
        if (metric == "loss")
            m_sign = -1;
        if (this->model()) {
            const int d = this->model()->metric_direction(metric);
            if (d != 0)
                m_sign = d;
        }
    }
    if (m_sign == 0)
        throw ValueError("EarlyStopping callback received monitor=" + m_opt.monitor +
                         " but Keras isn't able to automatically determine whether that metric should be maximized "
                         "or minimized. Pass `mode='max'` in order to do early stopping based on the highest metric "
                         "value, or pass `mode='min'` in order to use the lowest value.");
    m_delta = std::abs(m_opt.min_delta) * (m_sign < 0 ? -1.0 : 1.0);
    m_best = m_sign < 0 ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

template <class T>
bool EarlyStopping<T>::improves(double value, double reference) const
{
    return m_sign < 0 ? value - m_delta < reference : value - m_delta > reference;
}

template <class T>
void EarlyStopping<T>::on_train_begin(Logs&)
{
    // As Keras: the counters restart, `best` carries over when the callback is reused.
    m_wait = 0;
    m_stopped_epoch = 0;
    m_best_weights.reset();
    m_best_epoch = 0;
}

template <class T>
void EarlyStopping<T>::on_epoch_end(int epoch, Logs& logs)
{
    if (m_sign == 0)
        set_monitor_op();
    auto it = logs.find(m_opt.monitor);
    if (it == logs.end()) {
        std::string keys;
        for (const auto& kv : logs)
            keys += (keys.empty() ? "" : ",") + kv.first;
        std::cerr << "Warning: Early stopping conditioned on metric `" << m_opt.monitor
                  << "` which is not available. Available metrics are: " << keys << "\n";
        return;
    }
    if (epoch < m_opt.start_from_epoch)
        return;
    const double current = it->second;
    if (m_opt.restore_best_weights && !m_best_weights) {
        m_best_weights = this->model()->get_weights();
        m_best_epoch = epoch;
    }
    ++m_wait;
    if (improves(current, m_best)) {
        m_best = current;
        m_best_epoch = epoch;
        if (m_opt.restore_best_weights)
            m_best_weights = this->model()->get_weights();
        // Only restart waiting when the value beats both the baseline and the previous best.
        if (!m_opt.baseline || improves(current, *m_opt.baseline))
            m_wait = 0;
        return;
    }
    if (m_wait >= m_opt.patience && epoch > 0) {
        m_stopped_epoch = epoch;
        this->model()->set_stop_training(true);
    }
}

template <class T>
void EarlyStopping<T>::on_train_end(Logs&)
{
    if (m_stopped_epoch > 0 && m_opt.verbose > 0)
        std::cout << "Epoch " << m_stopped_epoch + 1 << ": early stopping\n";
    if (m_opt.restore_best_weights && m_best_weights) {
        if (m_opt.verbose > 0)
            std::cout << "Restoring model weights from the end of the best epoch: " << m_best_epoch + 1 << ".\n";
        this->model()->set_weights(*m_best_weights);
    }
}

// ---- CSVLogger -------------------------------------------------------------------------------------

namespace {

/// Python csv's QUOTE_MINIMAL: quote a field holding the separator, a quote or a line break.
std::string csv_field(const std::string& f, const std::string& sep)
{
    if (f.find(sep) == std::string::npos && f.find('"') == std::string::npos && f.find('\n') == std::string::npos &&
        f.find('\r') == std::string::npos)
        return f;
    std::string q = "\"";
    for (char c : f)
        q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

} // namespace

template <class T>
CSVLogger<T>::CSVLogger(std::string filename, std::string separator, bool append)
    : m_filename(std::move(filename))
    , m_sep(std::move(separator))
    , m_append(append)
{
}

template <class T>
void CSVLogger<T>::on_train_begin(Logs&)
{
    m_header = true;
    m_content.clear();
    if (m_append) {
        std::ifstream in(m_filename, std::ios::binary);
        if (in) {
            std::ostringstream os;
            os << in.rdbuf();
            m_content = os.str();
        }
        m_header = m_content.empty() || m_content[0] == '\r' || m_content[0] == '\n';
    }
    try {
        io::write_file_atomically(m_filename, m_content);
    } catch (const IOError& e) {
        throw IOError("CSVLogger: cannot write '" + m_filename + "': " + e.what());
    }
    m_open = true;
    m_keys.clear();
}

template <class T>
void CSVLogger<T>::on_epoch_end(int epoch, Logs& logs)
{
    if (!m_open)
        return;
    std::string next = m_content;
    std::vector<std::string> keys = m_keys;
    bool header = m_header;
    if (keys.empty()) {
        for (const auto& kv : logs) // std::map: sorted, as Keras sorts the keys
            keys.push_back(kv.first);
        if (header) {
            next += "epoch";
            for (const auto& k : keys)
                next += m_sep + csv_field(k, m_sep);
            next += "\r\n";
            header = false;
        }
    }
    next += std::to_string(epoch);
    for (const auto& k : keys) {
        auto it = logs.find(k);
        next += m_sep + (it == logs.end() ? std::string("NA") : python_float_repr(it->second));
    }
    next += "\r\n";
    try {
        io::write_file_atomically(m_filename, next);
    } catch (const IOError& e) {
        throw IOError("CSVLogger: writing '" + m_filename + "' failed: " + e.what());
    }
    // Only a written epoch counts: after a failure the next attempt starts from the file on disk.
    m_content = std::move(next);
    m_keys = std::move(keys);
    m_header = header;
}

template <class T>
void CSVLogger<T>::on_train_end(Logs&)
{
    m_open = false;
}

// ---- TerminateOnNaN ----------------------------------------------------------------------------------

namespace {

/// Copies values into saved, reusing its buffers (no allocation once the shapes are known).
template <class T>
void snapshot(const std::vector<Variable<T>>& values, std::vector<array_t<T>>& saved)
{
    if (saved.size() != values.size())
        saved.assign(values.size(), array_t<T>());
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (shape_of(saved[i]) != values[i].shape())
            saved[i] = array_t<T>::from_shape(values[i].shape());
        std::copy(values[i].value().begin(), values[i].value().end(), saved[i].begin());
    }
}

} // namespace

// Keras's TerminateOnNaN only stops training, leaving the weights of the bad step; xtape also puts
// back the weights and the optimizer's state (slots and iteration count) from before that batch,
// so the model holds finite numbers and training can go on from there (README: where xtape
// deliberately differs).
template <class T>
void TerminateOnNaN<T>::on_train_batch_begin(int, Logs&)
{
    snapshot(this->model()->weights(), m_saved);
    const auto& opt = this->model()->optimizer();
    if (opt)
        snapshot(opt->variables(), m_opt_saved);
    else
        m_opt_saved.clear();
}

template <class T>
void TerminateOnNaN<T>::on_train_batch_end(int batch, Logs& logs)
{
    auto it = logs.find("loss");
    if (it == logs.end() || std::isfinite(it->second))
        return;
    std::cout << "Batch " << batch << ": Invalid loss, terminating training\n";
    this->model()->set_weights(m_saved);
    // Before its first step an optimizer has no state to put back; the slots that step created
    // stay (also when the step after a compile added slots for newly trainable weights).
    if (!m_opt_saved.empty() && m_opt_saved.size() == this->model()->optimizer()->variables().size())
        this->model()->optimizer()->set_state(this->model()->trainable_weights(), m_opt_saved);
    this->model()->set_stop_training(true);
    m_terminated = true;
}

// ---- ReduceLROnPlateau ---------------------------------------------------------------------------------

template <class T>
ReduceLROnPlateau<T>::ReduceLROnPlateau(ReduceLROnPlateauOptions options)
    : m_opt(std::move(options))
{
    if (m_opt.factor >= 1.0)
        throw ValueError("ReduceLROnPlateau does not support a factor >= 1.0. Received factor=" +
                         python_float_repr(m_opt.factor));
    reset();
}

template <class T>
void ReduceLROnPlateau<T>::reset()
{
    if (m_opt.mode != "auto" && m_opt.mode != "min" && m_opt.mode != "max") {
        std::cerr << "Warning: Learning rate reduction mode " << m_opt.mode << " is unknown, fallback to auto mode.\n";
        m_opt.mode = "auto";
    }
    m_max = m_opt.mode == "max" || (m_opt.mode == "auto" && m_opt.monitor.find("acc") != std::string::npos);
    m_best = m_max ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    m_cooldown_counter = 0;
    m_wait = 0;
}

template <class T>
bool ReduceLROnPlateau<T>::improves(double value, double best) const
{
    return m_max ? value > best + m_opt.min_delta : value < best - m_opt.min_delta;
}

template <class T>
void ReduceLROnPlateau<T>::on_epoch_end(int epoch, Logs& logs)
{
    auto& opt = this->model()->optimizer();
    if (!opt)
        throw RuntimeError("ReduceLROnPlateau: the model has no optimizer (call compile() first)");
    logs["learning_rate"] = opt->learning_rate();
    auto it = logs.find(m_opt.monitor);
    if (it == logs.end()) {
        std::string keys;
        for (const auto& kv : logs)
            keys += (keys.empty() ? "" : ",") + kv.first;
        std::cerr << "Warning: Learning rate reduction is conditioned on metric `" << m_opt.monitor
                  << "` which is not available. Available metrics are: " << keys << ".\n";
        return;
    }
    const double current = it->second;
    if (m_cooldown_counter > 0) {
        --m_cooldown_counter;
        m_wait = 0;
    }
    if (improves(current, m_best)) {
        m_best = current;
        m_wait = 0;
    } else if (m_cooldown_counter <= 0) {
        ++m_wait;
        if (m_wait >= m_opt.patience) {
            const double old_lr = opt->learning_rate();
            // Keras compares against min_lr rounded to float32.
            if (old_lr > static_cast<double>(static_cast<float>(m_opt.min_lr))) {
                const double new_lr = std::max(old_lr * m_opt.factor, m_opt.min_lr);
                opt->set_learning_rate(new_lr);
                if (m_opt.verbose > 0)
                    std::cout << "\nEpoch " << epoch + 1 << ": ReduceLROnPlateau reducing learning rate to "
                              << python_float_repr(new_lr) << ".\n";
                m_cooldown_counter = m_opt.cooldown;
                m_wait = 0;
            }
        }
    }
}

// ---- LearningRateScheduler ----------------------------------------------------------------------------

template <class T>
void LearningRateScheduler<T>::on_epoch_begin(int epoch, Logs&)
{
    auto& opt = this->model()->optimizer();
    if (!opt)
        throw RuntimeError("LearningRateScheduler: the model has no optimizer (call compile() first)");
    const double lr = m_schedule(epoch, opt->learning_rate());
    if (!std::isfinite(lr))
        throw ValueError("LearningRateScheduler: the schedule returned a non-finite learning rate for epoch " +
                         std::to_string(epoch));
    opt->set_learning_rate(lr);
    if (m_verbose > 0)
        std::cout << "\nEpoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to "
                  << python_float_repr(lr) << ".\n";
}

template <class T>
void LearningRateScheduler<T>::on_epoch_end(int, Logs& logs)
{
    logs["learning_rate"] = this->model()->optimizer()->learning_rate();
}

// ---- CallbackList -----------------------------------------------------------------------------------

template <class T>
CallbackList<T>::CallbackList(std::vector<CallbackPtr<T>> callbacks, bool add_history, bool add_progbar,
                              Model<T>* model, const CallbackParams& params)
    : m_callbacks(std::move(callbacks))
{
    bool has_progbar = false;
    for (const auto& c : m_callbacks) {
        if (!c)
            throw ValueError("callbacks: a callback in the list is null");
        if (auto h = std::dynamic_pointer_cast<History<T>>(c))
            m_history = h;
        has_progbar = has_progbar || std::dynamic_pointer_cast<ProgbarLogger<T>>(c) != nullptr;
    }
    if (!m_history && add_history) {
        m_history = std::make_shared<History<T>>();
        m_callbacks.push_back(m_history);
    }
    if (!has_progbar && add_progbar)
        m_callbacks.push_back(std::make_shared<ProgbarLogger<T>>());
    if (collective().rank() != 0)
        m_callbacks.erase(std::remove_if(m_callbacks.begin(), m_callbacks.end(),
                                         [](const CallbackPtr<T>& c) { return c->chief_only(); }),
                          m_callbacks.end());
    for (auto& c : m_callbacks) {
        if (model)
            c->set_model(model);
        c->set_params(params);
    }
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template class ProgbarLogger<T>;                                                                         \
    template class EarlyStopping<T>;                                                                         \
    template class CSVLogger<T>;                                                                             \
    template class TerminateOnNaN<T>;                                                                        \
    template class ReduceLROnPlateau<T>;                                                                     \
    template class LearningRateScheduler<T>;                                                                 \
    template class CallbackList<T>;
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
