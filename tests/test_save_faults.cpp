// Saves that survive faults: every writer (save_model and save_weights in both layouts,
// ModelCheckpoint, BackupAndRestore, CSVLogger, .npy as the CLI writes it) fails at each of its
// failure points in turn and leaves the previous file byte for byte, with no temporary behind;
// a file size limit (RLIMIT_FSIZE, the disk filling up) gives an error naming the file; two
// processes saving one checkpoint at once leave one complete file.
// RLIMIT_FSIZE and concurrent processes run in forked children that only save (no OpenMP).
#include "framework/io/atomic_file.hpp"
#include "framework/io/npy.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving/backup_and_restore.hpp"
#include "saving/keras_h5.hpp"
#include "saving/model_checkpoint.hpp"
#include "saving_helpers.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstring>
#include <functional>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace xtape;
using xtape::testing::read_bytes;
using xtape::testing::TempDir;

namespace test_save_faults {

std::shared_ptr<Sequential<float>> model(std::uint64_t seed)
{
    set_random_seed(seed);
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    m->add(std::make_shared<Dense<float>>(8, "relu"));
    m->add(std::make_shared<Dense<float>>(3, "softmax"));
    m->compile("adam", "sparse_categorical_crossentropy");
    return m;
}

/// One epoch of fit with `cb`, stopping after it whatever the epoch count (so that a
/// BackupAndRestore that resumes always has an epoch left to run).
void fit_one_epoch(Model<float>& m, CallbackPtr<float> cb)
{
    struct StopAfterEpoch : Callback<float> {
        void on_epoch_end(int, Logs&) override { this->model()->set_stop_training(true); }
    };
    const auto d = xtape::testing::small_data(16);
    FitOptions<float> fo = xtape::testing::quiet_fit(1000);
    fo.callbacks = { std::move(cb), std::make_shared<StopAfterEpoch>() };
    m.fit(d.x, d.y, fo);
}

struct Writer {
    const char* what;
    const char* file;
    /// Writes `m`'s state to dir/file; `direct`: without fit (for forked children).
    std::function<void(Model<float>& m, const std::string& dir, bool direct)> write;
};

std::vector<Writer> writers()
{
    auto cb_direct = [](Model<float>& m, Callback<float>& cb) {
        Logs logs;
        cb.set_model(&m);
        cb.set_params(CallbackParams{ 0, 1, 2 });
        cb.on_train_begin(logs);
        cb.on_epoch_begin(0, logs);
        logs["loss"] = 0.5;
        cb.on_epoch_end(0, logs);
    };
    return {
        { "save_model (HDF5)", "m.h5", [](Model<float>& m, const std::string& d, bool) { save_model(m, d + "/m.h5"); } },
        { "save_weights (HDF5)", "w.h5", [](Model<float>& m, const std::string& d, bool) { save_weights(m, d + "/w.h5"); } },
        { "save_model (.keras)", "m.keras",
          [](Model<float>& m, const std::string& d, bool) { save_model(m, d + "/m.keras"); } },
        { "save_weights (.weights.h5)", "w.weights.h5",
          [](Model<float>& m, const std::string& d, bool) { save_weights(m, d + "/w.weights.h5"); } },
        { "write_npy (the CLI's predict output)", "y.npy",
          [](Model<float>& m, const std::string& d, bool) { io::write_npy<float>(d + "/y.npy", m.get_weights()[0]); } },
        { "ModelCheckpoint", "ckpt.h5",
          [cb_direct](Model<float>& m, const std::string& d, bool direct) {
              auto cb = std::make_shared<ModelCheckpoint<float>>(d + "/ckpt.h5");
              direct ? cb_direct(m, *cb) : fit_one_epoch(m, cb);
          } },
        { "BackupAndRestore", "backup/backup.h5",
          [cb_direct](Model<float>& m, const std::string& d, bool direct) {
              auto cb = std::make_shared<BackupAndRestore<float>>(d + "/backup", "epoch", false);
              direct ? cb_direct(m, *cb) : fit_one_epoch(m, cb);
          } },
        { "CSVLogger", "log.csv",
          [cb_direct](Model<float>& m, const std::string& d, bool direct) {
              auto cb = std::make_shared<CSVLogger<float>>(d + "/log.csv", ",", true);
              direct ? cb_direct(m, *cb) : fit_one_epoch(m, cb);
          } },
    };
}

/// Both fault hooks (atomic writes' stages, the HDF5 saver's stages) call `f` with the stage.
struct Hooks {
    explicit Hooks(const std::function<void(const std::string&)>& f)
    {
        io::testing::set_atomic_write_fault_hook(f);
        keras_h5::testing::set_save_fault_hook(f);
    }
    ~Hooks()
    {
        io::testing::set_atomic_write_fault_hook({});
        keras_h5::testing::set_save_fault_hook({});
    }
};

/// The files under `dir`, recursively (temporaries would show here).
std::vector<std::string> files_under(const std::string& dir)
{
    std::vector<std::string> v;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
        v.push_back(std::filesystem::relative(e.path(), dir).string());
    std::sort(v.begin(), v.end());
    return v;
}

} // namespace test_save_faults

using namespace test_save_faults;

TEST_CASE("save_faults: a write failing at each point in turn leaves the previous file and no temporary")
{
    for (const Writer& w : writers()) {
        CAPTURE(w.what);
        TempDir tmp("save_faults");
        const std::string dir = tmp.dir.string(), path = dir + "/" + w.file;
        auto m = model(1);
        w.write(*m, dir, false);
        // Count the failure points of one write (and take its file as the previous one).
        int points = 0;
        {
            Hooks count([&](const std::string&) { ++points; });
            w.write(*m, dir, false);
        }
        const std::string previous = read_bytes(path);
        const std::vector<std::string> files = files_under(dir);
        REQUIRE(!previous.empty());
        REQUIRE(points >= 2);
        for (int k = 0; k < points; ++k) {
            CAPTURE(k);
            int seen = 0;
            Hooks fail([&](const std::string& stage) {
                if (seen++ == k)
                    throw IOError("injected fault at " + stage);
            });
            xtape::testing::expect_error<IOError>([&] { w.write(*m, dir, false); }, { "injected fault" });
            CHECK(read_bytes(path) == previous);
            CHECK(files_under(dir) == files);
        }
    }
}

TEST_CASE("save_faults: a full disk (RLIMIT_FSIZE) fails the write with the file named, the previous file intact")
{
    for (const Writer& w : writers()) {
        CAPTURE(w.what);
        TempDir tmp("save_fsize");
        const std::string dir = tmp.dir.string(), path = dir + "/" + w.file;
        auto a = model(1), b = model(2);
        w.write(*b, dir, true);
        const std::size_t new_size = read_bytes(path).size();
        w.write(*a, dir, true);
        const std::string previous = read_bytes(path);
        const std::vector<std::string> files = files_under(dir);
        // Below both sizes, so that the new write cannot fit (a CSV log grows with every write).
        const std::size_t m = std::min(new_size, previous.size());
        REQUIRE(m > 2);
        for (std::size_t limit : { std::size_t(0), std::size_t(1), m / 2, m - 1 }) {
            CAPTURE(limit);
            std::fflush(nullptr);
            const pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                // The child: only the write, under the limit; SIGXFSZ ignored so write() fails with EFBIG.
                std::signal(SIGXFSZ, SIG_IGN);
                const rlim_t l = static_cast<rlim_t>(limit);
                struct rlimit rl = { l, l };
                setrlimit(RLIMIT_FSIZE, &rl);
                int code = 0;
                try {
                    w.write(*b, dir, true);
                    code = 1; // must not succeed
                } catch (const std::exception& e) {
                    const std::string msg = e.what();
                    if (msg.find(path) == std::string::npos && msg.find(dir) == std::string::npos) {
                        std::fprintf(stderr, "message does not name the file: %s\n", msg.c_str());
                        code = 2;
                    }
                }
                std::_Exit(code);
            }
            int status = 0;
            REQUIRE(waitpid(pid, &status, 0) == pid);
            CHECK(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
            CHECK(read_bytes(path) == previous);
            CHECK(files_under(dir) == files);
        }
    }
}

TEST_CASE("save_faults: two processes saving the same checkpoint leave one complete file")
{
    TempDir tmp("save_race");
    const std::string path = tmp.file("ckpt.h5");
    auto a = model(1), b = model(2);
    std::fflush(nullptr);
    std::vector<pid_t> pids;
    for (int p = 0; p < 2; ++p) {
        const pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            int code = 0;
            try {
                for (int i = 0; i < 15; ++i)
                    save_model(p == 0 ? *a : *b, path);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "%s\n", e.what());
                code = 1;
            }
            std::_Exit(code);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) {
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    auto loaded = load_model<float>(path);
    const auto got = loaded->get_weights(), wa = a->get_weights(), wb = b->get_weights();
    auto same = [&](const std::vector<array_t<float>>& w) {
        for (std::size_t i = 0; i < w.size(); ++i)
            if (xtape::testing::max_abs_diff(got[i], w[i]) != 0.0)
                return false;
        return true;
    };
    CHECK((same(wa) || same(wb)));
    CHECK(tmp.names() == std::vector<std::string>{ "ckpt.h5" });
}
