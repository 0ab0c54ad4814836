// ctest-labels: sanitize
#include "framework/gradcheck.hpp"
#include "framework/ops.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using V = std::vector<Tensor<double>>;

namespace {
// An op whose backward is deliberately wrong (a factor 2 too large): gradcheck must catch it.
Tensor<double> wrong_square(const Tensor<double>& x)
{
    array_t<double> y = x.value() * x.value();
    Tensor<double> out(std::move(y));
    record_op<double>("wrong_square", { x }, out, [x](const array_t<double>& dy, const std::vector<array_t<double>*>& dx) {
        if (dx[0])
            *dx[0] += dy * 4.0 * x.value();
    });
    return out;
}
} // namespace

TEST_CASE("gradcheck: catches a wrong backward and reports the worst element")
{
    Tensor<double> x = random_tensor({ 3, 4 }, 1);
    GradcheckResult r = gradcheck([](const V& in) { return wrong_square(in[0]); }, V{ x });
    CHECK_FALSE(r.passed);
    REQUIRE(r.entries.size() == 1);
    CHECK(r.entries[0].failed == 12);
    CHECK(r.entries[0].max_rel_error == doctest::Approx(0.5));
    CHECK(r.report().find("FAIL") != std::string::npos);
}

TEST_CASE("gradcheck: catches a gradient that is dropped for one input")
{
    Tensor<double> a = random_tensor({ 2, 2 }, 2), b = random_tensor({ 2, 2 }, 3);
    auto f = [](const V& in) {
        Tensor<double> out(array_t<double>(in[0].value() * in[1].value()));
        Tensor<double> a = in[0], b = in[1];
        record_op<double>("half_mul", { a, b }, out, [b](const array_t<double>& dy, const std::vector<array_t<double>*>& dx) {
            if (dx[0])
                *dx[0] += dy * b.value(); // and no gradient for b
        });
        return out;
    };
    GradcheckResult r = gradcheck(f, V{ a, b });
    CHECK_FALSE(r.passed);
    CHECK(r.entries[0].failed == 0);
    CHECK(r.entries[1].failed == 4);
}

TEST_CASE("gradcheck: leaves the inputs unchanged")
{
    Tensor<double> x = random_tensor({ 5 }, 4);
    array_t<double> before = x.value();
    gradcheck([](const V& in) { return square(in[0]); }, V{ x });
    CHECK(x.value() == before);
}

TEST_CASE("gradcheck: broadcasting binary ops")
{
    const std::vector<std::pair<shape_t, shape_t>> cases = {
        { { 3, 4 }, { 3, 4 } }, { { 3, 4 }, { 4 } }, { { 3, 1 }, { 1, 4 } }, { { 2, 3, 4 }, { 3, 1 } }, { {}, { 2, 2 } }
    };
    for (const auto& c : cases) {
        const shape_t& sa = c.first; // not a structured binding: clang 14 cannot capture one
        const shape_t& sb = c.second;
        CAPTURE(shape_str(sa));
        CAPTURE(shape_str(sb));
        Tensor<double> a = random_tensor(sa, 5), b = random_tensor(sb, 6, 0.5, 2.0);
        check_gradients([](const V& in) { return add(in[0], in[1]); }, V{ a, b });
        check_gradients([](const V& in) { return sub(in[0], in[1]); }, V{ a, b });
        check_gradients([](const V& in) { return mul(in[0], in[1]); }, V{ a, b });
        check_gradients([](const V& in) { return div(in[0], in[1]); }, V{ a, b });
        check_gradients([](const V& in) { return maximum(in[0], in[1]); }, V{ a, b });
        check_gradients([](const V& in) { return minimum(in[0], in[1]); }, V{ a, b });
        Tensor<double> pa = random_tensor(sa, 7, 0.5, 2.0);
        check_gradients([](const V& in) { return pow(in[0], in[1]); }, V{ pa, b });
    }
}

TEST_CASE("gradcheck: a value used twice")
{
    Tensor<double> x = random_tensor({ 4 }, 8);
    check_gradients([](const V& in) { return mul(in[0], in[0]); }, V{ x });
    check_gradients([](const V& in) { return add(mul(in[0], in[0]), in[0]); }, V{ x });
}

TEST_CASE("gradcheck: scalar ops")
{
    Tensor<double> x = random_tensor({ 3, 2 }, 9, 0.5, 2.0);
    check_gradients([](const V& in) { return add_scalar(in[0], 3.0); }, V{ x });
    check_gradients([](const V& in) { return mul_scalar(in[0], -2.5); }, V{ x });
    check_gradients([](const V& in) { return pow_scalar(in[0], 1.7); }, V{ x });
}

TEST_CASE("gradcheck: matmul and linear")
{
    Tensor<double> a = random_tensor({ 3, 4 }, 10), b = random_tensor({ 4, 5 }, 11);
    check_gradients([](const V& in) { return matmul(in[0], in[1]); }, V{ a, b });
    Tensor<double> ab = random_tensor({ 2, 3, 4 }, 12), bb = random_tensor({ 2, 4, 5 }, 13);
    check_gradients([](const V& in) { return matmul(in[0], in[1]); }, V{ ab, bb });
    check_gradients([](const V& in) { return matmul(in[0], in[1]); }, V{ ab, b });
    Tensor<double> bias = random_tensor({ 5 }, 14);
    check_gradients([](const V& in) { return linear(in[0], in[1], in[2]); }, V{ a, b, bias });
    check_gradients([](const V& in) { return linear(in[0], in[1], Tensor<double>()); }, V{ ab, b });
    CHECK_THROWS_AS(matmul(a, a), ShapeError);
}

TEST_CASE("gradcheck: reductions over axes with keepdims")
{
    Tensor<double> x = random_tensor({ 2, 3, 4 }, 15);
    for (bool keep : { false, true }) {
        for (axes_t axes : { axes_t{}, axes_t{ 0 }, axes_t{ -1 }, axes_t{ 0, 2 }, axes_t{ 1 } }) {
            check_gradients([&](const V& in) { return sum(in[0], axes, keep); }, V{ x });
            check_gradients([&](const V& in) { return mean(in[0], axes, keep); }, V{ x });
            check_gradients([&](const V& in) { return max(in[0], axes, keep); }, V{ x });
        }
    }
    CHECK_THROWS_AS(sum(x, { 3 }), ValueError);
}

TEST_CASE("gradcheck: a 2-layer MLP loss")
{
    Tensor<double> x = random_tensor({ 6, 4 }, 16), w1 = random_tensor({ 4, 5 }, 17), b1 = random_tensor({ 5 }, 18),
                   w2 = random_tensor({ 5, 3 }, 19), b2 = random_tensor({ 3 }, 20);
    Tensor<double> y = random_tensor({ 6, 3 }, 21);
    check_gradients(
        [&](const V& in) {
            Tensor<double> h = maximum(linear(x, in[0], in[1]), Tensor<double>::scalar(0.0));
            Tensor<double> out = linear(h, in[2], in[3]);
            Tensor<double> d = sub(out, y);
            return mean(mul(d, d));
        },
        V{ w1, b1, w2, b2 });
}

TEST_CASE("gradcheck: max_elements checks a seeded subset of distinct elements")
{
    Tensor<double> x = random_tensor({ 10, 30 }, 4), small = random_tensor({ 5 }, 5);
    // Count the function calls: two per checked element, plus one for the tape.
    int calls = 0;
    auto f = [&]() {
        ++calls;
        return add(sum(wrong_square(x)), sum(mul(small, small)));
    };
    GradcheckOptions opt;
    opt.max_elements = 7;
    GradcheckResult r = gradcheck(f, { x, small }, { "x", "small" }, opt);
    CHECK(calls == 1 + 2 * (7 + 5)); // `small` has fewer than 7 elements: all of them
    REQUIRE(r.entries.size() == 2);
    CHECK(r.entries[0].checked == 7);
    CHECK(r.entries[0].failed == 7); // every sampled element of the wrong op is caught
    CHECK_FALSE(r.passed);
    CHECK(r.entries[1].checked == 5);
    CHECK(r.entries[1].failed == 0);
    CHECK(r.report().find("7/7 failed (7 of 300 elements sampled)") != std::string::npos);
    CHECK(r.report().find("0/5 failed") != std::string::npos);
    CHECK(r.report().find("of 5 elements sampled") == std::string::npos);

    // Which elements: perturbing an element changes f, so record the indices touched by
    // comparing x with its original value at every call.
    const array_t<double> x0 = x.value();
    std::vector<std::size_t> touched;
    auto g = [&]() {
        for (std::size_t i = 0; i < x0.size(); ++i)
            if (x.value().data()[i] != x0.data()[i] && (touched.empty() || touched.back() != i))
                touched.push_back(i);
        return sum(mul(x, x));
    };
    gradcheck(g, { x }, { "x" }, opt);
    REQUIRE(touched.size() == 7); // 7 distinct elements, each perturbed up then down
    CHECK(std::is_sorted(touched.begin(), touched.end()));
    CHECK(std::adjacent_find(touched.begin(), touched.end()) == touched.end());
    CHECK(x.value() == x0);
    const auto first = touched;
    touched.clear();
    gradcheck(g, { x }, { "x" }, opt);
    CHECK(touched == first); // the same seed, the same elements
    touched.clear();
    opt.seed = 999;
    gradcheck(g, { x }, { "x" }, opt);
    CHECK(touched.size() == 7);
    CHECK(touched != first);
    // 0 (the default) checks everything.
    touched.clear();
    gradcheck(g, { x }, { "x" });
    CHECK(touched.size() == 300);
}
