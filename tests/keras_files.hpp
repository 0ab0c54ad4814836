// Helpers for the tests that read real Keras files (../shared/keras-models, see its README)
// and write temporary ones.
#pragma once

#include "framework/errors.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <unistd.h>

namespace xtape::testing {

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
};

inline std::filesystem::path keras_models_dir()
{
    return std::filesystem::path(XTAPE_SOURCE_DIR) / ".." / "shared" / "keras-models";
}

/// False, with a visible message, when the real Keras files are not there.
inline bool have_keras_models()
{
    if (std::filesystem::exists(keras_models_dir() / "dl4j-test-resources"))
        return true;
    MESSAGE("SKIPPED: real Keras files not found at " << keras_models_dir().string());
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
