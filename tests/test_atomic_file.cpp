// ctest-labels: sanitize
#include "framework/io/atomic_file.hpp"
#include "framework/io/hdf5.hpp"
#include "tests/keras_files.hpp"

#include <doctest/doctest.h>
#include <xtensor/xbuilder.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace xtape;
using xtape::testing::TempDir;
using namespace xtape::io;
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream os;
    os << in.rdbuf();
    return os.str();
}

void put(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A failure the writer raises itself; it must come out unchanged.
struct DiskFull : std::runtime_error {
    DiskFull()
        : std::runtime_error("simulated: disk full")
    {
    }
};

// Writes half of the new content, then fails.
void half_then_throw(const std::string& tmp)
{
    std::ofstream f(tmp, std::ios::binary);
    f << "NEW CONTENT, PART ONE";
    f.flush();
    REQUIRE(fs::file_size(tmp) > 0);
    throw DiskFull();
}

struct HookGuard {
    ~HookGuard() { io::testing::set_atomic_write_fault_hook({}); }
};

} // namespace

TEST_CASE("atomic_file: writes a new file and replaces an old one, keeping its permissions")
{
    TempDir tmp("test_atomic");
    const std::string path = tmp.file("out.txt");
    std::string seen_tmp;
    write_atomically(path, [&](const std::string& t) {
        seen_tmp = t;
        CHECK_FALSE(fs::exists(path)); // the target only appears at the end
        put(t, "first");
    });
    CHECK(slurp(path) == "first");
    CHECK(seen_tmp.rfind(path + ".tmp." + std::to_string(::getpid()) + ".", 0) == 0);
    CHECK(tmp.names() == std::vector<std::string>{ "out.txt" });

    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    std::string second_tmp;
    write_atomically(path, [&](const std::string& t) {
        second_tmp = t;
        CHECK(slurp(path) == "first"); // readers still see the old file while we write
        put(t, "second");
    });
    CHECK(second_tmp != seen_tmp);
    CHECK(slurp(path) == "second");
    CHECK((fs::status(path).permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
    CHECK(tmp.names() == std::vector<std::string>{ "out.txt" });
}

TEST_CASE("atomic_file: a writer failing midway leaves the old file intact and no temporary")
{
    TempDir tmp("test_atomic");
    const std::string path = tmp.file("model.txt");
    put(path, "OLD CONTENT");
    CHECK_THROWS_AS(write_atomically(path, half_then_throw), DiskFull);
    CHECK(slurp(path) == "OLD CONTENT");
    CHECK(tmp.names() == std::vector<std::string>{ "model.txt" });

    // No previous file: nothing appears at all.
    const std::string fresh = tmp.file("fresh.txt");
    CHECK_THROWS_WITH(write_atomically(fresh, half_then_throw), "simulated: disk full");
    CHECK_FALSE(fs::exists(fresh));
    CHECK(tmp.names() == std::vector<std::string>{ "model.txt" });
}

TEST_CASE("atomic_file: failures after the writer (test hook, missing temporary, rename) also roll back")
{
    TempDir tmp("test_atomic");
    HookGuard guard;
    const std::string path = tmp.file("model.txt");
    put(path, "OLD");
    for (const char* stage : { "written", "synced" }) {
        CAPTURE(stage);
        std::vector<std::string> stages;
        io::testing::set_atomic_write_fault_hook([&](const std::string& s) {
            stages.push_back(s);
            if (s == stage)
                throw IOError("injected failure at " + s);
        });
        CHECK_THROWS_WITH_AS(write_atomically(path, [](const std::string& t) { put(t, "NEW"); }),
                             (std::string("injected failure at ") + stage).c_str(), IOError);
        CHECK(stages.back() == stage);
        CHECK(slurp(path) == "OLD");
        CHECK(tmp.names() == std::vector<std::string>{ "model.txt" });
    }
    std::vector<std::string> stages;
    io::testing::set_atomic_write_fault_hook([&](const std::string& s) { stages.push_back(s); });
    write_atomically(path, [](const std::string& t) { put(t, "NEW"); });
    CHECK(stages == std::vector<std::string>{ "written", "synced" });
    CHECK(slurp(path) == "NEW");
    io::testing::set_atomic_write_fault_hook({});

    try {
        write_atomically(path, [](const std::string&) {});
        FAIL("a writer that creates nothing must be an error");
    } catch (const IOError& e) {
        CHECK(std::string(e.what()).find(path + ": the writer did not create") == 0);
    }
    CHECK(slurp(path) == "NEW");

    // The target is a non-empty directory: rename fails, the temporary goes away.
    const std::string dir_target = tmp.file("a_dir");
    fs::create_directories(dir_target + "/inside");
    try {
        write_atomically(dir_target, [](const std::string& t) { put(t, "x"); });
        FAIL("renaming over a directory must fail");
    } catch (const IOError& e) {
        CHECK(std::string(e.what()).find(dir_target + ": cannot rename") == 0);
    }
    CHECK(tmp.names() == std::vector<std::string>{ "a_dir", "model.txt" });
}

TEST_CASE("atomic_file: an HDF5 save that fails midway keeps the previous model readable")
{
    TempDir tmp("test_atomic");
    const std::string path = tmp.file("weights.h5");
    array_t<float> old_kernel = xt::arange<float>(12.f);
    old_kernel.reshape({ 3, 4 });
    auto save = [&](const array_t<float>& kernel, bool fail_midway) {
        write_atomically(path, [&](const std::string& t) {
            H5File f = H5File::create(t);
            {
                H5Group layer = f.root().create_group("model_weights/dense_1");
                layer.write_string_array_attribute("weight_names", { "dense_1/kernel:0", "dense_1/bias:0" });
                layer.write_dataset<float>("dense_1/kernel:0", kernel);
                if (fail_midway)
                    throw DiskFull(); // before the bias is written
                layer.write_dataset<float>("dense_1/bias:0", array_t<float>{ 1, 2, 3, 4 });
            }
            f.close();
        });
    };
    save(old_kernel, false);
    CHECK_THROWS_AS(save(old_kernel * 10.f, true), DiskFull);
    CHECK(tmp.names() == std::vector<std::string>{ "weights.h5" });
    {
        H5Group layer = H5File::open_read(path).root().group("model_weights/dense_1");
        CHECK(layer.read_dataset<float>("dense_1/kernel:0") == old_kernel);
        CHECK(layer.read_dataset<float>("dense_1/bias:0") == array_t<float>{ 1, 2, 3, 4 });
    }
    save(old_kernel * 10.f, false);
    H5Group layer = H5File::open_read(path).root().group("model_weights/dense_1");
    CHECK(layer.read_dataset<float>("dense_1/kernel:0") == array_t<float>(old_kernel * 10.f));
}
