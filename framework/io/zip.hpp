// Zip archives (libzip), read and written as a plain list of named byte strings. Nothing here
// knows what the entries mean (saving/keras3/ gives them a meaning).
//
//   io::ZipReader z = io::ZipReader::open("m.keras");
//   if (z.has("config.json")) std::string text = z.read("config.json");
//   io::write_zip(tmp_path, {{"metadata.json", meta}, {"config.json", cfg}});
//
// Contract for every function here:
//   ensures: a failure (missing file, not a zip, truncated or corrupt archive, CRC mismatch, a
//            missing entry) throws IOError naming the file and, where there is one, the entry;
//            libzip's own message is appended.
//   ensures: no allocation is larger than the limits allow (Note [Zip entry sizes]).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace xtape::io {

/// One entry as the archive's central directory declares it.
struct ZipEntryInfo {
    std::string name;
    std::uint64_t size = 0;            ///< uncompressed, as declared
    std::uint64_t compressed_size = 0; ///< as stored
    bool stored = true;                ///< method 0 (stored) rather than deflate or another
};

/// The first bytes of a zip archive's local file header ("PK\3\4").
bool has_zip_signature(const std::string& path) noexcept;

/// An archive opened for reading. Movable, not copyable; closes the archive when destroyed.
class ZipReader {
public:
    /// requires: `path` is a complete zip archive (libzip's consistency checks pass).
    static ZipReader open(const std::string& path);
    /// Takes over the open archive of another reader.
    ZipReader(ZipReader&&) noexcept;
    /// Closes this archive and takes over another reader's.
    ZipReader& operator=(ZipReader&&) noexcept;
    /// Closes the archive.
    ~ZipReader();

    /// The archive's path, as messages name it.
    const std::string& path() const { return m_path; }
    /// Every entry as the central directory declares it, in archive order.
    std::vector<ZipEntryInfo> entries() const;
    /// True if the archive has an entry named exactly `name`.
    bool has(const std::string& name) const;
    /// The whole entry, decompressed and CRC-checked.
    ///   requires: has(name) (IOError "missing entry" otherwise).
    ///   ensures:  the declared size passes Note [Zip entry sizes] before anything is allocated,
    ///             and exactly that many bytes were read.
    std::string read(const std::string& name) const;

private:
    struct Impl;
    ZipReader(std::string path, std::unique_ptr<Impl> impl);
    std::string m_path;
    std::unique_ptr<Impl> m_impl;
};

/// Writes a new archive at `path` (truncating any file there) with `entries` in that order, each
/// stored uncompressed (Keras's zipfile default) unless `deflate`. Not atomic by itself: callers
/// that replace a file go through io::write_atomically.
void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries,
               bool deflate = false);

} // namespace xtape::io
