// Model loader on arbitrary bytes (HDF5 files of Keras 1/2/tf.keras/Keras 3, and Keras 3 .keras
// zip archives: load_model chooses by the first bytes), then one predict on zeros. The input is
// written to a file because HDF5 and libzip open paths.
#include "fuzz/fuzz_common.hpp"
#include "saving/keras_h5.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    xtape::fuzz::limit_allocations_once();
    const std::string path = xtape::fuzz::write_input(data, size, ".h5");
    xtape::fuzz::expect_clean([&] {
        auto model = xtape::load_model<float>(path);
        xtape::fuzz::expect_clean([&] { xtape::fuzz::exercise(*model); });
    });
    return 0;
}
