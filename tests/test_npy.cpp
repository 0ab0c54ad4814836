// ctest-labels: sanitize
#include "framework/io/npy.hpp"
#include "tests/keras_files.hpp"

#include <doctest/doctest.h>
#include <xtensor/xbuilder.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <unistd.h>

using namespace xtape;
using xtape::testing::TempDir;
using xtape::testing::expect_error;
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

// A .npy file made by hand: magic, version, little-endian header length, header, data.
std::string npy_bytes(const std::string& header, const std::string& data, int major = 1)
{
    std::string out("\x93NUMPY", 6);
    out += static_cast<char>(major);
    out += '\0';
    const std::size_t len = header.size();
    for (int i = 0; i < (major == 1 ? 2 : 4); ++i)
        out += static_cast<char>((len >> (8 * i)) & 0xff);
    return out + header + data;
}

template <class S>
std::string raw(std::initializer_list<S> values)
{
    std::string s(values.size() * sizeof(S), '\0');
    std::memcpy(s.data(), values.begin(), s.size());
    return s;
}

void put(const std::string& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary) << bytes;
}


template <class T>
void check_round_trip(const TempDir& tmp, const array_t<T>& a, const char* descr)
{
    CAPTURE(descr);
    CAPTURE(shape_str(a.shape()));
    const std::string path = tmp.file("rt.npy");
    write_npy<T>(path, a);
    const array_t<T> b = read_npy<T>(path);
    CHECK(b.shape() == a.shape());
    CHECK(b == a);
    const std::string bytes = slurp(path);
    REQUIRE(bytes.size() >= 10);
    CHECK(bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
    const std::size_t header_len =
      static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    CHECK((10 + header_len) % 64 == 0); // numpy's alignment
    CHECK(bytes[10 + header_len - 1] == '\n');
    CHECK(bytes.find(std::string("'descr': '") + descr + "'") != std::string::npos);
    CHECK(bytes.size() == 10 + header_len + a.size() * sizeof(T));
}

} // namespace

TEST_CASE("npy: round trips of every supported type and shape")
{
    TempDir tmp("test_npy");
    array_t<double> d = xt::arange<double>(24.0) * 0.5 - 3.0;
    d.reshape({ 2, 3, 4 });
    check_round_trip<double>(tmp, d, "<f8");
    check_round_trip<float>(tmp, array_t<float>{ 1.5f, -2.f, 1e-30f }, "<f4");
    check_round_trip<std::int32_t>(tmp, array_t<std::int32_t>{ { -1, 2 }, { 2147483647, -2147483647 - 1 } },
                                   "<i4");
    check_round_trip<std::int64_t>(tmp, array_t<std::int64_t>{ 1LL << 40, -7 }, "<i8");
    check_round_trip<std::uint8_t>(tmp, array_t<std::uint8_t>{ 0, 128, 255 }, "|u1");
    check_round_trip<double>(tmp, array_t<double>(4.25), "<f8");               // shape ()
    check_round_trip<float>(tmp, array_t<float>::from_shape({ 0, 3 }), "<f4"); // empty

    // The header text is exactly numpy's repr of the dict.
    write_npy<double>(tmp.file("h.npy"), d);
    const std::string bytes = slurp(tmp.file("h.npy"));
    const std::string expected = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }";
    CHECK(bytes.compare(10, expected.size(), expected) == 0);
    CHECK(bytes.find_first_not_of(' ', 10 + expected.size()) == 127); // spaces, then '\n' ending 128 bytes
    write_npy<float>(tmp.file("h1.npy"), array_t<float>{ 1, 2 });
    CHECK(slurp(tmp.file("h1.npy")).find("'shape': (2,), }") != std::string::npos);
    write_npy<float>(tmp.file("h0.npy"), array_t<float>(1.f));
    CHECK(slurp(tmp.file("h0.npy")).find("'shape': (), }") != std::string::npos);

    // Reading converts to the requested type.
    CHECK(read_npy<float>(tmp.file("h.npy")) == xt::cast<float>(d));
    CHECK(read_npy<std::int64_t>(tmp.file("h.npy"))(1, 2, 3) == 8);
}

TEST_CASE("npy: the real fullconfigs/cnn input.npy and predictions.npy")
{
    const fs::path dir = fs::path(XTAPE_SOURCE_DIR) / ".." / "shared" / "keras-models" /
                         "dl4j-test-resources" / "fullconfigs" / "cnn";
    if (!fs::exists(dir / "input.npy")) {
        MESSAGE("SKIPPED: real .npy files not found at " << dir.string());
        return;
    }
    // '<f8' (5, 10, 10, 3), header padded to 16 bytes by an old numpy. Reference values were
    // decoded independently (Python's struct module on the raw bytes).
    const array_t<double> x = read_npy<double>((dir / "input.npy").string());
    REQUIRE(x.shape() == std::vector<std::size_t>{ 5, 10, 10, 3 });
    CHECK(x(0, 0, 0, 0) == 0.27812651949435974);
    CHECK(x(0, 0, 0, 1) == 0.45931688721456665);
    CHECK(x(4, 9, 9, 2) == 0.5181752431585356);
    CHECK(xt::amin(x)() == 0.0008308517648458746);
    CHECK(xt::amax(x)() == 0.9994975671593705);
    double sum = 0;
    for (double v : x)
        sum += v;
    CHECK(sum == doctest::Approx(766.4963300914026).epsilon(1e-12));

    const array_t<float> p = read_npy<float>((dir / "predictions.npy").string());
    REQUIRE(p.shape() == std::vector<std::size_t>{ 5, 1 });
    const float expected[5] = { -0.05206109583377838f, 0.049860745668411255f, 0.1629752218723297f,
                                0.15389983355998993f, 0.15537278354167938f };
    for (std::size_t i = 0; i < 5; ++i)
        CHECK(p(i, 0) == expected[i]);
    CHECK(read_npy<double>((dir / "predictions.npy").string())(2, 0) == double(0.1629752218723297f));
}

TEST_CASE("npy: versions 2.0 and 3.0, other byte orders and types, fortran order")
{
    TempDir tmp("test_npy");
    const std::string p = tmp.file("x.npy");
    put(p, npy_bytes("{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }\n",
                     raw<std::int16_t>({ -1, 2, 300 }), 2));
    CHECK(read_npy<std::int32_t>(p) == array_t<std::int32_t>{ -1, 2, 300 });
    put(p, npy_bytes("{\"descr\": \"<u2\", \"fortran_order\": False, \"shape\": (2,)}",
                     raw<std::uint16_t>({ 65535, 1 }), 3));
    CHECK(read_npy<double>(p) == array_t<double>{ 65535, 1 });

    // Big-endian int32 1 and -2.
    put(p, npy_bytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
                     std::string("\x00\x00\x00\x01\xff\xff\xff\xfe", 8)));
    CHECK(read_npy<std::int64_t>(p) == array_t<std::int64_t>{ 1, -2 });
    // Big-endian float64 1.5 = 0x3FF8000000000000.
    put(p, npy_bytes("{'descr': '>f8', 'fortran_order': False, 'shape': (), }",
                     std::string("\x3f\xf8\0\0\0\0\0\0", 8)));
    CHECK(read_npy<double>(p)() == 1.5);
    put(p, npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                     std::string("\x01\x00\x01", 3)));
    CHECK(read_npy<float>(p) == array_t<float>{ 1, 0, 1 });
    put(p,
        npy_bytes("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", std::string("\xff\x05", 2)));
    CHECK(read_npy<double>(p) == array_t<double>{ -1, 5 });

    // Fortran order: the bytes are column-major; the result is row-major [[0, 1, 2], [3, 4, 5]].
    put(p, npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                     raw<float>({ 0, 3, 1, 4, 2, 5 })));
    CHECK(read_npy<float>(p) == array_t<float>{ { 0, 1, 2 }, { 3, 4, 5 } });
    // (2, 3, 2) in Fortran order: element (i, j, k) sits at i + 2 j + 6 k.
    std::string f3;
    for (int k = 0; k < 2; ++k)
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 2; ++i) {
                const double v = 100 * i + 10 * j + k;
                f3.append(reinterpret_cast<const char*>(&v), sizeof v);
            }
    put(p, npy_bytes("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3, 2), }", f3));
    const array_t<double> a3 = read_npy<double>(p);
    REQUIRE(a3.shape() == std::vector<std::size_t>{ 2, 3, 2 });
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 2; ++k)
                CHECK(a3(i, j, k) == double(100 * i + 10 * j + k));

    // Trailing bytes after the data are ignored, as numpy.load does.
    put(p, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", raw<float>({ 7, 8 })));
    CHECK(read_npy<float>(p) == array_t<float>{ 7 });
}

TEST_CASE("npy: malformed files give an IOError naming the file")
{
    TempDir tmp("test_npy");
    const std::string p = tmp.file("bad.npy");
    const std::string ok_header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    expect_error<IOError>([&] { read_npy<float>(tmp.file("missing.npy")); },
                    { tmp.file("missing.npy"), "cannot open" });
    put(p, "");
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "magic" });
    put(p, "PK\x03\x04 this is a zip, not a npy");
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "magic" });
    put(p, npy_bytes(ok_header, raw<float>({ 1, 2 }), 4));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "version 4.0" });
    put(p, npy_bytes(ok_header, raw<float>({ 1, 2 })).substr(0, 30));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "truncated header" });
    put(p, npy_bytes(ok_header, raw<float>({ 1 })));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "truncated", "needs 8 data bytes, found 4" });
    put(p, npy_bytes("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", std::string(16, '\0')));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "'<c16'" });
    put(p, npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }", std::string(2, '\0')));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "'<f2'" });
    put(p, npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                     std::string(4, '\0')));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "unsupported value" });
    put(p, npy_bytes("{'descr': '<f4', 'shape': (2,), }", raw<float>({ 1, 2 })));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "exactly the keys" });
    put(p, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
                     raw<float>({ 1, 2 })));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "unsupported value" });
    put(p, npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", raw<float>({ 1, 2 })));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p });
    put(p, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", raw<float>({ 1, 2 })));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "non-negative integer" });
    put(p, npy_bytes(
             "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999999999), }",
             ""));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "too large" });
    put(p, npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", raw<float>({ 1, 2 })));
    expect_error<IOError>([&] { read_npy<float>(p); }, { p, "unexpected end of header" });
    expect_error<IOError>([&] { write_npy<float>(tmp.file("no_dir/x.npy"), array_t<float>{ 1 }); },
                    { tmp.file("no_dir/x.npy"), "cannot open" });
}
