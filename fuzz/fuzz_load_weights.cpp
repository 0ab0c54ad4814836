// load_weights into a fixed Dense + BatchNormalization model, by topology and by name, on
// arbitrary bytes (weights-only files and full model files).
#include "framework/sequential.hpp"
#include "fuzz/fuzz_common.hpp"
#include "layers/registry.hpp"
#include "saving/keras_h5.hpp"

namespace {
std::shared_ptr<xtape::Model<float>> target_model()
{
    const char* config = R"({"class_name": "Sequential", "config": {"name": "target", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [null, 4], "name": "input"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 3}},
        {"class_name": "BatchNormalization", "config": {"name": "batch_normalization"}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 2, "activation": "softmax"}}]}})";
    return xtape::model_from_json<float>(config, "fuzz_load_weights");
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    xtape::fuzz::limit_allocations_once();
    static const auto model = target_model();
    const std::string path = xtape::fuzz::write_input(data, size, ".weights.h5");
    xtape::fuzz::expect_clean([&] { xtape::load_weights(*model, path); });
    xtape::fuzz::expect_clean([&] { xtape::load_weights(*model, path, /*by_name=*/true, /*skip_mismatch=*/true); });
    return 0;
}
