// BackupAndRestore: a training process killed with SIGKILL (between batches, and inside a
// backup write) and started again ends with the weights of an uninterrupted run, bit for bit.
// The killed runs are child processes: this test executable run again on its "child" case,
// told what to do by the environment (exec, not a bare fork: OpenMP's threads do not survive one).
#include "saving/backup_and_restore.hpp"

#include "framework/io/atomic_file.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "saving_helpers.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::TempDir;

namespace test_backup_and_restore {

constexpr const char* k_child_env = "XTAPE_BACKUP_CHILD";

/// Kills this process with SIGKILL before the batch `at` (counted over the process's life).
struct KillAtBatch : Callback<float> {
    int at, seen = 0;
    explicit KillAtBatch(int a)
        : at(a)
    {
    }
    void on_train_batch_begin(int, Logs&) override
    {
        if (seen++ == at)
            std::raise(SIGKILL);
    }
};

/// The run every case makes: a seeded model with dropout and batch norm, shuffled batches,
/// Adam; 4 epochs of 8 batches. Returns the final weights.
std::vector<array_t<float>> train(const std::string& backup_dir, const std::string& save_freq, int kill_batch = -1,
                                  bool* restored = nullptr)
{
    set_random_seed(42);
    auto model = std::make_shared<Sequential<float>>();
    model->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    model->add(std::make_shared<Dense<float>>(16, "relu"));
    model->add(std::make_shared<Dropout<float>>(0.3));
    model->add(std::make_shared<BatchNormalization<float>>());
    model->add(std::make_shared<Dense<float>>(3, "softmax"));
    model->compile("adam", "sparse_categorical_crossentropy");
    const auto data = xtape::testing::small_data(64);
    FitOptions<float> fo;
    fo.epochs = 4;
    fo.batch_size = 8;
    fo.verbose = 0;
    fo.shuffle = true;
    std::shared_ptr<BackupAndRestore<float>> backup;
    if (!backup_dir.empty()) {
        backup = std::make_shared<BackupAndRestore<float>>(backup_dir, save_freq);
        fo.callbacks.push_back(backup);
    }
    if (kill_batch >= 0)
        fo.callbacks.push_back(std::make_shared<KillAtBatch>(kill_batch));
    model->fit(data.x, data.y, fo);
    if (restored)
        *restored = backup && backup->restored();
    return model->get_weights();
}

/// Runs this executable's child case with `spec` ("dir|save_freq|kill_batch|kill_write") and
/// returns how it ended: the signal that killed it, or -exit status.
int run_child(const std::string& spec)
{
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, k_child_env, std::strlen(k_child_env)) != 0)
            env_strings.emplace_back(*e);
    env_strings.push_back(std::string(k_child_env) + "=" + spec);
    std::vector<char*> envp;
    for (auto& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", filter = "--test-case=backup_and_restore: child process";
    std::string quiet = "--no-version=true";
    char* argv[] = { exe.data(), filter.data(), quiet.data(), nullptr };
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        return WTERMSIG(status);
    return -WEXITSTATUS(status);
}

bool bit_identical(const std::vector<array_t<float>>& a, const std::vector<array_t<float>>& b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].shape() != b[i].shape() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
            return false;
    return true;
}

} // namespace test_backup_and_restore

using namespace test_backup_and_restore;

TEST_CASE("backup_and_restore: child process")
{
    const char* spec = std::getenv(k_child_env);
    if (!spec)
        return; // only the killed runs below start this case with a task
    std::istringstream in(spec);
    std::string dir, freq, kill_batch, kill_write;
    std::getline(in, dir, '|');
    std::getline(in, freq, '|');
    std::getline(in, kill_batch, '|');
    std::getline(in, kill_write, '|');
    int writes = 0;
    const int kill_at_write = std::stoi(kill_write);
    io::testing::set_atomic_write_fault_hook([&](const std::string& stage) {
        // Inside write_atomically: the new backup is written but not yet renamed into place.
        if (stage == "written" && ++writes == kill_at_write)
            std::raise(SIGKILL);
    });
    train(dir, freq, std::stoi(kill_batch));
    std::_Exit(3); // the child is meant to be killed before the end of fit
}

TEST_CASE("backup_and_restore: a run killed and started again ends bit-identical to an uninterrupted one")
{
    const std::vector<array_t<float>> reference = train("", "epoch");
    {
        // Different seeds give different weights: the comparison below can tell runs apart.
        TempDir tmp("backup_plain");
        CHECK(bit_identical(train(tmp.file("b"), "epoch"), reference));
        CHECK(!std::filesystem::exists(tmp.file("b"))); // delete_checkpoint after a complete fit
    }
    struct Scenario {
        const char* what;
        const char* save_freq;
        std::vector<std::pair<int, int>> kills; // (batch, backup write) per killed run; -1: none
    };
    const std::vector<Scenario> scenarios = {
        { "killed mid-epoch, backups every 3 batches", "3", { { 14, -1 } } },
        { "killed after a backup at an epoch's last batch", "4", { { 10, -1 } } },
        { "killed mid-epoch, backups every epoch", "epoch", { { 13, -1 } } },
        { "killed inside the third backup write", "3", { { -1, 3 } } },
        { "killed at the epoch end's write", "epoch", { { -1, 2 } } },
        { "killed twice: mid-epoch, then again after resuming", "5", { { 7, -1 }, { 11, -1 } } },
    };
    for (const Scenario& s : scenarios) {
        CAPTURE(s.what);
        TempDir tmp("backup_kill");
        const std::string dir = tmp.file("backup");
        for (const auto& k : s.kills) {
            const std::string spec = dir + "|" + s.save_freq + "|" + std::to_string(k.first) + "|" +
                                     std::to_string(k.second);
            CHECK(run_child(spec) == SIGKILL);
        }
        REQUIRE(std::filesystem::exists(dir + "/backup.h5"));
        bool restored = false;
        const std::vector<array_t<float>> resumed = train(dir, s.save_freq, -1, &restored);
        CHECK(restored);
        CHECK(bit_identical(resumed, reference));
        CHECK(!std::filesystem::exists(dir)); // backup and killed writes' temporaries removed
    }
}

TEST_CASE("backup_and_restore: arguments and backups that do not fit are refused")
{
    expect_error<ValueError>([] { BackupAndRestore<float>(""); }, { "Empty `backup_dir`" });
    expect_error<ValueError>([] { BackupAndRestore<float>("d", "sometimes"); }, { "save_freq", "sometimes" });
    expect_error<ValueError>([] { BackupAndRestore<float>("d", "0"); }, { "save_freq=0" });
    TempDir tmp("backup_bad");
    const std::string dir = tmp.file("b");
    // A backup of another model: the restarted fit stops with the file named, weights untouched.
    {
        set_random_seed(1);
        auto small = std::make_shared<Sequential<float>>();
        small->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
        small->add(std::make_shared<Dense<float>>(2));
        small->compile("sgd", "mse");
        FitOptions<float> fo = xtape::testing::quiet_fit(1);
        fo.callbacks.push_back(std::make_shared<BackupAndRestore<float>>(dir, "epoch", false));
        small->fit(xtape::testing::random_array({ 8, 6 }, 1), xtape::testing::random_array({ 8, 2 }, 2), fo);
    }
    REQUIRE(std::filesystem::exists(dir + "/backup.h5")); // delete_checkpoint=false keeps it
    auto other = std::make_shared<Sequential<float>>();
    other->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    other->add(std::make_shared<Dense<float>>(3));
    other->compile("sgd", "mse");
    const auto before = other->get_weights();
    FitOptions<float> fo = xtape::testing::quiet_fit(1);
    fo.callbacks.push_back(std::make_shared<BackupAndRestore<float>>(dir));
    expect_error<ValueError>([&] { other->fit(xtape::testing::random_array({ 8, 6 }, 1),
                                              xtape::testing::random_array({ 8, 3 }, 2), fo); },
                             { "backup.h5", "shape" });
    CHECK(bit_identical(other->get_weights(), before));
    // An unbuilt model cannot take the weights back (Keras's message).
    auto unbuilt = std::make_shared<Sequential<float>>();
    unbuilt->add(std::make_shared<Dense<float>>(3));
    unbuilt->compile("sgd", "mse");
    expect_error<ValueError>([&] { unbuilt->fit(xtape::testing::random_array({ 8, 6 }, 1),
                                                xtape::testing::random_array({ 8, 3 }, 2), fo); },
                             { "must be built before you call `fit()`" });
}
