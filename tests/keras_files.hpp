// Helpers for the tests that read real Keras files (../shared/keras-models, see its README)
// and write temporary ones.
#pragma once

#include "framework/errors.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace xtape::testing {

/// The whole file as bytes ("" when it cannot be read).
inline std::string read_bytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// Replaces the file with `bytes`.
inline void write_bytes(const std::string& path, const std::string& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}


/// A fresh directory per test case, removed when it goes out of scope.
struct TempDir {
    std::filesystem::path dir;
    explicit TempDir(const std::string& tag)
    {
        static int counter = 0;
        dir = std::filesystem::temp_directory_path() /
              ("xtape_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    std::string file(const std::string& name) const { return (dir / name).string(); }
    /// Names in the directory, sorted: proves that a save left no temporary behind.
    std::vector<std::string> names() const
    {
        std::vector<std::string> v;
        for (const auto& e : std::filesystem::directory_iterator(dir))
            v.push_back(e.path().filename().string());
        std::sort(v.begin(), v.end());
        return v;
    }
};

// Note [Visible skips]
// A test case that reads the real Keras files carries the decorator `* real_files()` and starts
// with `if (!have_keras_models()) return;`. tests/CMakeLists.txt registers a test file that has
// such cases twice with ctest: "<name>" runs the other cases (--test-suite-exclude), and
// "<name>_real_files" runs these (--test-suite). When the folder is absent, the skip message
// below makes ctest report "<name>_real_files" as Skipped (SKIP_REGULAR_EXPRESSION), so the skip
// shows in ctest's summary while the cases that need no files still run, and fail, as usual.
// have_keras_models() fails a case that is not in the suite, so a forgotten decorator cannot
// bring back a silent skip.
inline constexpr const char* real_files_suite = "keras_models";
inline constexpr const char* real_files_skip_message = "SKIPPED: real Keras files not found at ";

inline doctest::test_suite real_files() { return doctest::test_suite(real_files_suite); }

/// The test suite of the running test case, kept by the listener below.
inline std::string& current_test_suite()
{
    static std::string suite;
    return suite;
}

struct TestSuiteListener : doctest::IReporter {
    explicit TestSuiteListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats&) override {}
    void test_case_start(const doctest::TestCaseData& tc) override
    {
        current_test_suite() = tc.m_test_suite ? tc.m_test_suite : "";
    }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};
DOCTEST_REGISTER_LISTENER("xtape_test_suite", 1, TestSuiteListener);

/// ../shared/keras-models from the project root; the environment variable
/// XTAPE_KERAS_MODELS_DIR overrides it (e.g. to check that a missing folder is reported).
inline std::filesystem::path keras_models_dir()
{
    if (const char* dir = std::getenv("XTAPE_KERAS_MODELS_DIR"))
        return std::filesystem::path(dir);
    return std::filesystem::path(XTAPE_SOURCE_DIR) / ".." / "shared" / "keras-models";
}

/// False, with the skip message of Note [Visible skips], when the real Keras files are not there.
inline bool have_keras_models()
{
    if (current_test_suite() != real_files_suite)
        FAIL_CHECK("this test case reads the real Keras files: add the decorator * real_files() so that "
                   "ctest can report it as skipped when the folder is absent (Note [Visible skips])");
    if (std::filesystem::exists(keras_models_dir() / "dl4j-test-resources"))
        return true;
    const std::string skip = real_files_skip_message + keras_models_dir().string();
    MESSAGE(skip);
    return false;
}

inline std::string keras_file(const std::string& rel) { return (keras_models_dir() / rel).string(); }

/// Runs f, which must throw E (or a subclass) whose message contains every one of `parts`.
/// Returns the message.
template <class E>
std::string expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts)
{
    try {
        f();
    } catch (const E& e) {
        const std::string msg = e.what();
        INFO("message: " << msg);
        for (const auto& p : parts)
            CHECK_MESSAGE(msg.find(p) != std::string::npos, "missing '" << p << "'");
        return msg;
    } catch (const std::exception& e) {
        FAIL("expected another exception type; got: " << e.what());
        return {};
    }
    FAIL("expected an exception containing '" << *parts.begin() << "'");
    return {};
}

} // namespace xtape::testing
