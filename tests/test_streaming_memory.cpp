// The CLI's fit streams its HDF5 data: a data file larger than the memory it may use trains.
// The CLI runs in a child process whose address space is limited (RLIMIT_AS, set between fork
// and exec) to its measured peak on a small file plus a headroom smaller than the big file.
// Not under the sanitizers (ASan reserves terabytes of address space): no "sanitize" label.
#include "framework/io/hdf5.hpp"
#include "framework/sequential.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving/keras_h5.hpp"
#include "tests/keras_files.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace xtape;
using xtape::testing::TempDir;

namespace test_streaming_memory {

struct Limited {
    int status = -1;
    std::size_t peak_bytes = 0; ///< the largest VmPeak seen while it ran (after exec)
    double seconds = 0;
    std::string err;
};

std::string base_name(const std::string& p) { return p.substr(p.find_last_of('/') + 1); }

/// VmPeak of `pid` in bytes when it already runs the CLI (its comm is the CLI's name), else 0.
std::size_t vm_peak_of_cli(pid_t pid)
{
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name.empty() || name != base_name(XTAPE_CLI_PATH).substr(0, 15))
        return 0; // not exec'd yet: the fork's copy of this process
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmPeak:", 0) == 0) {
            std::istringstream in(line.substr(7));
            std::size_t kb = 0;
            in >> kb;
            return kb * 1024;
        }
    return 0;
}

/// Runs the CLI with `args` in a child limited to `limit` bytes of address space (0: no limit),
/// stdout to /dev/null, stderr kept; polls its VmPeak until it exits. A child still running after
/// 60 s is killed (status -1): OpenBLAS, refused its buffer, retries forever rather than failing.
Limited run_limited(const TempDir& tmp, const std::vector<std::string>& args, std::size_t limit)
{
    // Everything the child needs is made before fork: between fork and exec it only calls
    // async-signal-safe functions.
    std::vector<std::string> strings{ XTAPE_CLI_PATH };
    strings.insert(strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : strings)
        argv.push_back(s.data());
    argv.push_back(nullptr);
    // Bounded malloc arenas: the address space then depends little on thread timing.
    std::vector<std::string> env_strings{ "MALLOC_ARENA_MAX=2" };
    for (char** e = environ; *e; ++e)
        if (std::string(*e).rfind("MALLOC_ARENA_MAX=", 0) != 0)
            env_strings.push_back(*e);
    std::vector<char*> envp;
    for (auto& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    const std::string err_path = tmp.file("stderr.txt");
    const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null_fd = ::open("/dev/null", O_WRONLY);
    REQUIRE(err_fd >= 0);
    REQUIRE(null_fd >= 0);
    const rlimit rl{ limit, limit };
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(null_fd, 1);
        dup2(err_fd, 2);
        if (limit > 0 && setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(126);
        execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    ::close(err_fd);
    ::close(null_fd);
    REQUIRE(pid > 0);
    Limited r;
    int status = 0;
    for (;;) {
        const pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            break;
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(60)) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        r.peak_bytes = std::max(r.peak_bytes, vm_peak_of_cli(pid));
        usleep(1000);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(err_path);
    std::stringstream ss;
    ss << in.rdbuf();
    r.err = ss.str();
    return r;
}

/// x (rows, features) and y (rows, 1) = a fixed linear function of x, float32.
void write_data(const std::string& path, std::size_t rows, std::size_t features)
{
    array_t<float> x = array_t<float>::from_shape({ rows, features }), y = array_t<float>::from_shape({ rows, 1 });
    float* px = x.data();
    for (std::size_t i = 0; i < rows; ++i) {
        float acc = 0;
        for (std::size_t j = 0; j < features; ++j) {
            const float v = static_cast<float>((i * 31 + j * 17) % 97) / 97.0f - 0.5f;
            px[i * features + j] = v;
            acc += j < 4 ? v : 0.0f;
        }
        y(i, 0) = acc;
    }
    io::H5File f = io::H5File::create(path);
    f.root().write_dataset<float>("x", x);
    f.root().write_dataset<float>("y", y);
    f.close();
}

} // namespace test_streaming_memory

using namespace test_streaming_memory;

TEST_CASE("streaming: xtape fit trains on an HDF5 file larger than the memory the process may use")
{
    if (std::string(XTAPE_CLI_PATH).empty()) {
        MESSAGE("SKIPPED: the xtape tool is not built (XTAPE_BUILD_TOOLS=OFF)");
        return;
    }
    TempDir tmp("streaming_memory");
    constexpr std::size_t features = 64, batch = 4096;
    constexpr std::size_t headroom = std::size_t(192) << 20;
    const std::size_t big_rows = (headroom / (features * sizeof(float))) * 5 / 4; // x alone: 240 MB
    reset_layer_names();
    Sequential<float> m("linear");
    m.add(std::make_shared<InputLayer<float>>(dims_t{ long(features) }));
    m.add(std::make_shared<Dense<float>>(1));
    m.compile("sgd", "mse");
    const std::string model = tmp.file("model.h5"), small = tmp.file("small.h5"), big = tmp.file("big.h5");
    save_model(m, model);
    write_data(small, 3 * batch, features);
    write_data(big, big_rows, features);
    const auto file_bytes = static_cast<std::size_t>(std::filesystem::file_size(big));
    REQUIRE(file_bytes > headroom);

    // The baseline: the same command on a small file, without a limit.
    auto fit = [&](const std::string& data, const std::string& out) {
        return std::vector<std::string>{ "fit", model, "--data", data, "--output", out, "--batch-size",
                                         std::to_string(batch), "--no-shuffle" };
    };
    const Limited base = run_limited(tmp, fit(small, tmp.file("small_out.h5")), 0);
    INFO("baseline stderr: " << base.err);
    REQUIRE(base.status == 0);
    REQUIRE(base.peak_bytes > 0);
    const std::size_t limit = base.peak_bytes + headroom;

    // Under the limit, reading the file whole fails (gradcheck reads its data whole; fit reading it
    // whole, as before streaming, hangs in OpenBLAS's buffer allocation until killed) ...
    const Limited whole = run_limited(tmp, { "gradcheck", model, "--data", big, "--samples", "2" }, limit);
    INFO("gradcheck stderr: " << whole.err);
    CHECK(whole.status == 1);
    CHECK(whole.err.find("bad_alloc") != std::string::npos);
    // ... and fit streams it.
    const Limited streamed = run_limited(tmp, fit(big, tmp.file("big_out.h5")), limit);
    INFO("fit stderr: " << streamed.err);
    CHECK(streamed.status == 0);
    CHECK(streamed.peak_bytes <= limit);
    MESSAGE("baseline VmPeak " << (base.peak_bytes >> 20) << " MiB, limit " << (limit >> 20) << " MiB, data file "
                               << (file_bytes >> 20) << " MiB; fit on it took " << streamed.seconds << " s, VmPeak "
                               << (streamed.peak_bytes >> 20) << " MiB");
    auto trained = load_model<float>(tmp.file("big_out.h5"));
    CHECK(trained->optimizer()->iterations() == (big_rows + batch - 1) / batch);
}
