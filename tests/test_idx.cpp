#include "framework/io/idx.hpp"
#include "tests/keras_files.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <unistd.h>

using namespace xtape;
using xtape::testing::TempDir;
using xtape::testing::expect_error;
using namespace xtape::io;
namespace fs = std::filesystem;

namespace {

std::string idx_bytes(unsigned char type, const std::vector<std::uint32_t>& dims, const std::string& data)
{
    std::string out{ '\0', '\0', static_cast<char>(type), static_cast<char>(dims.size()) };
    for (std::uint32_t d : dims)
        for (int shift = 24; shift >= 0; shift -= 8)
            out += static_cast<char>((d >> shift) & 0xff);
    return out + data;
}

void put(const std::string& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary) << bytes;
}

void put_gz(const std::string& path, const std::string& bytes)
{
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

std::string slurp(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}


} // namespace

TEST_CASE("idx: plain and gzip files give the same shape and bytes")
{
    TempDir tmp("test_idx");
    std::string data;
    for (int i = 0; i < 2 * 3 * 4; ++i)
        data += static_cast<char>(i * 10);
    const std::string bytes = idx_bytes(0x08, { 2, 3, 4 }, data);
    put(tmp.file("a-idx3-ubyte"), bytes);
    put_gz(tmp.file("a-idx3-ubyte.gz"), bytes);
    put_gz(tmp.file("compressed_without_suffix"), bytes);
    for (const char* name : { "a-idx3-ubyte", "a-idx3-ubyte.gz", "compressed_without_suffix" }) {
        CAPTURE(name);
        const IdxArray a = read_idx(tmp.file(name));
        CHECK(a.shape == shape_t{ 2, 3, 4 });
        REQUIRE(a.data.size() == 24);
        for (std::size_t i = 0; i < 24; ++i)
            CHECK(a.data[i] == static_cast<std::uint8_t>(i * 10));
    }
    put(tmp.file("labels"), idx_bytes(0x08, { 3 }, std::string("\x07\x00\x09", 3)));
    CHECK(read_idx(tmp.file("labels")).data == std::vector<std::uint8_t>{ 7, 0, 9 });
    put(tmp.file("empty"), idx_bytes(0x08, { 0, 28 }, ""));
    CHECK(read_idx(tmp.file("empty")).shape == shape_t{ 0, 28 });
}

TEST_CASE("idx: malformed files give an IOError naming the file")
{
    TempDir tmp("test_idx");
    const std::string p = tmp.file("bad-idx");
    expect_error<IOError>([&] { read_idx(tmp.file("missing.gz")); }, { tmp.file("missing.gz"), "no such file" });
    put(p, std::string("\0\0", 2));
    expect_error<IOError>([&] { read_idx(p); }, { p, "shorter than its 4-byte magic" });
    put(p, "\x89PNG\r\n\x1a\n");
    expect_error<IOError>([&] { read_idx(p); }, { p, "bad magic" });
    put(p, idx_bytes(0x08, {}, ""));
    expect_error<IOError>([&] { read_idx(p); }, { p, "bad magic" });
    put(p, idx_bytes(0x0D, { 2 }, std::string(8, '\0')));
    expect_error<IOError>([&] { read_idx(p); }, { p, "'float'", "only unsigned bytes" });
    put(p, idx_bytes(0x08, { 60000, 28, 28 }, "").substr(0, 10));
    expect_error<IOError>([&] { read_idx(p); }, { p, "truncated IDX header" });
    put(p, idx_bytes(0x08, { 10, 28, 28 }, std::string(100, 'x')));
    expect_error<IOError>([&] { read_idx(p); }, { p, "truncated IDX data", "(10, 28, 28)", "7840", "found 100" });
    put(p, idx_bytes(0x08, { 2 }, "abc"));
    expect_error<IOError>([&] { read_idx(p); }, { p, "data after the 2 bytes" });
    put(p, idx_bytes(0x08, { 0xffffffffu, 0xffffffffu, 0xffffffffu }, "x"));
    expect_error<IOError>([&] { read_idx(p); }, { p, "too large" });

    // gzip: a cut stream and a damaged one.
    std::string data(5000, '\0');
    for (std::size_t i = 0; i < data.size(); ++i)
        data[i] = static_cast<char>((i * 7919) % 251);
    put_gz(tmp.file("ok.gz"), idx_bytes(0x08, { 50, 100 }, data));
    const std::string gz = slurp(tmp.file("ok.gz"));
    put(p, gz.substr(0, gz.size() / 2));
    expect_error<IOError>([&] { read_idx(p); }, { p, "truncated IDX data" });
    std::string damaged = gz;
    for (std::size_t i = gz.size() / 2; i < gz.size() / 2 + 16; ++i)
        damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    put(p, damaged);
    expect_error<IOError>([&] { read_idx(p); }, { p });
    CHECK(read_idx(tmp.file("ok.gz")).data.size() == 5000);
}

TEST_CASE("idx: the real Fashion-MNIST files")
{
    const fs::path dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
        MESSAGE("SKIPPED: Fashion-MNIST not found at " << dir.string());
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const IdxArray train = read_idx((dir / "train-images-idx3-ubyte.gz").string());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("read 60000x28x28 training images in " << seconds << " s");
    CHECK(train.shape == shape_t{ 60000, 28, 28 });
    CHECK(train.data.size() == 60000u * 28 * 28);
    std::array<std::size_t, 256> hist{};
    for (std::uint8_t v : train.data)
        ++hist[v];
    CHECK(hist[0] > train.data.size() / 3); // mostly black background
    CHECK(hist[255] > 0);

    for (const char* prefix : { "train", "t10k" }) {
        CAPTURE(prefix);
        const std::size_t n = std::string(prefix) == "train" ? 60000 : 10000;
        const IdxArray labels = read_idx((dir / (std::string(prefix) + "-labels-idx1-ubyte.gz")).string());
        CHECK(labels.shape == shape_t{ n });
        std::array<std::size_t, 10> count{};
        for (std::uint8_t l : labels.data) {
            REQUIRE(l <= 9);
            ++count[l];
        }
        for (std::size_t c : count)
            CHECK(c == n / 10); // Fashion-MNIST is balanced
    }
    const IdxArray test = read_idx((dir / "t10k-images-idx3-ubyte.gz").string());
    CHECK(test.shape == shape_t{ 10000, 28, 28 });
}
