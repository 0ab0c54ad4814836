// Note [Allocation limit]: sizes from configs and files are checked before anything is
// allocated, against a limit the application can raise.
// ctest-labels: sanitize
#include "framework/io/hdf5.hpp"
#include "framework/limits.hpp"
#include "layers/dense.hpp"
#include "layers/registry.hpp"
#include "saving/keras_h5.hpp"
#include "tests/helpers.hpp"
#include "tests/keras_files.hpp"

#include <doctest/doctest.h>
#include <hdf5.h>

using namespace xtape;
using xtape::testing::contains;
using xtape::testing::expect_error;
using xtape::testing::message_of;
using xtape::testing::TempDir;

namespace {

/// Restores the default limit when a case ends, whatever it set.
struct LimitGuard {
    std::size_t saved = max_array_elements();
    ~LimitGuard() { set_max_array_elements(saved); }
};

} // namespace

TEST_CASE("limits: checked_size counts, refuses overflow and sizes above the limit")
{
    LimitGuard guard;
    CHECK(max_array_elements() == (std::size_t(1) << 32));
    CHECK(checked_size({ 3, 4 }, "x") == 12);
    CHECK(checked_size({}, "x") == 1);
    CHECK(checked_size({ 0, std::size_t(1) << 62, std::size_t(1) << 62 }, "x") == 0);
    const std::string overflow =
      message_of<ValueError>([] { checked_size({ std::size_t(1) << 40, std::size_t(1) << 40 }, "layer \"d\""); });
    CHECK(contains(overflow, "layer \"d\""));
    CHECK(contains(overflow, "overflows"));
    set_max_array_elements(100);
    CHECK(checked_size({ 10, 10 }, "x") == 100);
    const std::string above = message_of<ValueError>([] { checked_size({ 10, 11 }, "weights.h5: dataset 'k'"); });
    CHECK(contains(above, "weights.h5: dataset 'k'"));
    CHECK(contains(above, "(10, 11)"));
    CHECK(contains(above, "110 elements"));
    CHECK(contains(above, "limit of 100"));
    CHECK(contains(above, "set_max_array_elements"));
    CHECK_THROWS_AS(set_max_array_elements(0), ValueError);
}

TEST_CASE("limits: a Dense with 10^12 units from a config is a ValueError naming the layer, before any allocation")
{
    const json config = { { "name", "huge" }, { "units", 1000000000000LL } };
    auto layer = layer_from_config<float>("Dense", config);
    const std::string msg = message_of<ValueError>([&] { layer->build_once({ -1, 784 }); });
    CHECK(contains(msg, "layer \"huge\""));
    CHECK(contains(msg, "kernel"));
    CHECK(contains(msg, "(784, 1000000000000)"));
    CHECK(contains(msg, "above the limit"));
    // Raising the limit is the documented way to allow big weights.
    LimitGuard guard;
    set_max_array_elements(std::size_t(1) << 20);
    auto small = layer_from_config<float>("Dense", { { "name", "small" }, { "units", 2000 } });
    CHECK_THROWS_AS(small->build_once({ -1, 784 }), ValueError);
    set_max_array_elements(std::size_t(1) << 21);
    small->build_once({ -1, 784 });
    CHECK(small->weights().size() == 2);
}

TEST_CASE("limits: an HDF5 dataset declaring 2^40 elements in no storage is an IOError naming the file")
{
    TempDir tmp("test_limits");
    const std::string path = tmp.file("sparse.h5");
    {
        // A chunked dataset with no chunk written takes no space, whatever shape it declares.
        hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t dims[2] = { hsize_t(1) << 20, hsize_t(1) << 20 };
        hsize_t chunk[2] = { 64, 64 };
        hid_t space = H5Screate_simple(2, dims, nullptr);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, 2, chunk);
        hid_t ds = H5Dcreate2(f, "kernel", H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        REQUIRE(ds >= 0);
        H5Dclose(ds);
        H5Pclose(dcpl);
        H5Sclose(space);
        H5Fclose(f);
    }
    auto root = io::H5File::open_read(path).root();
    CHECK(root.dataset_shape("kernel") == shape_t{ std::size_t(1) << 20, std::size_t(1) << 20 });
    expect_error<IOError>([&] { root.read_dataset<float>("kernel"); },
                          { path, "dataset 'kernel'", "(1048576, 1048576)", "above the limit" });
}

TEST_CASE("limits: a config nested deeper than any Keras config is refused while parsing, not by a stack overflow")
{
    // 100000 levels would overflow the stack of a recursive builder; the parse refuses them.
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const std::string msg = message_of<ValueError>([&] { model_from_json<float>(deep, "deep.json"); });
    CHECK(contains(msg, "deep.json"));
    CHECK(contains(msg, "nests deeper than 200 levels"));
    // Models nested in models, as Keras writes them, are fine at realistic depths.
    std::string nested = R"({"class_name": "Sequential", "config": {"name": "m0", "layers": [)"
                         R"({"class_name": "InputLayer", "config": {"batch_shape": [null, 2], "name": "in"}},)"
                         R"({"class_name": "Dense", "config": {"name": "d", "units": 1}}]}})";
    for (int i = 1; i <= 20; ++i)
        nested = R"({"class_name": "Sequential", "config": {"name": "m)" + std::to_string(i) +
                 R"(", "layers": [{"class_name": "InputLayer", "config": {"batch_shape": [null, 2], "name": "in)" +
                 std::to_string(i) + R"("}}, )" + nested + "]}}";
    auto model = model_from_json<float>(nested, "nested.json");
    CHECK(model->layers().size() == 1);
    CHECK(!contains(message_of<ValueError>([&] { model_from_json<float>("{", "broken.json"); }), "<no exception"));
    // A number too large for a double is nlohmann's out_of_range, not a parse_error (fuzz_model_config).
    CHECK(contains(message_of<ValueError>([&] { model_from_json<float>("8e98809", "big.json"); }),
                   "big.json is not valid JSON"));
}
