// Shared helpers for the test suite: deterministic random tensors, gradcheck assertions and
// error-message checks. Test files use these instead of local copies.
#pragma once

#include "framework/gradcheck.hpp"
#include "framework/ops.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>

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

} // namespace xtape::testing
