// .npy reader on arbitrary bytes, as float and as double.
#include "framework/io/npy.hpp"
#include "fuzz/fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    xtape::fuzz::limit_allocations_once();
    const std::string path = xtape::fuzz::write_input(data, size, ".npy");
    xtape::fuzz::expect_clean([&] { xtape::io::read_npy<float>(path); });
    xtape::fuzz::expect_clean([&] { xtape::io::read_npy<double>(path); });
    return 0;
}
