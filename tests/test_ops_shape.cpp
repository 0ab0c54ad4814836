// ctest-labels: sanitize
// Shape ops: values against xtensor's own views (an independent implementation), gradient
// checks for every axis and permutation, and errors that name the op and the shapes.
#include "framework/ops.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xview.hpp>

#include <string>
#include <vector>

using namespace xtape;
using xtape::testing::message_of;
using xtape::testing::contains;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using V = std::vector<Tensor<double>>;

namespace {

template <class A, class B>
void check_equal(const A& got, const B& expected)
{
    REQUIRE(shape_of(got) == shape_of(expected));
    auto e = expected.begin();
    for (auto g = got.begin(); g != got.end(); ++g, ++e)
        CHECK(*g == *e);
}

} // namespace

TEST_CASE("transpose: default reverses the axes; any permutation matches xt::transpose")
{
    const Tensor<double> x = random_tensor({ 2, 3, 4 }, 1);
    check_equal(transpose(x).value(), array_t<double>(xt::transpose(x.value())));
    const std::vector<std::vector<std::size_t>> perms = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                                          { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    for (const auto& p : perms) {
        CAPTURE(shape_str(p));
        const Tensor<double> y = transpose(x, p);
        check_equal(y.value(), array_t<double>(xt::transpose(x.value(), p)));
        check_gradients([&p](const V& in) { return transpose(in[0], p); }, V{ x });
    }
    const Tensor<double> m = random_tensor({ 3, 5 }, 2);
    check_equal(transpose(m).value(), array_t<double>(xt::transpose(m.value())));
    check_gradients([](const V& in) { return transpose(in[0]); }, V{ m });
    // rank 1 and 0 are unchanged
    const Tensor<double> v = random_tensor({ 4 }, 3);
    check_equal(transpose(v).value(), v.value());
    CHECK(transpose(Tensor<double>::scalar(2.5)).item() == 2.5);
    // large enough to run in parallel
    const Tensor<float> big = random_tensor<float>({ 300, 257 }, 4);
    check_equal(transpose(big).value(), array_t<float>(xt::transpose(big.value())));
}

TEST_CASE("transpose: a perm that is not a permutation is a ValueError naming op, perm and shape")
{
    const Tensor<double> x = random_tensor({ 2, 3 }, 5);
    const std::string msg = message_of<ValueError>([&] { transpose(x, { 0, 0 }); });
    CHECK(contains(msg, "transpose"));
    CHECK(contains(msg, "(0, 0)"));
    CHECK(contains(msg, "(2, 3)"));
    CHECK_THROWS_AS(transpose(x, { 0 }), ValueError);
    CHECK_THROWS_AS(transpose(x, { 0, 2 }), ValueError);
}

TEST_CASE("reshape: keeps row-major order, infers one -1, and its gradient flows back")
{
    const Tensor<double> x = random_tensor({ 2, 3, 4 }, 6);
    for (const std::vector<long>& s : { std::vector<long>{ 6, 4 },
                                        { -1, 4 },
                                        { 2, -1 },
                                        { 24 },
                                        { -1 },
                                        { 4, 3, 2 },
                                        { 1, 24, 1 },
                                        { 2, 3, 4 } }) {
        CAPTURE(shape_str(s));
        const Tensor<double> y = reshape(x, s);
        CHECK(y.size() == 24);
        check_equal(xt::flatten(y.value()), xt::flatten(x.value()));
        check_gradients([&s](const V& in) { return reshape(in[0], s); }, V{ x });
    }
    CHECK(reshape(x, { -1, 4 }).shape() == shape_t{ 6, 4 });
    CHECK(reshape(x, { 3, -1, 2 }).shape() == shape_t{ 3, 4, 2 });
    CHECK(reshape(Tensor<double>::zeros({ 0, 3 }), { 3, 0 }).shape() == shape_t{ 3, 0 });
}

TEST_CASE("reshape: errors name the op and both shapes")
{
    const Tensor<double> x = random_tensor({ 2, 3 }, 7);
    const std::string msg = message_of<ShapeError>([&] { reshape(x, { 4, -1 }); });
    CHECK(contains(msg, "reshape"));
    CHECK(contains(msg, "(2, 3)"));
    CHECK(contains(msg, "(4, -1)"));
    CHECK(contains(message_of<ShapeError>([&] { reshape(x, { 5 }); }), "(5,)"));
    CHECK(contains(message_of<ValueError>([&] { reshape(x, { -1, -1 }); }), "only one dimension"));
    CHECK_THROWS_AS(reshape(x, { -2, -3 }), ValueError);
    CHECK_THROWS_AS(reshape(x, { 0, -1 }), ShapeError);
}

TEST_CASE("expand_dims and squeeze: shapes for every axis, values, gradients")
{
    const Tensor<double> x = random_tensor({ 2, 3 }, 8);
    const std::vector<std::pair<int, shape_t>> cases = { { 0, { 1, 2, 3 } },  { 1, { 2, 1, 3 } },
                                                         { 2, { 2, 3, 1 } },  { -1, { 2, 3, 1 } },
                                                         { -2, { 2, 1, 3 } }, { -3, { 1, 2, 3 } } };
    for (const auto& c : cases) {
        const int axis = c.first; // not a structured binding: clang 14 cannot capture one
        const shape_t& shape = c.second;
        CAPTURE(axis);
        const Tensor<double> y = expand_dims(x, axis);
        CHECK(y.shape() == shape);
        check_equal(xt::flatten(y.value()), xt::flatten(x.value()));
        check_gradients([axis](const V& in) { return expand_dims(in[0], axis); }, V{ x });
        const Tensor<double> back = squeeze(y, axis);
        CHECK(back.shape() == x.shape());
        check_equal(back.value(), x.value());
        check_gradients([axis](const V& in) { return squeeze(in[0], axis); }, V{ y });
    }
    CHECK(expand_dims(Tensor<double>::scalar(3.0), 0).shape() == shape_t{ 1 });
    CHECK(squeeze(Tensor<double>::zeros({ 1 }), 0).shape() == shape_t{});
}

TEST_CASE("expand_dims and squeeze: errors")
{
    const Tensor<double> x = random_tensor({ 2, 3 }, 9);
    const std::string msg = message_of<ShapeError>([&] { squeeze(x, 1); });
    CHECK(contains(msg, "squeeze"));
    CHECK(contains(msg, "(2, 3)"));
    CHECK(contains(msg, "size 3"));
    CHECK(contains(message_of<ValueError>([&] { squeeze(x, 2); }), "squeeze"));
    CHECK(contains(message_of<ValueError>([&] { expand_dims(x, 3); }), "expand_dims"));
    CHECK_THROWS_AS(expand_dims(x, -4), ValueError);
}

TEST_CASE("concatenate: values along every axis match xt::concatenate")
{
    const Tensor<double> a = random_tensor({ 2, 3, 4 }, 10);
    for (int axis : { 0, 1, 2, -1, -2, -3 }) {
        CAPTURE(axis);
        const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + 3 : axis);
        shape_t sb = a.shape(), sc = a.shape();
        sb[ax] = 2;
        sc[ax] = 1;
        const Tensor<double> b = random_tensor(sb, 11), c = random_tensor(sc, 12);
        const Tensor<double> y = concatenate(V{ a, b, c }, axis);
        check_equal(y.value(),
                    array_t<double>(xt::concatenate(xt::xtuple(a.value(), b.value(), c.value()), ax)));
        check_gradients([axis](const V& in) { return concatenate(in, axis); }, V{ a, b, c });
    }
    // default axis is the last
    const Tensor<double> m = random_tensor({ 2, 2 }, 13);
    CHECK(concatenate(V{ m, m }).shape() == shape_t{ 2, 4 });
    // one input, and an empty piece
    check_equal(concatenate(V{ m }, 0).value(), m.value());
    CHECK(concatenate(V{ m, Tensor<double>::zeros({ 0, 2 }) }, 0).shape() == shape_t{ 2, 2 });
}

TEST_CASE("gradcheck: concatenate of one tensor with itself gets both parts")
{
    const Tensor<double> x = random_tensor({ 3, 2 }, 14);
    check_gradients([](const V& in) { return concatenate(V{ in[0], in[0] }, 0); }, V{ x });
    check_gradients(
        [](const V& in) {
            return concatenate(V{ in[0], in[1], in[0] }, 1);
        },
        V{ x, random_tensor({ 3, 4 }, 15) });
}

TEST_CASE("concatenate: errors name the op, the axis and the shapes")
{
    const Tensor<double> a = random_tensor({ 2, 3 }, 16), b = random_tensor({ 3, 3 }, 17);
    const std::string msg = message_of<ShapeError>([&] { concatenate(V{ a, b }, 1); });
    CHECK(contains(msg, "concatenate"));
    CHECK(contains(msg, "(2, 3)"));
    CHECK(contains(msg, "(3, 3)"));
    CHECK_NOTHROW(concatenate(V{ a, b }, 0));
    CHECK_THROWS_AS(concatenate(V{ a, random_tensor({ 2, 3, 1 }, 18) }, 0), ShapeError);
    CHECK_THROWS_AS(concatenate(V{}, 0), ValueError);
    CHECK_THROWS_AS(concatenate(V{ Tensor<double>::scalar(1.0) }, 0), ShapeError);
    CHECK(contains(message_of<ValueError>([&] { concatenate(V{ a, a }, 2); }), "concatenate"));
}

TEST_CASE("slice: values along every axis match xt::view, gradients, errors")
{
    const Tensor<double> x = random_tensor({ 3, 4, 5 }, 19);
    check_equal(slice(x, 0, 1, 3).value(), array_t<double>(xt::view(x.value(), xt::range(1, 3))));
    check_equal(slice(x, 1, 0, 2).value(), array_t<double>(xt::view(x.value(), xt::all(), xt::range(0, 2))));
    check_equal(slice(x, -1, 2, 5).value(),
                array_t<double>(xt::view(x.value(), xt::all(), xt::all(), xt::range(2, 5))));
    CHECK(slice(x, 2, 3, 3).shape() == shape_t{ 3, 4, 0 });
    for (int axis : { 0, 1, 2, -1 }) {
        CAPTURE(axis);
        check_gradients([axis](const V& in) { return slice(in[0], axis, 1, 3); }, V{ x });
    }
    // two slices of one tensor put back together: the identity, gradient ones
    check_gradients(
        [](const V& in) {
            return concatenate(V{ slice(in[0], 1, 0, 2), slice(in[0], 1, 2, 4) }, 1);
        },
        V{ x });
    const std::string msg = message_of<ValueError>([&] { slice(x, 1, 2, 6); });
    CHECK(contains(msg, "slice"));
    CHECK(contains(msg, "[2, 6)"));
    CHECK(contains(msg, "(3, 4, 5)"));
    CHECK_THROWS_AS(slice(x, 1, 3, 2), ValueError);
    CHECK_THROWS_AS(slice(x, 3, 0, 1), ValueError);
}

TEST_CASE("shape ops in float32")
{
    const Tensor<float> x = random_tensor<float>({ 4, 6 }, 20);
    CHECK(reshape(x, { 3, -1 }).shape() == shape_t{ 3, 8 });
    CHECK(transpose(x).shape() == shape_t{ 6, 4 });
    CHECK(squeeze(expand_dims(x, 1), 1).value() == x.value());
    CHECK(concatenate(std::vector<Tensor<float>>{ slice(x, 0, 0, 2), slice(x, 0, 2, 4) }, 0).value() ==
          x.value());
}
