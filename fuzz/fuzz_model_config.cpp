// Model-config JSON -> model builder: every layer's from_config in every Keras form, then one
// predict on zeros, then get_config -> JSON -> model again (the round trip must not throw what
// the first parse accepted).
#include "fuzz/fuzz_common.hpp"
#include "saving/keras_h5.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    xtape::fuzz::limit_allocations_once();
    const std::string text(reinterpret_cast<const char*>(data), size);
    xtape::fuzz::expect_clean([&] {
        auto model = xtape::model_from_json<float>(text, "fuzz_config");
        xtape::fuzz::expect_clean([&] { xtape::fuzz::exercise(*model); });
        model->summary_string();
        xtape::model_from_json<float>(xtape::model_to_json_string(*model), "fuzz_config_round_trip");
    });
    return 0;
}
