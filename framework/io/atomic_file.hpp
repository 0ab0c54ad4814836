// Replacing a file so that a crash or an error midway never leaves a half-written target.
#pragma once

#include <functional>
#include <string>

namespace xtape::io {

/// Writes `path` through a temporary file in the same directory ("<path>.tmp.<pid>.<n>"), so that
/// readers only ever see the previous file or the complete new one.
///   requires: writer(tmp_path) creates tmp_path, writes it completely and closes it (an HDF5 writer
///             must have called H5File::close and dropped its groups).
///   ensures:  on success the temporary was fsync'ed and renamed over `path` (keeping the old
///             file's permission bits), and the directory entry was synced (best effort);
///             on any exception (from the writer or from syncing/renaming) the temporary is
///             removed, the previous `path` is untouched, and the exception propagates unchanged.
///             Failures of this function itself throw IOError naming `path`.
/// A symbolic link at `path` is replaced by the new file, not followed.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string& tmp_path)>& writer);

/// write_atomically of a whole file's bytes; a failed write (disk full, file size limit) throws
/// IOError naming `path`.
void write_file_atomically(const std::string& path, const std::string& bytes);

namespace testing {
/// Test hook: called with "written" after the writer returns and "synced" just before the rename.
/// A hook that throws simulates a failure at that point. An empty function removes the hook.
void set_atomic_write_fault_hook(std::function<void(const std::string& stage)> hook);
} // namespace testing

} // namespace xtape::io
