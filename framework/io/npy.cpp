#include "framework/io/npy.hpp"

#include "framework/io/atomic_file.hpp"

#include <xtensor/xmanipulation.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <variant>

namespace xtape::io {

namespace {

constexpr char k_magic[] = "\x93NUMPY";
constexpr std::size_t k_magic_len = 6;
constexpr bool k_host_little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

[[noreturn]] void bad(const std::string& path, const std::string& what)
{
    throw IOError(path + ": not a valid .npy file: " + what);
}

// The header is a Python dict literal such as
//   {'descr': '<f8', 'fortran_order': False, 'shape': (5, 10, 10, 3), }
// Only the value kinds numpy writes there are accepted: strings, booleans, tuples of ints.
using HeaderValue = std::variant<std::string, bool, shape_t>;

class HeaderParser {
public:
    HeaderParser(const std::string& text, const std::string& path)
        : m_s(text)
        , m_path(path)
    {
    }

    std::map<std::string, HeaderValue> parse_dict()
    {
        std::map<std::string, HeaderValue> d;
        expect('{');
        while (peek() != '}') {
            std::string key = parse_string();
            expect(':');
            d[key] = parse_value();
            if (peek() == ',')
                ++m_i;
            else if (peek() != '}')
                error("expected ',' or '}'");
        }
        ++m_i;
        return d;
    }

private:
    char peek()
    {
        while (m_i < m_s.size() && std::isspace(static_cast<unsigned char>(m_s[m_i])))
            ++m_i;
        if (m_i >= m_s.size())
            error("unexpected end of header");
        return m_s[m_i];
    }
    void expect(char c)
    {
        if (peek() != c)
            error(std::string("expected '") + c + "'");
        ++m_i;
    }
    [[noreturn]] void error(const std::string& what)
    {
        bad(m_path, what + " at offset " + std::to_string(m_i) + " of header \"" + m_s + "\"");
    }
    std::string parse_string()
    {
        const char q = peek();
        if (q != '\'' && q != '"')
            error("expected a quoted string");
        const std::size_t end = m_s.find(q, m_i + 1);
        if (end == std::string::npos)
            error("unterminated string");
        std::string v = m_s.substr(m_i + 1, end - m_i - 1);
        m_i = end + 1;
        return v;
    }
    bool starts_with(const char* word) { return m_s.compare(m_i, std::strlen(word), word) == 0; }
    HeaderValue parse_value()
    {
        const char c = peek();
        if (c == '\'' || c == '"')
            return parse_string();
        if (starts_with("True")) {
            m_i += 4;
            return true;
        }
        if (starts_with("False")) {
            m_i += 5;
            return false;
        }
        if (c == '(') {
            ++m_i;
            shape_t shape;
            while (peek() != ')') {
                if (!std::isdigit(static_cast<unsigned char>(peek())))
                    error("expected a non-negative integer in the shape");
                std::size_t v = 0;
                while (m_i < m_s.size() && std::isdigit(static_cast<unsigned char>(m_s[m_i]))) {
                    const std::size_t next = v * 10 + static_cast<std::size_t>(m_s[m_i++] - '0');
                    if (next / 10 != v)
                        error("dimension too large");
                    v = next;
                }
                shape.push_back(v);
                if (peek() == ',')
                    ++m_i;
                else if (peek() != ')')
                    error("expected ',' or ')' in the shape");
            }
            ++m_i;
            return shape;
        }
        error("unsupported value (only strings, True/False and tuples of ints are valid)");
    }

    const std::string& m_s;
    const std::string& m_path;
    std::size_t m_i = 0;
};

template <class S, class T>
void convert(const char* src, std::size_t n, bool swap, T* dst)
{
    for (std::size_t i = 0; i < n; ++i) {
        unsigned char b[sizeof(S)];
        std::memcpy(b, src + i * sizeof(S), sizeof(S));
        if (swap)
            for (std::size_t k = 0; k < sizeof(S) / 2; ++k)
                std::swap(b[k], b[sizeof(S) - 1 - k]);
        S v;
        std::memcpy(&v, b, sizeof(S));
        dst[i] = static_cast<T>(v);
    }
}

// Converts n stored elements of numpy kind/size into T; false for a type we do not read.
template <class T>
bool convert_any(char kind, std::size_t size, const char* src, std::size_t n, bool swap, T* dst)
{
    switch (kind) {
        case 'b':
            if (size != 1)
                return false;
            for (std::size_t i = 0; i < n; ++i)
                dst[i] = static_cast<T>(src[i] != 0);
            return true;
        case 'i':
            switch (size) {
                case 1:
                    convert<std::int8_t>(src, n, swap, dst);
                    return true;
                case 2:
                    convert<std::int16_t>(src, n, swap, dst);
                    return true;
                case 4:
                    convert<std::int32_t>(src, n, swap, dst);
                    return true;
                case 8:
                    convert<std::int64_t>(src, n, swap, dst);
                    return true;
            }
            return false;
        case 'u':
            switch (size) {
                case 1:
                    convert<std::uint8_t>(src, n, swap, dst);
                    return true;
                case 2:
                    convert<std::uint16_t>(src, n, swap, dst);
                    return true;
                case 4:
                    convert<std::uint32_t>(src, n, swap, dst);
                    return true;
                case 8:
                    convert<std::uint64_t>(src, n, swap, dst);
                    return true;
            }
            return false;
        case 'f':
            switch (size) {
                case 4:
                    convert<float>(src, n, swap, dst);
                    return true;
                case 8:
                    convert<double>(src, n, swap, dst);
                    return true;
            }
            return false;
    }
    return false;
}

std::uint32_t read_le(const unsigned char* p, std::size_t bytes)
{
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
    return v;
}

template <class T>
const char* descr_of();
template <>
const char* descr_of<float>()
{
    return k_host_little ? "<f4" : ">f4";
}
template <>
const char* descr_of<double>()
{
    return k_host_little ? "<f8" : ">f8";
}
template <>
const char* descr_of<std::int32_t>()
{
    return k_host_little ? "<i4" : ">i4";
}
template <>
const char* descr_of<std::int64_t>()
{
    return k_host_little ? "<i8" : ">i8";
}
template <>
const char* descr_of<std::uint8_t>()
{
    return "|u1";
}

} // namespace

template <class T>
array_t<T> read_npy(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw IOError(path + ": cannot open file for reading");
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad())
        throw IOError(path + ": read error");
    const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());

    if (bytes.size() < k_magic_len + 2 || bytes.compare(0, k_magic_len, k_magic) != 0)
        bad(path, "missing the \\x93NUMPY magic string");
    const int major = u[6], minor = u[7];
    if (major < 1 || major > 3 || minor != 0)
        bad(path, "unsupported format version " + std::to_string(major) + "." + std::to_string(minor) +
                    " (1.0, 2.0 and 3.0 are known)");
    const std::size_t len_bytes = major == 1 ? 2 : 4;
    if (bytes.size() < 8 + len_bytes)
        bad(path, "truncated before the header length");
    const std::size_t header_len = read_le(u + 8, len_bytes);
    const std::size_t data_offset = 8 + len_bytes + header_len;
    if (bytes.size() < data_offset)
        bad(path, "truncated header (" + std::to_string(header_len) + " bytes announced, " +
                    std::to_string(bytes.size() - 8 - len_bytes) + " present)");
    // Version 3.0 only changes the header encoding to UTF-8; the keys we read are ASCII either way.
    const std::string header = bytes.substr(8 + len_bytes, header_len);

    auto dict = HeaderParser(header, path).parse_dict();
    if (dict.size() != 3 || !dict.count("descr") || !dict.count("fortran_order") || !dict.count("shape"))
        bad(path,
            "the header must have exactly the keys 'descr', 'fortran_order' and 'shape': \"" + header + "\"");
    const auto* descr = std::get_if<std::string>(&dict["descr"]);
    const auto* fortran = std::get_if<bool>(&dict["fortran_order"]);
    const auto* shape = std::get_if<shape_t>(&dict["shape"]);
    if (!descr || !fortran || !shape)
        bad(path, "wrong value types in header \"" + header + "\"");

    if (descr->size() < 3 || std::string("<>|=").find((*descr)[0]) == std::string::npos)
        throw IOError(path + ": unsupported .npy dtype '" + *descr + "' (only plain numeric types are read)");
    const char order = (*descr)[0], kind = (*descr)[1];
    std::size_t itemsize = 0;
    try {
        std::size_t used = 0;
        itemsize = std::stoul(descr->substr(2), &used);
        if (used != descr->size() - 2)
            itemsize = 0;
    } catch (const std::exception&) {
        itemsize = 0;
    }
    const bool swap = itemsize > 1 && (order == '<' || order == '>') && ((order == '<') != k_host_little);

    std::size_t n = 1;
    for (std::size_t d : *shape) {
        if (d != 0 && n > SIZE_MAX / d)
            bad(path, "shape " + shape_str(*shape) + " is too large");
        n *= d;
    }
    if (itemsize == 0 || n > SIZE_MAX / itemsize)
        throw IOError(path + ": unsupported .npy dtype '" + *descr + "'");
    const std::size_t available = bytes.size() - data_offset;
    if (available < n * itemsize)
        throw IOError(path + ": truncated .npy file: shape " + shape_str(*shape) + " of '" + *descr +
                      "' needs " + std::to_string(n * itemsize) + " data bytes, found " +
                      std::to_string(available));

    // A Fortran-order array of shape (a, b, c) is a row-major array of shape (c, b, a).
    shape_t stored = *shape;
    if (*fortran)
        std::reverse(stored.begin(), stored.end());
    array_t<T> out = array_t<T>::from_shape(stored);
    if (!convert_any<T>(kind, itemsize, bytes.data() + data_offset, n, swap, out.data()))
        throw IOError(path + ": unsupported .npy dtype '" + *descr +
                      "' (b1, i1-i8, u1-u8, f4 and f8 are read)");
    if (*fortran && stored.size() > 1)
        out = xt::transpose(out);
    return out;
}

template <class T>
void write_npy(const std::string& path, const array_t<T>& value)
{
    std::string shape_text = "(";
    for (std::size_t i = 0; i < value.dimension(); ++i)
        shape_text += (i ? ", " : "") + std::to_string(value.shape()[i]);
    shape_text += value.dimension() == 1 ? ",)" : ")"; // Python's repr: (), (5,), (5, 3)
    std::string header = std::string("{'descr': '") + descr_of<T>() +
                         "', 'fortran_order': False, 'shape': " + shape_text + ", }";
    // numpy pads with spaces and ends with '\n' so that the data starts on a 64-byte boundary;
    // version 2.0 only widens the header length field for headers over 65535 bytes.
    int major = 1;
    std::size_t prefix = k_magic_len + 2 + 2;
    if ((prefix + header.size() + 1 + 63) / 64 * 64 - prefix > 65535) {
        major = 2;
        prefix = k_magic_len + 2 + 4;
    }
    const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
    header.append(total - prefix - header.size() - 1, ' ');
    header += '\n';

    std::string out(k_magic, k_magic_len);
    out += static_cast<char>(major);
    out += '\0';
    const std::size_t len = header.size();
    for (std::size_t i = 0; i < prefix - 8; ++i)
        out += static_cast<char>((len >> (8 * i)) & 0xff);
    out += header;

    write_atomically(path, [&](const std::string& tmp) {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f)
            throw IOError(path + ": cannot open '" + tmp + "' for writing");
        f.write(out.data(), static_cast<std::streamsize>(out.size()));
        f.write(reinterpret_cast<const char*>(value.data()),
                static_cast<std::streamsize>(value.size() * sizeof(T)));
        f.close();
        if (!f)
            throw IOError(path + ": write error");
    });
}

#define XTAPE_NPY_INSTANTIATE(T)                                                                             \
    template array_t<T> read_npy<T>(const std::string&);                                                     \
    template void write_npy<T>(const std::string&, const array_t<T>&);

XTAPE_NPY_INSTANTIATE(float)
XTAPE_NPY_INSTANTIATE(double)
XTAPE_NPY_INSTANTIATE(std::int32_t)
XTAPE_NPY_INSTANTIATE(std::int64_t)
XTAPE_NPY_INSTANTIATE(std::uint8_t)
#undef XTAPE_NPY_INSTANTIATE

} // namespace xtape::io
