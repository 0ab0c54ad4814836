#include "framework/training_curves.hpp"

#include "framework/config.hpp"
#include "framework/errors.hpp"
#include "framework/io/atomic_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <signal.h>
#include <sstream>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace xtape {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool ends_with(const std::string& s, const std::string& suffix)
{
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string base_name(const std::string& path)
{
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// One CSV record as Python's csv module writes it (QUOTE_MINIMAL: a quoted field may hold the
/// separator and doubled quotes; CSVLogger's keys are the only fields that can be quoted).
std::vector<std::string> split_record(const std::string& line, char sep)
{
    std::vector<std::string> fields(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"')
                fields.back() += line[++i];
            else if (c == '"')
                quoted = false;
            else
                fields.back() += c;
        } else if (c == '"') {
            quoted = true;
        } else if (c == sep) {
            fields.emplace_back();
        } else {
            fields.back() += c;
        }
    }
    return fields;
}

/// A value of the log: a number, or NaN for "NA" and empty fields; false for text.
bool parse_value(const std::string& s, double& v)
{
    if (s.empty() || s == "NA") {
        v = std::numeric_limits<double>::quiet_NaN();
        return true;
    }
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    return *end == '\0';
}

/// A gnuplot string literal: single quotes (no escapes inside but '' for a quote), one line.
std::string gnuplot_string(std::string s)
{
    std::string q = "'";
    for (char c : s) {
        if (c == '\'')
            q += "''";
        else
            q += (c == '\n' || c == '\r') ? ' ' : c;
    }
    return q + "'";
}

std::string number_text(double v)
{
    if (std::isnan(v))
        return "NaN";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

/// The gnuplot script that draws `panels` (metric, [training column], [validation column]).
std::string plot_script(const TrainingLog& log, const std::string& output, bool svg, std::size_t width,
                        std::size_t height, const std::string& title,
                        const std::vector<std::pair<std::string, std::vector<std::string>>>& panels)
{
    std::ostringstream s;
    s << "set encoding utf8\n";
    if (svg)
        s << "set terminal svg size " << width << "," << height << " font 'sans,11' background rgb 'white' noenhanced\n";
    else
        s << "set terminal pngcairo size " << width << "," << height << " font 'sans,10' noenhanced\n";
    s << "set output " << gnuplot_string(output) << "\n";
    // The data once, inline: a column per log column, NaN where a value is missing.
    s << "$log << EOD\n";
    for (std::size_t r = 0; r < log.epochs.size(); ++r) {
        s << number_text(log.epochs[r]);
        for (const auto& c : log.columns)
            s << ' ' << number_text(log.values.at(c)[r]);
        s << '\n';
    }
    s << "EOD\n";
    const double last = log.epochs.empty() ? 1 : *std::max_element(log.epochs.begin(), log.epochs.end());
    const double first = log.epochs.empty() ? 1 : *std::min_element(log.epochs.begin(), log.epochs.end());
    s << "set xrange [" << first - 0.5 << ":" << last + 0.5 << "]\n";
    if (last - first <= 20)
        s << "set xtics 1\n";
    // The key outside on the right, and fixed margins so that the panels' x axes line up.
    s << "set grid\nset key outside right top box\nset xlabel 'epoch'\n";
    s << "set lmargin at screen 0.11\nset rmargin at screen 0.77\n";
    s << "set style line 1 lc rgb '#1f77b4' lw 2 pt 7 ps 0.6\nset style line 2 lc rgb '#ff7f0e' lw 2 pt 5 ps 0.6\n";
    s << "set multiplot layout " << panels.size() << ",1 title " << gnuplot_string(title) << " noenhanced\n";
    for (const auto& panel : panels) {
        s << "set title " << gnuplot_string(panel.first) << " noenhanced\n";
        s << "set ylabel " << gnuplot_string(panel.first) << " noenhanced\n";
        s << "plot ";
        for (std::size_t i = 0; i < panel.second.size(); ++i) {
            const std::string& column = panel.second[i];
            const auto at = std::find(log.columns.begin(), log.columns.end(), column) - log.columns.begin();
            s << (i ? ", " : "") << "$log using 1:" << at + 2 << " with linespoints ls "
              << (starts_with(column, "val_") ? 2 : 1) << " title " << gnuplot_string(column) << " noenhanced";
        }
        s << "\n";
    }
    s << "unset multiplot\nset output\n";
    return s.str();
}

/// The first line of a text file that mentions an error (or its first line).
std::string first_error_line(const std::string& path)
{
    std::ifstream in(path);
    std::string line, first;
    while (std::getline(in, line)) {
        if (first.empty() && !line.empty())
            first = line;
        if (line.find("rror") != std::string::npos)
            return line;
    }
    return first;
}

/// Runs gnuplot on `script` fed through a pipe to its standard input; its standard error goes
/// to `err_path`. Returns its exit status (or throws IOError when it cannot be started).
int run_gnuplot(const std::string& program, const std::string& script, const std::string& err_path)
{
    int fds[2];
    if (pipe(fds) != 0)
        throw IOError("gnuplot: cannot create a pipe: " + std::string(std::strerror(errno)));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char*> argv{ const_cast<char*>(program.c_str()), nullptr };
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        throw IOError("cannot run gnuplot ('" + program + "'): " + std::strerror(rc) +
                      "; the training curves are drawn by gnuplot (Debian: apt install gnuplot-nox)");
    }
    // A gnuplot that exits early must not kill this process with SIGPIPE: block it while
    // writing, and drop a pending one afterwards.
    sigset_t pipe_set, old_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
    const char* p = script.data();
    std::size_t left = script.size();
    while (left > 0) {
        const ssize_t n = write(fds[1], p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; // gnuplot stopped reading; its status says why
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    close(fds[1]);
    const struct timespec no_wait = { 0, 0 };
    while (sigtimedwait(&pipe_set, nullptr, &no_wait) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

} // namespace

std::vector<std::string> TrainingLog::metrics() const
{
    std::vector<std::string> out;
    const std::set<std::string> have(columns.begin(), columns.end());
    for (const auto& c : columns)
        if (!starts_with(c, "val_"))
            out.push_back(c);
    for (const auto& c : columns)
        if (starts_with(c, "val_") && !have.count(c.substr(4)))
            out.push_back(c.substr(4));
    return out;
}

namespace {
/// Python's json.dump writes NaN, Infinity and -Infinity, which JSON has not: null in their place
/// (outside strings), read back as NaN (a gap in the curve).
std::string python_json_to_json(const std::string& text)
{
    std::string out;
    out.reserve(text.size());
    bool in_string = false, escaped = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            out += c;
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        bool replaced = false;
        for (const char* token : { "-Infinity", "Infinity", "NaN" }) {
            const std::size_t n = std::strlen(token);
            if (text.compare(i, n, token) == 0) {
                out += "null";
                i += n - 1;
                replaced = true;
                break;
            }
        }
        if (!replaced)
            out += c;
    }
    return out;
}

/// Note [History JSON]: Keras users keep a run's curves with json.dump(history.history): one object,
/// metric -> list of one value per epoch, in the order of the logs. Lists that are not all numbers
/// (or null / NaN) are left out, as CSV columns holding text; a list shorter than the longest (a
/// metric logged only from some epoch on cannot be told from one logged until then) is padded with
/// NaN at its end. The epochs are 1..N, or an "epoch" list (+1) when the object has one.
TrainingLog read_history_json(const std::string& path, const std::string& text)
{
    nlohmann::ordered_json j;
    try {
        j = nlohmann::ordered_json::parse(python_json_to_json(text));
    } catch (const nlohmann::json::parse_error& e) {
        throw IOError(path + ": not a History JSON file (" + e.what() + ")");
    }
    if (!j.is_object())
        throw ValueError(path + ": expected a JSON object of metric -> one value per epoch (json.dump(history.history)), "
                                "got " + std::string(j.type_name()));
    TrainingLog log;
    log.path = path;
    std::size_t rows = 0;
    std::vector<double> epoch_column;
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (!it.value().is_array())
            continue;
        std::vector<double> v;
        bool numeric = true;
        for (const auto& e : it.value()) {
            if (e.is_number())
                v.push_back(e.get<double>());
            else if (e.is_null())
                v.push_back(std::numeric_limits<double>::quiet_NaN());
            else
                numeric = false;
        }
        if (!numeric)
            continue;
        if (it.key() == "epoch") {
            epoch_column = std::move(v);
            continue;
        }
        if (log.values.count(it.key()))
            continue;
        rows = std::max(rows, v.size());
        log.columns.push_back(it.key());
        log.values[it.key()] = std::move(v);
    }
    if (log.columns.empty() || rows == 0)
        throw ValueError(path + ": no metric with values; expected a History JSON object of metric -> one value per "
                                "epoch (json.dump(history.history)), e.g. {\"loss\": [0.9, 0.5]}");
    for (auto& kv : log.values)
        kv.second.resize(rows, std::numeric_limits<double>::quiet_NaN());
    for (std::size_t r = 0; r < rows; ++r)
        log.epochs.push_back(epoch_column.size() == rows ? epoch_column[r] + 1 : double(r + 1));
    return log;
}
} // namespace

TrainingLog read_training_log(const std::string& path, char separator)
{
    std::ifstream file(path, std::ios::binary);
    if (!file)
        throw IOError(path + ": cannot open the training log: " + std::strerror(errno));
    const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const std::size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string::npos && (text[first] == '{' || text[first] == '[')) // Note [History JSON]
        return read_history_json(path, text);
    std::istringstream in(text);
    TrainingLog log;
    log.path = path;
    std::string line;
    std::vector<std::string> header;
    std::vector<std::vector<double>> columns;
    std::vector<bool> numeric;
    std::size_t line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (line.empty())
            continue;
        std::vector<std::string> fields = split_record(line, separator);
        if (header.empty()) {
            header = std::move(fields);
            columns.assign(header.size(), {});
            numeric.assign(header.size(), true);
            continue;
        }
        if (fields.size() != header.size())
            throw IOError(path + ":" + std::to_string(line_no) + ": expected " + std::to_string(header.size()) +
                          " fields as in the header, got " + std::to_string(fields.size()));
        for (std::size_t i = 0; i < fields.size(); ++i) {
            double v = 0;
            if (!parse_value(fields[i], v))
                numeric[i] = false;
            columns[i].push_back(v);
        }
    }
    if (header.empty())
        throw ValueError(path + ": empty; expected a CSVLogger file (a header \"epoch,loss,...\" and a row per epoch)");
    const auto epoch_at = std::find(header.begin(), header.end(), "epoch") - header.begin();
    const std::size_t rows = columns[0].size();
    for (std::size_t r = 0; r < rows; ++r)
        log.epochs.push_back(epoch_at < std::ptrdiff_t(header.size()) && numeric[epoch_at] ? columns[epoch_at][r] + 1
                                                                                           : double(r + 1));
    for (std::size_t i = 0; i < header.size(); ++i) {
        if (std::ptrdiff_t(i) == epoch_at || !numeric[i] || log.values.count(header[i]))
            continue;
        log.columns.push_back(header[i]);
        log.values[header[i]] = std::move(columns[i]);
    }
    if (log.columns.empty() || rows == 0)
        throw ValueError(path + ": no numeric columns besides \"epoch\" (" + std::to_string(rows) +
                         " rows); expected a CSVLogger file with at least one epoch");
    return log;
}

bool can_run_program(const std::string& program)
{
    if (program.find('/') != std::string::npos)
        return access(program.c_str(), X_OK) == 0;
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
        struct stat st;
        if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
            return true;
    }
    return false;
}

void plot_training_curves(const TrainingLog& log, const std::string& output, const PlotOptions& options)
{
    const bool svg = ends_with(output, ".svg");
    if (!svg && !ends_with(output, ".png"))
        throw ValueError("plot: the output '" + output + "' must end in .png or .svg (the picture's format)");
    std::vector<std::string> metrics = options.metrics.empty() ? log.metrics() : options.metrics;
    std::vector<std::pair<std::string, std::vector<std::string>>> panels;
    for (std::string m : metrics) {
        if (starts_with(m, "val_") && log.values.count(m))
            m = m.substr(4); // a validation column stands for its metric: both curves
        std::vector<std::string> curves;
        for (const std::string& c : { m, "val_" + m })
            if (log.values.count(c))
                curves.push_back(c);
        if (curves.empty()) {
            std::string have;
            for (const auto& c : log.metrics())
                have += (have.empty() ? "" : ", ") + c;
            throw ValueError(log.path + ": no metric '" + m + "' (the log has: " + have + ")");
        }
        panels.emplace_back(m, curves);
    }
    if (!can_run_program(options.gnuplot))
        throw IOError("cannot run gnuplot ('" + options.gnuplot + "' not found in PATH); the training curves are "
                      "drawn by gnuplot (Debian: apt install gnuplot-nox)");
    const std::size_t width = options.width ? options.width : 800;
    const std::size_t height = options.height ? options.height : 300 * panels.size();
    const std::string title = options.title.empty() ? base_name(log.path) : options.title;
    io::write_atomically(output, [&](const std::string& tmp) {
        const std::string err = tmp + ".gnuplot.txt";
        int status = 0;
        try {
            status = run_gnuplot(options.gnuplot, plot_script(log, tmp, svg, width, height, title, panels), err);
        } catch (...) {
            std::remove(err.c_str());
            throw;
        }
        const std::string message = status != 0 ? first_error_line(err) : std::string();
        std::remove(err.c_str());
        struct stat st;
        if (status != 0 || stat(tmp.c_str(), &st) != 0 || st.st_size == 0)
            throw IOError(output + ": gnuplot failed (exit status " + std::to_string(status) + ")" +
                          (message.empty() ? std::string() : ": " + message));
    });
}

template <class T>
PlotHistory<T>::PlotHistory(std::string path, PlotOptions options)
    : m_path(std::move(path))
    , m_options(std::move(options))
{
}

template <class T>
void PlotHistory<T>::on_train_begin(Logs&)
{
    if (!ends_with(m_path, ".png") && !ends_with(m_path, ".svg"))
        throw ValueError("PlotHistory: the picture '" + m_path + "' must end in .png or .svg");
    if (!can_run_program(m_options.gnuplot))
        throw IOError("PlotHistory: cannot run gnuplot ('" + m_options.gnuplot + "' not found in PATH); the "
                      "training curves are drawn by gnuplot (Debian: apt install gnuplot-nox)");
    m_log = TrainingLog();
    m_log.path = m_path;
}

template <class T>
void PlotHistory<T>::on_epoch_end(int epoch, Logs& logs)
{
    // A key that appears later (or disappears) gets NaN where it has no value.
    const std::size_t rows = m_log.epochs.size();
    for (const auto& kv : logs) {
        if (!m_log.values.count(kv.first)) {
            m_log.columns.push_back(kv.first);
            m_log.values[kv.first].assign(rows, std::numeric_limits<double>::quiet_NaN());
        }
    }
    m_log.epochs.push_back(epoch + 1);
    for (const auto& c : m_log.columns) {
        auto it = logs.find(c);
        m_log.values[c].push_back(it == logs.end() ? std::numeric_limits<double>::quiet_NaN() : it->second);
    }
    if (!m_log.columns.empty())
        plot_training_curves(m_log, m_path, m_options);
}

template <class T>
void save_history_json(const History<T>& history, const std::string& path)
{
    json j = json::object();
    for (const auto& kv : history.history)
        j[kv.first] = kv.second; // NaN and infinities become null
    io::write_atomically(path, [&](const std::string& tmp) {
        std::ofstream out(tmp, std::ios::binary);
        out << j.dump() << "\n";
        out.flush();
        if (!out)
            throw IOError(path + ": cannot write the History JSON");
    });
}

template class PlotHistory<float>;
template class PlotHistory<double>;
template void save_history_json(const History<float>&, const std::string&);
template void save_history_json(const History<double>&, const std::string&);

} // namespace xtape
