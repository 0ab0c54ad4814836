// Shared helpers for the test suite: deterministic random tensors, gradcheck assertions and
// error-message checks. Test files use these instead of local copies.
#pragma once

#include "framework/gradcheck.hpp"
#include "framework/ops.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <initializer_list>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace xtape::testing {

/// Uniform values in [lo, hi) from a fixed seed, so failures reproduce.
template <class T = double>
Tensor<T> random_tensor(const shape_t& shape, unsigned seed, double lo = -1.0, double hi = 1.0)
{
    std::mt19937 gen(seed);
    std::uniform_real_distribution<double> u(lo, hi);
    array_t<T> a = array_t<T>::from_shape(shape);
    for (auto& v : a)
        v = static_cast<T>(u(gen));
    return Tensor<T>(std::move(a));
}

/// Runs gradcheck and fails the current test with its report when a gradient is wrong.
inline void check_gradients(const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                            const std::vector<Tensor<double>>& inputs, const GradcheckOptions& opt = {})
{
    GradcheckResult r = gradcheck(f, inputs, opt);
    INFO(r.report());
    CHECK(r.passed);
    for (const auto& e : r.entries)
        CHECK(e.checked == shape_size(e.shape));
}

/// The message of the E that f throws, or a marker that no E was thrown (so a CHECK on the
/// message fails and shows why).
template <class E, class F>
std::string message_of(F&& f)
{
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "<no exception of the expected type>";
}

inline bool contains(const std::string& s, const std::string& part)
{
    return s.find(part) != std::string::npos;
}

/// The message of whatever std::exception f throws, or "" when it throws none.
template <class F>
std::string error_of(F&& f)
{
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

/// An array of the given shape filled from a list in row-major order (arr<float>(...) for float;
/// the list is double so that integer literals mix freely).
template <class T = double>
array_t<T> arr(std::initializer_list<double> v, const shape_t& shape)
{
    array_t<T> a = array_t<T>::from_shape(shape);
    REQUIRE(v.size() == a.size());
    std::transform(v.begin(), v.end(), a.begin(), [](double d) { return static_cast<T>(d); });
    return a;
}

/// Element-wise closeness with a relative tolerance (and absolute near zero). `want` may be an
/// xtensor expression: its type is not deduced.
template <class T>
void check_close(const array_t<T>& got, const std::common_type_t<array_t<T>>& want, double tol = 1e-12)
{
    REQUIRE(shape_of(got) == shape_of(want));
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(tol).scale(1.0));
    }
}

/// A tensor from a flat list of values (a vector when no shape is given).
template <class T = double>
Tensor<T> tensor_of(const std::vector<double>& v, shape_t shape = {})
{
    if (shape.empty())
        shape = { v.size() };
    array_t<T> a = array_t<T>::from_shape(shape);
    REQUIRE(a.size() == v.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        a.data()[i] = static_cast<T>(v[i]);
    return Tensor<T>(std::move(a));
}

/// Values in row-major order within a relative tolerance (absolute `abs` near zero).
template <class T>
void check_values(const Tensor<T>& t, const std::vector<double>& expected, double rel = 1e-12,
                  double abs = 1e-12)
{
    REQUIRE(t.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        CAPTURE(i);
        CHECK(static_cast<double>(t.data()[i]) == doctest::Approx(expected[i]).epsilon(rel).scale(abs / rel));
    }
}

} // namespace xtape::testing
