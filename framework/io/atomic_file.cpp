#include "framework/io/atomic_file.hpp"

#include "framework/errors.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace xtape::io {

namespace {

std::function<void(const std::string&)>& fault_hook()
{
    static std::function<void(const std::string&)> hook;
    return hook;
}

void run_hook(const char* stage)
{
    if (fault_hook())
        fault_hook()(stage);
}

std::string errno_str() { return std::strerror(errno); }

// A name no other writer (thread or process) in this directory uses right now.
std::string temporary_name(const std::string& path)
{
    static std::atomic<unsigned long> counter{ 0 };
    struct stat st;
    for (;;) {
        std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
        if (::lstat(tmp.c_str(), &st) != 0 && errno == ENOENT)
            return tmp;
    }
}

void fsync_path(const std::string& file, int flags, const std::string& target)
{
    const int fd = ::open(file.c_str(), flags | O_CLOEXEC);
    if (fd < 0)
        throw IOError(target + ": cannot open '" + file + "' to sync it: " + errno_str());
    const int rc = ::fsync(fd);
    const std::string err = rc != 0 ? errno_str() : std::string();
    ::close(fd);
    if (rc != 0)
        throw IOError(target + ": cannot sync '" + file + "': " + err);
}

std::string directory_of(const std::string& path)
{
    const std::size_t slash = path.find_last_of('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string& tmp_path)>& writer)
{
    const std::string tmp = temporary_name(path);
    try {
        writer(tmp);
        run_hook("written");
        struct stat st;
        if (::stat(tmp.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            throw IOError(path + ": the writer did not create the temporary file '" + tmp + "'");
        struct stat old;
        if (::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode))
            ::chmod(tmp.c_str(), old.st_mode & 07777); // best effort: keep the target's permissions
        fsync_path(tmp, O_RDONLY, path);
        run_hook("synced");
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            throw IOError(path + ": cannot rename '" + tmp + "' over it: " + errno_str());
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    // The data is in place; syncing the directory only makes the rename itself durable.
    try {
        fsync_path(directory_of(path), O_RDONLY | O_DIRECTORY, path);
    } catch (const IOError&) {
    }
}

void write_file_atomically(const std::string& path, const std::string& bytes)
{
    write_atomically(path, [&](const std::string& tmp) {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f)
            throw IOError(path + ": cannot open '" + tmp + "' for writing: " + errno_str());
        f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        f.close();
        if (!f)
            throw IOError(path + ": writing " + std::to_string(bytes.size()) + " bytes failed: " + errno_str());
    });
}

namespace testing {
void set_atomic_write_fault_hook(std::function<void(const std::string& stage)> hook)
{
    fault_hook() = std::move(hook);
}
} // namespace testing

} // namespace xtape::io
