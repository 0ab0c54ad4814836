#include "framework/io/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>

namespace xtape::io {

namespace {

// gzread reads gzip and plain files alike, so one code path serves .gz and uncompressed copies.
class GzReader {
public:
    explicit GzReader(const std::string& path)
        : m_path(path)
    {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec))
            throw IOError(path + ": no such file");
        m_f = gzopen(path.c_str(), "rb");
        if (!m_f)
            throw IOError(path + ": cannot open file: " + std::strerror(errno));
        gzbuffer(m_f, 1 << 17);
    }
    GzReader(const GzReader&) = delete;
    GzReader& operator=(const GzReader&) = delete;
    ~GzReader() { gzclose(m_f); }

    /// Reads up to n bytes; fewer only at the end of the data. Corrupt compressed data throws.
    std::size_t read(void* dst, std::size_t n)
    {
        std::size_t got = 0;
        while (got < n) {
            const unsigned ask = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
            const int r = gzread(m_f, static_cast<char*>(dst) + got, ask);
            if (r < 0)
                throw IOError(m_path + ": corrupt data: " + error_message());
            if (r == 0)
                break;
            got += static_cast<std::size_t>(r);
        }
        return got;
    }

    /// zlib's message for an error that stopped reading early, or "".
    std::string error_message()
    {
        int code = Z_OK;
        const char* msg = gzerror(m_f, &code);
        if (code == Z_OK || code == Z_STREAM_END)
            return "";
        return code == Z_ERRNO ? std::strerror(errno) : (msg ? msg : "unknown zlib error");
    }

private:
    std::string m_path;
    gzFile m_f = nullptr;
};

const char* idx_type_name(unsigned code)
{
    switch (code) {
        case 0x08:
            return "unsigned byte";
        case 0x09:
            return "signed byte";
        case 0x0B:
            return "short";
        case 0x0C:
            return "int";
        case 0x0D:
            return "float";
        case 0x0E:
            return "double";
    }
    return nullptr;
}

} // namespace

IdxArray read_idx(const std::string& path)
{
    GzReader in(path);
    unsigned char magic[4];
    if (in.read(magic, 4) != 4)
        throw IOError(path + ": not an IDX file (shorter than its 4-byte magic number)");
    if (magic[0] != 0 || magic[1] != 0 || !idx_type_name(magic[2]) || magic[3] == 0)
        throw IOError(path + ": not an IDX file (bad magic number)");
    if (magic[2] != 0x08)
        throw IOError(path + ": IDX element type '" + idx_type_name(magic[2]) +
                      "' is not supported, only unsigned bytes (0x08)");

    IdxArray out;
    std::size_t total = 1;
    for (unsigned i = 0; i < magic[3]; ++i) {
        unsigned char b[4];
        if (in.read(b, 4) != 4)
            throw IOError(path + ": truncated IDX header (" + std::to_string(magic[3]) +
                          " dimensions announced)");
        const std::size_t d =
          (std::size_t(b[0]) << 24) | (std::size_t(b[1]) << 16) | (std::size_t(b[2]) << 8) | b[3];
        if (d != 0 && total > SIZE_MAX / d)
            throw IOError(path + ": IDX dimensions too large");
        total *= d;
        out.shape.push_back(d);
    }

    // Grow while reading rather than trusting the header with one huge allocation: the buffer
    // doubles (from 64 KiB), so a header that claims more than the file holds costs at most twice
    // the bytes actually there (a fixed 16 MiB step made every truncated file cost 16 MiB).
    std::size_t got = 0;
    while (got < total) {
        const std::size_t want = std::min(std::max<std::size_t>(std::size_t(1) << 16, got), total - got);
        out.data.resize(got + want);
        const std::size_t r = in.read(out.data.data() + got, want);
        got += r;
        if (r < want) {
            const std::string why = in.error_message();
            throw IOError(path + ": truncated IDX data: shape " + shape_str(out.shape) + " needs " +
                          std::to_string(total) + " bytes, found " + std::to_string(got) +
                          (why.empty() ? "" : " (" + why + ")"));
        }
    }
    unsigned char extra;
    if (in.read(&extra, 1) != 0)
        throw IOError(path + ": IDX file has data after the " + std::to_string(total) + " bytes of shape " +
                      shape_str(out.shape));
    return out;
}

} // namespace xtape::io
