#include "framework/io/zip.hpp"

#include "framework/errors.hpp"
#include "framework/limits.hpp"

#include <zip.h>

#include <filesystem>
#include <fstream>

namespace xtape::io {

// Note [Zip entry sizes]
// An entry's declared size comes from the file, so it is checked before the buffer for it is
// allocated: a few hundred bytes can declare terabytes (a "zip bomb", CWE-409). Deflate cannot
// expand data more than about 1032 times (a 258-byte match per 2 bits at best), so an entry that
// declares more than 1032 x (its stored size + 1 KiB) is not deflate output; a stored entry must
// declare exactly its stored size; no entry stores more bytes than the archive has; and the size
// is an allocation from a file, bounded by framework/limits.hpp (bytes counted as elements).
// Only stored and deflated entries are read (Keras writes stored ones; `zip` recompresses with
// deflate); other methods are refused, which also keeps their larger ratios out.
namespace {

constexpr std::uint64_t k_deflate_max_ratio = 1032;

std::string zip_error_text(int code)
{
    zip_error_t e;
    zip_error_init_with_code(&e, code);
    std::string s = zip_error_strerror(&e);
    zip_error_fini(&e);
    return s;
}

std::string archive_error(zip_t* z) { return z ? std::string(zip_error_strerror(zip_get_error(z))) : std::string(); }

struct ZipFileCloser {
    void operator()(zip_file_t* f) const { zip_fclose(f); }
};

} // namespace

bool has_zip_signature(const std::string& path) noexcept
{
    try {
        std::ifstream in(path, std::ios::binary);
        char b[4] = {};
        if (!in.read(b, 4))
            return false;
        return b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;
    } catch (...) {
        return false;
    }
}

struct ZipReader::Impl {
    zip_t* archive = nullptr;
    std::uint64_t file_size = 0;
    ~Impl()
    {
        if (archive)
            zip_discard(archive); // read-only: nothing to write back
    }
};

ZipReader::ZipReader(std::string path, std::unique_ptr<Impl> impl)
    : m_path(std::move(path))
    , m_impl(std::move(impl))
{
}
ZipReader::ZipReader(ZipReader&&) noexcept = default;
ZipReader& ZipReader::operator=(ZipReader&&) noexcept = default;
ZipReader::~ZipReader() = default;

ZipReader ZipReader::open(const std::string& path)
{
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw IOError(path + ": no such file");
    if (!std::filesystem::is_regular_file(path, ec))
        throw IOError(path + ": not a regular file, so not a zip archive");
    auto impl = std::make_unique<Impl>();
    impl->file_size = std::filesystem::file_size(path, ec);
    int err = 0;
    impl->archive = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &err);
    if (!impl->archive)
        throw IOError(path + ": cannot open as a zip archive, it may be truncated or corrupt (" +
                      zip_error_text(err) + ")");
    return ZipReader(path, std::move(impl));
}

std::vector<ZipEntryInfo> ZipReader::entries() const
{
    std::vector<ZipEntryInfo> out;
    const zip_int64_t n = zip_get_num_entries(m_impl->archive, 0);
    for (zip_int64_t i = 0; i < n; ++i) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(m_impl->archive, static_cast<zip_uint64_t>(i), 0, &st) != 0)
            throw IOError(m_path + ": cannot read entry " + std::to_string(i) + " of the zip directory (" +
                          archive_error(m_impl->archive) + ")");
        ZipEntryInfo e;
        e.name = (st.valid & ZIP_STAT_NAME) && st.name ? st.name : "";
        e.size = (st.valid & ZIP_STAT_SIZE) ? st.size : 0;
        e.compressed_size = (st.valid & ZIP_STAT_COMP_SIZE) ? st.comp_size : 0;
        e.stored = !(st.valid & ZIP_STAT_COMP_METHOD) || st.comp_method == ZIP_CM_STORE;
        out.push_back(std::move(e));
    }
    return out;
}

bool ZipReader::has(const std::string& name) const { return zip_name_locate(m_impl->archive, name.c_str(), 0) >= 0; }

std::string ZipReader::read(const std::string& name) const
{
    const std::string what = m_path + ": entry '" + name + "'";
    const zip_int64_t index = zip_name_locate(m_impl->archive, name.c_str(), 0);
    if (index < 0)
        throw IOError(m_path + ": missing entry '" + name + "' in the zip archive");
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(m_impl->archive, static_cast<zip_uint64_t>(index), 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE) || !(st.valid & ZIP_STAT_COMP_METHOD))
        throw IOError(what + ": cannot read its zip directory record (" + archive_error(m_impl->archive) + ")");
    // Note [Zip entry sizes]
    if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
        throw IOError(what + ": unsupported compression method " + std::to_string(st.comp_method) +
                      " (only stored and deflated entries are read)");
    if (st.comp_size > m_impl->file_size)
        throw IOError(what + ": declares " + std::to_string(st.comp_size) + " stored bytes but the archive has " +
                      std::to_string(m_impl->file_size) + "; it is truncated or corrupt");
    if (st.comp_method == ZIP_CM_STORE && st.size != st.comp_size)
        throw IOError(what + ": a stored entry declares " + std::to_string(st.size) + " bytes but stores " +
                      std::to_string(st.comp_size) + "; the archive is corrupt");
    if (st.comp_method == ZIP_CM_DEFLATE && st.size / k_deflate_max_ratio > st.comp_size + 1024)
        throw IOError(what + ": declares " + std::to_string(st.size) + " bytes from " + std::to_string(st.comp_size) +
                      " compressed bytes, more than deflate can expand (1032:1); refusing a corrupt archive or "
                      "a decompression bomb");
    const std::size_t size = checked_size(shape_t{ static_cast<std::size_t>(st.size) }, what + " (bytes)");
    std::unique_ptr<zip_file_t, ZipFileCloser> f(zip_fopen_index(m_impl->archive, static_cast<zip_uint64_t>(index), 0));
    if (!f)
        throw IOError(what + ": cannot open (" + archive_error(m_impl->archive) + ")");
    std::string out(size, '\0');
    std::size_t got = 0;
    while (got < size) {
        const zip_int64_t r = zip_fread(f.get(), &out[got], size - got);
        if (r < 0)
            throw IOError(what + ": cannot read, the archive is truncated or corrupt (" +
                          std::string(zip_error_strerror(zip_file_get_error(f.get()))) + ")");
        if (r == 0)
            break;
        got += static_cast<std::size_t>(r);
    }
    if (got != size)
        throw IOError(what + ": holds " + std::to_string(got) + " bytes, its directory declares " +
                      std::to_string(size) + "; the archive is corrupt");
    // One more read lets libzip reach the end of the data and compare the CRC.
    char extra = 0;
    const zip_int64_t r = zip_fread(f.get(), &extra, 1);
    if (r != 0)
        throw IOError(what + (r > 0 ? ": holds more bytes than its directory declares; the archive is corrupt"
                                    : ": " + std::string(zip_error_strerror(zip_file_get_error(f.get()))) +
                                          "; the archive is corrupt"));
    return out;
}

void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& entries, bool deflate)
{
    int err = 0;
    zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!z)
        throw IOError(path + ": cannot create zip archive (" + zip_error_text(err) + ")");
    auto fail = [&](const std::string& message) {
        const std::string detail = archive_error(z);
        zip_discard(z);
        throw IOError(path + ": " + message + " (" + detail + ")");
    };
    for (const auto& [name, data] : entries) {
        // The data stays alive until zip_close below (libzip reads it only then).
        zip_source_t* src = zip_source_buffer(z, data.data(), data.size(), 0);
        if (!src)
            fail("cannot add entry '" + name + "'");
        const zip_int64_t index = zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
        if (index < 0) {
            zip_source_free(src);
            fail("cannot add entry '" + name + "'");
        }
        if (zip_set_file_compression(z, static_cast<zip_uint64_t>(index), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) != 0)
            fail("cannot set the compression of entry '" + name + "'");
    }
    if (zip_close(z) != 0)
        fail("cannot write zip archive");
}

} // namespace xtape::io
