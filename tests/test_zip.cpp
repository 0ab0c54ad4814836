// ctest-labels: sanitize
// framework/io/zip: archives written and read back, stored and deflated; broken archives and
// decompression bombs give IOError naming the file, before any large allocation.
#include "framework/io/zip.hpp"

#include "framework/errors.hpp"
#include "framework/limits.hpp"
#include "helpers.hpp"
#include "keras_files.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <sstream>

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::TempDir;
using xtape::testing::read_bytes;
using xtape::testing::write_bytes;

namespace test_zip {

void put_u32(std::string& b, std::size_t at, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i)
        b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

/// Sets the uncompressed size of every entry, in the local headers and the central directory
/// (offsets 22 and 24 of the two records), as a forged archive would.
std::string with_declared_size(std::string b, std::uint32_t size)
{
    for (std::size_t p = b.find("PK\x03\x04"); p != std::string::npos; p = b.find("PK\x03\x04", p + 4))
        put_u32(b, p + 22, size);
    for (std::size_t p = b.find("PK\x01\x02"); p != std::string::npos; p = b.find("PK\x01\x02", p + 4))
        put_u32(b, p + 24, size);
    return b;
}

/// Sets the allocation limit for a scope, restoring the previous one even when a check aborts.
struct LimitGuard {
    std::size_t old = max_array_elements();
    explicit LimitGuard(std::size_t n) { set_max_array_elements(n); }
    ~LimitGuard() { set_max_array_elements(old); }
};

} // namespace test_zip

using namespace test_zip;

TEST_CASE("zip: stored and deflated entries read back byte for byte, in the order written")
{
    TempDir tmp("zip_roundtrip");
    std::string big(200000, 'a');
    for (std::size_t i = 0; i < big.size(); i += 7)
        big[i] = static_cast<char>(i % 251);
    const std::vector<std::pair<std::string, std::string>> entries{
        { "metadata.json", "{\"a\": 1}" }, { "empty", "" }, { "dir/big.bin", big }, { "zero", std::string(3, '\0') }
    };
    for (bool deflate : { false, true }) {
        CAPTURE(deflate);
        const std::string path = tmp.file(deflate ? "d.zip" : "s.zip");
        io::write_zip(path, entries, deflate);
        CHECK(io::has_zip_signature(path));
        const io::ZipReader z = io::ZipReader::open(path);
        const auto infos = z.entries();
        REQUIRE(infos.size() == entries.size());
        for (std::size_t i = 0; i < entries.size(); ++i) {
            CHECK(infos[i].name == entries[i].first);
            CHECK(infos[i].size == entries[i].second.size());
            CHECK(z.read(entries[i].first) == entries[i].second);
        }
        CHECK(infos[2].stored == !deflate);
        if (deflate)
            CHECK(infos[2].compressed_size < big.size());
        CHECK_FALSE(z.has("missing"));
        expect_error<IOError>([&] { (void)z.read("missing"); }, { path, "missing entry 'missing'" });
    }
    // An archive made of one long run deflates near the 1032:1 limit and still reads.
    const std::string zeros(8 << 20, '\0');
    io::write_zip(tmp.file("zeros.zip"), { { "z", zeros } }, true);
    CHECK(io::ZipReader::open(tmp.file("zeros.zip")).read("z") == zeros);
}

TEST_CASE("zip: missing, non-zip, truncated and corrupted archives are IOErrors naming the file")
{
    TempDir tmp("zip_broken");
    expect_error<IOError>([&] { io::ZipReader::open(tmp.file("nope.zip")); }, { "nope.zip", "no such file" });
    CHECK_FALSE(io::has_zip_signature(tmp.file("nope.zip")));
    write_bytes(tmp.file("text.zip"), "hello, not a zip archive at all");
    CHECK_FALSE(io::has_zip_signature(tmp.file("text.zip")));
    expect_error<IOError>([&] { io::ZipReader::open(tmp.file("text.zip")); }, { "text.zip", "cannot open as a zip" });

    std::string payload(5000, 'x');
    for (std::size_t i = 0; i < payload.size(); ++i)
        payload[i] = static_cast<char>((i * 31) % 256);
    io::write_zip(tmp.file("good.zip"), { { "a", "first" }, { "b", payload } });
    const std::string good = read_bytes(tmp.file("good.zip"));
    // Every truncation: the central directory sits at the end, so each one fails to open or to read.
    for (std::size_t cut : { good.size() - 1, good.size() - 30, good.size() / 2, std::size_t(10) }) {
        CAPTURE(cut);
        const std::string path = tmp.file("cut.zip");
        write_bytes(path, good.substr(0, cut));
        CHECK(io::has_zip_signature(path));
        const std::string msg = xtape::testing::message_of<IOError>([&] {
            const io::ZipReader z = io::ZipReader::open(path);
            (void)z.read("b");
        });
        CHECK(xtape::testing::contains(msg, path));
    }
    // A flipped byte inside the stored data fails the CRC check.
    std::string bad = good;
    bad[bad.find("first") + 200] ^= 0x55;
    write_bytes(tmp.file("crc.zip"), bad);
    const io::ZipReader z = io::ZipReader::open(tmp.file("crc.zip"));
    CHECK(z.read("a") == "first");
    expect_error<IOError>([&] { (void)z.read("b"); }, { "crc.zip", "entry 'b'" });
}

TEST_CASE("zip: an entry declaring far more bytes than the archive holds is refused before allocating")
{
    TempDir tmp("zip_bomb");
    // A low allocation limit throughout, so that a missing check shows as the wrong error, not as
    // a 4 GB allocation.
    const LimitGuard guard(std::size_t(1) << 26);
    // Deflated: 4 GB declared for a few compressed bytes is beyond deflate's 1032:1.
    io::write_zip(tmp.file("d.zip"), { { "model.weights.h5", std::string(1000, 'a') } }, true);
    write_bytes(tmp.file("bomb.zip"), with_declared_size(read_bytes(tmp.file("d.zip")), 0xFFFFFFF0u));
    const io::ZipReader z = io::ZipReader::open(tmp.file("bomb.zip"));
    CHECK(z.entries().at(0).size == 0xFFFFFFF0u);
    expect_error<IOError>([&] { (void)z.read("model.weights.h5"); },
                          { "bomb.zip", "entry 'model.weights.h5'", "decompression bomb" });
    // Stored: the declared size must be the stored size.
    io::write_zip(tmp.file("s.zip"), { { "config.json", "{}" } });
    write_bytes(tmp.file("forged.zip"), with_declared_size(read_bytes(tmp.file("s.zip")), 3000000000u));
    expect_error<IOError>([&] { (void)io::ZipReader::open(tmp.file("forged.zip")).read("config.json"); },
                          { "forged.zip", "entry 'config.json'", "stored entry declares 3000000000 bytes" });
    // Within deflate's ratio but above the allocation limit (framework/limits.hpp).
    set_max_array_elements(100000);
    io::write_zip(tmp.file("large.zip"), { { "x", std::string(200000, 'b') } }, true);
    expect_error<ValueError>([&] { (void)io::ZipReader::open(tmp.file("large.zip")).read("x"); },
                             { "large.zip", "entry 'x'", "above the limit" });
}
