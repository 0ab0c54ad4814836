// Small data, options and comparisons shared by the tests of the file formats (test_saving for
// the HDF5 layouts, test_keras3 for the .keras archives), so that both train and compare alike.
#pragma once

#include "framework/model.hpp"
#include "tests/helpers.hpp"

#include <algorithm>
#include <cmath>

namespace xtape::testing {

/// Uniform values from a fixed seed (random_tensor's), as an array.
template <class T = float>
array_t<T> random_array(const shape_t& shape, unsigned seed, double lo = -1, double hi = 1)
{
    return random_tensor<T>(shape, seed, lo, hi).value();
}

/// The largest absolute difference of two arrays of one shape (any element types).
template <class A, class B>
double max_abs_diff(const A& a, const B& b)
{
    REQUIRE(std::equal(a.shape().begin(), a.shape().end(), b.shape().begin(), b.shape().end()));
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])));
    return m;
}

struct SmallData {
    array_t<float> x, y;
};

/// n samples of 6 features with 3 classes that a small model can learn.
inline SmallData small_data(std::size_t n = 40)
{
    SmallData d{ random_array({ n, 6 }, 7), array_t<float>::from_shape({ n }) };
    for (std::size_t i = 0; i < n; ++i)
        d.y(i) = static_cast<float>((d.x(i, 0) + d.x(i, 1) > 0) + (d.x(i, 2) > 0.5));
    return d;
}

/// Batches of 8 in order, no output.
inline FitOptions<float> quiet_fit(int epochs, int initial_epoch = 0)
{
    FitOptions<float> fo;
    fo.epochs = epochs;
    fo.initial_epoch = initial_epoch;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.verbose = 0;
    return fo;
}

inline PredictOptions<float> quiet_predict()
{
    PredictOptions<float> po;
    po.verbose = 0;
    return po;
}

} // namespace xtape::testing
