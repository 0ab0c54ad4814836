// Numerical bad input through the training loop, each a documented outcome (README,
// "Reliability"): NaN and Inf propagate through predict and make fit's loss NaN; a sparse label
// out of range is Keras's error naming the label, the row and the classes; a constant channel
// and batches of one sample train to finite weights; weights stored with another dtype load
// converted, as text they are an error naming the dataset. Fit on no samples and x/y of
// different lengths: tests/test_model.cpp.
#include "framework/io/hdf5.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving/keras_h5.hpp"
#include "saving_helpers.hpp"

#include <doctest/doctest.h>
#include <hdf5.h>
#include <xtensor/xview.hpp>

#include <cmath>
#include <limits>

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::TempDir;

namespace test_bad_input {

std::shared_ptr<Sequential<float>> bn_model(const std::string& loss = "sparse_categorical_crossentropy")
{
    set_random_seed(11);
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 6 }));
    m->add(std::make_shared<BatchNormalization<float>>());
    m->add(std::make_shared<Dense<float>>(8, "relu"));
    m->add(std::make_shared<Dense<float>>(3, "softmax"));
    m->compile("adam", loss);
    return m;
}

bool all_finite(const array_t<float>& a)
{
    for (float v : a)
        if (!std::isfinite(v))
            return false;
    return true;
}

/// Replaces dataset `name` (a path from the root) of an HDF5 file with `make(file id, name)`'s.
template <class F>
void replace_dataset(const std::string& path, const std::string& name, F make)
{
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(f >= 0);
    REQUIRE(H5Ldelete(f, name.c_str(), H5P_DEFAULT) >= 0);
    make(f, name);
    H5Fclose(f);
}

} // namespace test_bad_input

using namespace test_bad_input;

TEST_CASE("bad_input: NaN and Inf in x propagate through predict, row by row, without a crash")
{
    auto m = bn_model();
    const auto d = xtape::testing::small_data(32);
    m->fit(d.x, d.y, xtape::testing::quiet_fit(1));
    array_t<float> x = d.x;
    x(3, 0) = std::numeric_limits<float>::quiet_NaN();
    x(9, 2) = std::numeric_limits<float>::infinity();
    const array_t<float> clean = m->predict(d.x, xtape::testing::quiet_predict());
    const array_t<float> y = m->predict(x, xtape::testing::quiet_predict());
    for (std::size_t r = 0; r < 32; ++r) {
        CAPTURE(r);
        for (std::size_t c = 0; c < 3; ++c) {
            if (r == 3 || r == 9)
                CHECK(std::isnan(y(r, c))); // softmax of a NaN or of inf - inf
            else
                CHECK(y(r, c) == clean(r, c));
        }
    }
}

TEST_CASE("bad_input: NaN in x or Inf in y makes fit's loss NaN or Inf; training ends normally")
{
    const auto d = xtape::testing::small_data(32);
    {
        auto m = bn_model();
        array_t<float> x = d.x;
        x(20, 1) = std::numeric_limits<float>::quiet_NaN();
        auto h = m->fit(x, d.y, xtape::testing::quiet_fit(2));
        REQUIRE(h->history["loss"].size() == 2);
        CHECK(std::isnan(h->history["loss"][0]));
    }
    {
        auto m = bn_model("mse");
        array_t<float> y = xt::zeros<float>({ 32, 3 });
        y(5, 1) = std::numeric_limits<float>::infinity();
        auto h = m->fit(d.x, y, xtape::testing::quiet_fit(1));
        CHECK(!std::isfinite(h->history["loss"][0]));
    }
}

TEST_CASE("bad_input: a sparse label out of range stops fit with Keras's message, the label, row and classes")
{
    auto m = bn_model();
    const auto d = xtape::testing::small_data(32);
    array_t<float> y = d.y;
    y(10) = 7; // row 2 of the second batch of 8
    expect_error<ValueError>([&] { m->fit(d.x, y, xtape::testing::quiet_fit(1)); },
                             { "Received a label value of 7 which is outside the valid range of [0, 3)", "row 2",
                               "3 classes" });
    y(10) = -1;
    expect_error<ValueError>([&] { m->evaluate(d.x, y, EvaluateOptions<float>{ 32, 0 }); },
                             { "label value of -1", "row 10" });
}

TEST_CASE("bad_input: a constant input channel and batches of one sample train to finite weights")
{
    auto m = bn_model();
    auto d = xtape::testing::small_data(16);
    for (std::size_t r = 0; r < 16; ++r)
        d.x(r, 4) = 2.5f; // variance 0 in batch norm's channel 4
    FitOptions<float> fo = xtape::testing::quiet_fit(2);
    fo.batch_size = 1; // every batch has variance 0 in every channel
    auto h = m->fit(d.x, d.y, fo);
    CHECK(std::isfinite(h->history["loss"][1]));
    for (const auto& w : m->get_weights())
        CHECK(all_finite(w));
    const array_t<float> one = xt::view(d.x, xt::range(0, 1), xt::all());
    CHECK(all_finite(m->predict(one, xtape::testing::quiet_predict())));
}

TEST_CASE("bad_input: weights stored as integers or float64 load converted; as text they are an error naming the dataset")
{
    TempDir tmp("bad_dtype");
    const std::string path = tmp.file("w.h5");
    auto m = bn_model();
    save_weights(*m, path);
    const std::string dense = m->layers()[1]->name();
    std::string kernel;
    {
        const io::H5Group g = io::H5File::open_read(path).root().group(dense);
        kernel = dense + "/" + g.read_string_array_attribute("weight_names")[0];
    }
    // int32 kernel of ones: converted to float, as h5py and Keras would.
    replace_dataset(path, kernel, [](hid_t f, const std::string& name) {
        const hsize_t dims[2] = { 6, 8 };
        std::vector<std::int32_t> ones(48, 1);
        hid_t s = H5Screate_simple(2, dims, nullptr);
        hid_t d = H5Dcreate2(f, name.c_str(), H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ones.data());
        H5Dclose(d);
        H5Sclose(s);
    });
    auto n = bn_model();
    load_weights(*n, path);
    CHECK(n->layers()[1]->weights()[0].value() == array_t<float>(xt::ones<float>({ 6, 8 })));
    // A string kernel: an IOError naming the file and the dataset; the model keeps its weights.
    replace_dataset(path, kernel, [](hid_t f, const std::string& name) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 4);
        hid_t s = H5Screate(H5S_SCALAR);
        hid_t d = H5Dcreate2(f, name.c_str(), t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, "abcd");
        H5Dclose(d);
        H5Sclose(s);
        H5Tclose(t);
    });
    auto o = bn_model();
    const auto before = o->get_weights();
    const std::string msg = xtape::testing::error_of([&] { load_weights(*o, path); });
    CHECK(xtape::testing::contains(msg, path));
    CHECK(xtape::testing::contains(msg, "kernel"));
    const auto after = o->get_weights();
    for (std::size_t i = 0; i < before.size(); ++i)
        CHECK(after[i] == before[i]);
}
