#include "saving/model_checkpoint.hpp"

#include "framework/collective.hpp"
#include "framework/model.hpp"
#include "saving/keras_h5.hpp"

#include <cctype>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>

namespace xtape {

// ---- Python's format mini-language, the part a file name needs ------------------------------------------

namespace {

struct FormatSpec {
    char fill = ' ';
    char align = 0; // '<', '>', '^', '=' or 0 (default: right for numbers)
    char sign = '-';
    bool alternate = false;
    int width = 0;
    int precision = -1;
    char type = 0;
};

FormatSpec parse_spec(const std::string& s, const std::string& field)
{
    FormatSpec f;
    std::size_t i = 0;
    auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
    if (s.size() >= 2 && is_align(s[1])) {
        f.fill = s[0];
        f.align = s[1];
        i = 2;
    } else if (!s.empty() && is_align(s[0])) {
        f.align = s[0];
        i = 1;
    }
    if (i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == ' '))
        f.sign = s[i++];
    if (i < s.size() && s[i] == '#') {
        f.alternate = true;
        ++i;
    }
    if (i < s.size() && s[i] == '0') {
        if (!f.align) {
            f.fill = '0';
            f.align = '=';
        }
        ++i;
    }
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
        f.width = f.width * 10 + (s[i++] - '0');
    if (i < s.size() && (s[i] == ',' || s[i] == '_'))
        throw NotImplementedError("ModelCheckpoint: the grouping option '" + std::string(1, s[i]) + "' in field {" +
                                  field + ":" + s + "} is not supported");
    if (i < s.size() && s[i] == '.') {
        ++i;
        if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i])))
            throw ValueError("Format specifier missing precision in field {" + field + ":" + s + "}");
        f.precision = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
            f.precision = f.precision * 10 + (s[i++] - '0');
    }
    if (i < s.size())
        f.type = s[i++];
    if (i != s.size())
        throw ValueError("Invalid format specifier '" + s + "' in field {" + field + "}");
    return f;
}

std::string printf_str(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string printf_str(const char* fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

/// Python's repr(float): the shortest digits that read back as the same double.
std::string python_float_repr(double v)
{
    if (std::isnan(v))
        return "nan";
    if (std::isinf(v))
        return v > 0 ? "inf" : "-inf";
    std::string s;
    for (int p = 1; p <= 17; ++p) {
        s = printf_str("%.*g", p, v);
        if (std::strtod(s.c_str(), nullptr) == v)
            break;
    }
    // Python writes 1e+16 and up, and below 1e-4, in exponent form; %g already agrees for the
    // shortest digits except that an integral value keeps ".0".
    if (s.find_first_of(".en") == std::string::npos)
        s += ".0";
    return s;
}

std::string apply_width(std::string body, const FormatSpec& f)
{
    if (f.width <= 0 || static_cast<int>(body.size()) >= f.width)
        return body;
    const std::size_t pad = static_cast<std::size_t>(f.width) - body.size();
    switch (f.align ? f.align : '>') {
    case '<':
        return body + std::string(pad, f.fill);
    case '^':
        return std::string(pad / 2, f.fill) + body + std::string(pad - pad / 2, f.fill);
    case '=': {
        const std::size_t sign_len = (!body.empty() && (body[0] == '-' || body[0] == '+' || body[0] == ' ')) ? 1 : 0;
        return body.substr(0, sign_len) + std::string(pad, f.fill) + body.substr(sign_len);
    }
    default:
        return std::string(pad, f.fill) + body;
    }
}

std::string with_sign(std::string s, bool negative, const FormatSpec& f)
{
    if (negative)
        return s;
    if (f.sign == '+')
        return "+" + s;
    if (f.sign == ' ')
        return " " + s;
    return s;
}

std::string format_number(double v, bool is_int, const FormatSpec& f, const std::string& field)
{
    const char t = f.type;
    std::string body;
    if (t == 'd' || (t == 'n' && is_int)) {
        if (!is_int)
            throw ValueError("Unknown format code 'd' for object of type 'float' in field {" + field + "}");
        body = printf_str("%lld", static_cast<long long>(v));
    } else if (t == 0 && is_int) {
        body = printf_str("%lld", static_cast<long long>(v));
    } else if (t == 0) {
        if (f.precision < 0) {
            body = python_float_repr(v);
        } else {
            body = printf_str(f.alternate ? "%#.*g" : "%.*g", std::max(f.precision, 1), v);
            if (body.find_first_of(".en") == std::string::npos)
                body += ".0";
        }
    } else if (t == 'f' || t == 'F' || t == 'e' || t == 'E' || t == 'g' || t == 'G') {
        const int p = f.precision < 0 ? 6 : f.precision;
        const char fmt[] = { '%', '.', '*', t, 0 };
        const char fmt_alt[] = { '%', '#', '.', '*', t, 0 };
        body = printf_str(f.alternate ? fmt_alt : fmt, p, v);
    } else if (t == '%') {
        body = printf_str("%.*f%%", f.precision < 0 ? 6 : f.precision, v * 100.0);
    } else {
        throw ValueError(std::string("Unknown format code '") + t + "' for a number in field {" + field + "}");
    }
    return apply_width(with_sign(body, std::signbit(v) && !std::isnan(v), f), f);
}

} // namespace

std::string format_checkpoint_path(const std::string& pattern, int epoch, std::optional<int> batch, const Logs& logs)
{
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '}') {
            if (i + 1 < pattern.size() && pattern[i + 1] == '}') {
                out += '}';
                ++i;
                continue;
            }
            throw ValueError("Failed to format this callback filepath: \"" + pattern +
                             "\". Reason: Single '}' encountered in format string");
        }
        if (c != '{') {
            out += c;
            continue;
        }
        if (i + 1 < pattern.size() && pattern[i + 1] == '{') {
            out += '{';
            ++i;
            continue;
        }
        const std::size_t close = pattern.find('}', i);
        if (close == std::string::npos)
            throw ValueError("Failed to format this callback filepath: \"" + pattern +
                             "\". Reason: Single '{' encountered in format string");
        std::string field = pattern.substr(i + 1, close - i - 1);
        i = close;
        std::string spec;
        const auto colon = field.find(':');
        if (colon != std::string::npos) {
            spec = field.substr(colon + 1);
            field.erase(colon);
        }
        const auto bang = field.find('!'); // !r / !s give the same text for numbers
        if (bang != std::string::npos)
            field.erase(bang);
        double value = 0;
        bool is_int = false;
        if (field == "epoch") {
            value = epoch;
            is_int = true;
        } else if (field == "batch" && batch) {
            value = *batch;
            is_int = true;
        } else {
            auto it = logs.find(field);
            if (it == logs.end()) {
                std::string keys = "epoch";
                if (batch)
                    keys += ", batch";
                for (const auto& kv : logs)
                    keys += ", " + kv.first;
                throw KeyError("Failed to format this callback filepath: \"" + pattern + "\". Reason: '" + field +
                               "' (available: " + keys + ")");
            }
            value = it->second;
        }
        out += format_number(value, is_int, parse_spec(spec, field), field);
    }
    return out;
}

// ---- the callback ----------------------------------------------------------------------------------------

template <class T>
ModelCheckpoint<T>::ModelCheckpoint(std::string filepath, ModelCheckpointOptions options)
  : m_filepath(std::move(filepath))
  , m_opt(std::move(options))
{
    if (m_filepath.empty())
        throw ValueError("ModelCheckpoint: filepath is empty");
    if (m_opt.mode != "auto" && m_opt.mode != "min" && m_opt.mode != "max")
        throw ValueError("ModelCheckpoint mode '" + m_opt.mode + "' is unknown, expected one of (auto, min, max)");
    if (m_opt.save_freq != "epoch") {
        char* end = nullptr;
        const long long n = std::strtoll(m_opt.save_freq.c_str(), &end, 10);
        if (m_opt.save_freq.empty() || *end != '\0' || n <= 0)
            throw ValueError("Unrecognized save_freq: " + m_opt.save_freq +
                             ". Expected save_freq are 'epoch' or a positive integer");
        m_save_every = n;
    }
}

template <class T>
void ModelCheckpoint<T>::on_train_begin(Logs&)
{
    m_batches_since_save = 0;
    if (m_opt.mode == "min")
        m_sign = -1;
    else if (m_opt.mode == "max")
        m_sign = +1;
    else {
        std::string base = m_opt.monitor;
        if (base.rfind("val_", 0) == 0)
            base = base.substr(4);
        const int direction = this->model() ? this->model()->metric_direction(base) : 0;
        if (direction != 0)
            m_sign = direction;
        else
            m_sign = (m_opt.monitor.find("acc") != std::string::npos || m_opt.monitor.rfind("fmeasure", 0) == 0) ? 1 : -1;
    }
    if (m_opt.initial_value_threshold)
        m_best = *m_opt.initial_value_threshold;
    else
        m_best = m_sign > 0 ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

template <class T>
bool ModelCheckpoint<T>::improves(double current) const
{
    return m_sign > 0 ? current > m_best : current < m_best;
}

template <class T>
void ModelCheckpoint<T>::on_train_batch_end(int batch, Logs& logs)
{
    if (m_save_every == 0)
        return;
    if (++m_batches_since_save >= m_save_every) {
        m_batches_since_save = 0;
        save(m_current_epoch, batch, logs);
    }
}

template <class T>
void ModelCheckpoint<T>::on_epoch_end(int epoch, Logs& logs)
{
    if (m_save_every == 0)
        save(epoch, std::nullopt, logs);
}

template <class T>
void ModelCheckpoint<T>::save(int epoch, std::optional<int> batch, const Logs& logs)
{
    if (!this->model())
        throw RuntimeError("ModelCheckpoint: no model set (use it as a callback of fit)");
    const std::string path =
      format_checkpoint_path(m_filepath, epoch + 1, batch ? std::optional<int>(*batch + 1) : std::nullopt, logs);
    // Every rank decides alike (the logs are the same everywhere) and calls the saver, which rank 0
    // alone writes (Note [Saving on rank 0]); only rank 0 prints and creates folders.
    const bool chief = collective().rank() == 0;
    if (m_opt.save_best_only) {
        auto it = logs.find(m_opt.monitor);
        if (it == logs.end()) {
            if (chief)
                std::cerr << "xtape: warning: Can save best model only with " << m_opt.monitor << " available, skipping."
                      << std::endl;
            return;
        }
        const double current = it->second;
        if (!improves(current)) {
            if (m_opt.verbose > 0 && chief)
                std::cout << printf_str("\nEpoch %d: %s did not improve from %.5f", epoch + 1, m_opt.monitor.c_str(), m_best)
                          << std::endl;
            return;
        }
        if (m_opt.verbose > 0 && chief)
            std::cout << printf_str("\nEpoch %d: %s improved from %.5f to %.5f, saving model to %s", epoch + 1,
                                    m_opt.monitor.c_str(), m_best, current, path.c_str())
                      << std::endl;
        m_best = current;
    } else if (m_opt.verbose > 0 && chief) {
        std::cout << printf_str("\nEpoch %d: saving model to %s", epoch + 1, path.c_str()) << std::endl;
    }
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty() && chief) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec)
            throw IOError(path + ": ModelCheckpoint cannot create the folder '" + parent.string() + "': " + ec.message());
    }
    if (m_opt.save_weights_only)
        save_weights(*this->model(), path);
    else
        save_model(*this->model(), path);
    m_last_saved = path;
}

template class ModelCheckpoint<float>;
template class ModelCheckpoint<double>;

} // namespace xtape
