// IDX reader (plain and gzip) on arbitrary bytes.
#include "framework/io/idx.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    xtape::fuzz::limit_allocations_once();
    const std::string path = xtape::fuzz::write_input(data, size, ".idx");
    xtape::fuzz::expect_clean([&] { xtape::io::read_idx(path); });
    return 0;
}
