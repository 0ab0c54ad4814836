// ctest-labels: sanitize
#include "framework/ops.hpp"
#include "framework/tape.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

using namespace xtape;
using xtape::testing::random_tensor;

TEST_CASE("tape: gradient of a product with a value used twice accumulates")
{
    Tensor<double> x(array_t<double>{ 2.0, -3.0 });
    GradientTape<double> tape;
    tape.watch(x);
    // y = sum(x*x + x) -> dy/dx = 2x + 1
    Tensor<double> y = sum(add(mul(x, x), x));
    auto g = tape.gradient(y, { x });
    CHECK(g[0].value()(0) == doctest::Approx(5.0));
    CHECK(g[0].value()(1) == doctest::Approx(-5.0));
}

TEST_CASE("tape: nothing is recorded outside a tape or for unwatched tensors")
{
    Tensor<float> a(array_t<float>{ 1.f, 2.f });
    Tensor<float> b = mul(a, a);
    GradientTape<float> tape;
    Tensor<float> c = mul(b, b);
    CHECK(tape.size() == 0);
    tape.watch(b);
    Tensor<float> d = mul(b, b);
    CHECK(tape.size() == 1);
    (void)c;
    (void)d;
}

TEST_CASE("tape: trainable variables are watched automatically, non-trainable ones are not")
{
    Variable<double> w("w", array_t<double>{ 3.0 }, true);
    Variable<double> s("s", array_t<double>{ 4.0 }, false);
    GradientTape<double> tape;
    Tensor<double> y = sum(mul(w.tensor(), s.tensor()));
    auto g = tape.gradient(y, std::vector<Tensor<double>>{ w.tensor(), s.tensor() });
    CHECK(g[0].item() == doctest::Approx(4.0));
    CHECK(g[1].item() == doctest::Approx(3.0)); // s was an input of a recorded op
}

TEST_CASE("tape: ops on non-trainable variables alone are not recorded; unconnected sources get zeros")
{
    Variable<double> w("w", array_t<double>{ 3.0 }, true);
    Variable<double> s("s", array_t<double>{ 4.0 }, false);
    GradientTape<double> tape;
    Tensor<double> t = mul(s.tensor(), s.tensor());
    CHECK(tape.size() == 0);
    Tensor<double> y = sum(mul(w.tensor(), w.tensor()));
    auto g = tape.gradient(y, std::vector<Tensor<double>>{ w.tensor(), t });
    CHECK(g[0].item() == doctest::Approx(6.0));
    CHECK(g[1].item() == doctest::Approx(0.0));
}

TEST_CASE("tape: errors are typed and name the problem")
{
    Tensor<double> x(array_t<double>{ 1.0 });
    {
        GradientTape<double> tape;
        Tensor<double> y = mul(x, x); // x not watched: nothing recorded
        CHECK_THROWS_AS(tape.gradient(y, { x }), RuntimeError);
    }
    {
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> y = mul(x, x);
        tape.gradient(y, { x });
        CHECK_THROWS_AS(tape.gradient(y, { x }), RuntimeError); // non-persistent: second call
    }
    {
        GradientTape<double> tape(true);
        tape.watch(x);
        Tensor<double> y = mul(x, x);
        CHECK(tape.gradient(y, { x })[0].item() == doctest::Approx(2.0));
        CHECK(tape.gradient(y, { x })[0].item() == doctest::Approx(2.0));
    }
    Tensor<double> a = Tensor<double>::zeros({ 2, 3 }), b = Tensor<double>::zeros({ 4 });
    CHECK_THROWS_AS(add(a, b), ShapeError);
    try {
        add(a, b);
    } catch (const ShapeError& e) {
        CHECK(std::string(e.what()).find("(2, 3)") != std::string::npos);
        CHECK(std::string(e.what()).find("add") != std::string::npos);
    }
}

TEST_CASE("tape: no-grad guard stops recording")
{
    Tensor<double> x(array_t<double>{ 1.0 });
    GradientTape<double> tape;
    tape.watch(x);
    {
        NoGradGuard guard;
        mul(x, x);
    }
    CHECK(tape.size() == 0);
}

namespace {

/// y = k * a + b (b optional), recorded with a first-aware backward that logs the flags it got and
/// honours them: it assigns when told the slot is fresh and adds otherwise.
struct Probe {
    std::vector<std::vector<bool>> calls;
    Tensor<double> operator()(const Tensor<double>& a, const Tensor<double>& b, double k)
    {
        array_t<double> v = a.value() * k;
        if (b.defined())
            v += b.value();
        Tensor<double> y(std::move(v));
        std::vector<Tensor<double>> inputs{ a };
        if (b.defined())
            inputs.push_back(b);
        record_op<double>("probe", inputs, y,
                          FirstAwareBackwardFn<double>([this, k](const array_t<double>& dy,
                                                                 const std::vector<array_t<double>*>& dx,
                                                                 const std::vector<bool>& first) {
                              calls.push_back(first);
                              for (std::size_t i = 0; i < dx.size(); ++i) {
                                  if (!dx[i])
                                      continue;
                                  const double f = i == 0 ? k : 1.0;
                                  for (std::size_t e = 0; e < dy.size(); ++e)
                                      dx[i]->data()[e] = (first[i] ? 0.0 : dx[i]->data()[e]) + f * dy.data()[e];
                              }
                          }));
        return y;
    }
};

} // namespace

TEST_CASE("tape: a first-aware backward overwrites only a first, unshared contribution")
{
    const Tensor<double> x(array_t<double>{ 2.0, -3.0 });
    SUBCASE("alone: the slot is fresh")
    {
        Probe probe;
        GradientTape<double> tape;
        tape.watch(x);
        auto g = tape.gradient(sum(probe(x, {}, 3.0)), { x });
        REQUIRE(probe.calls.size() == 1);
        CHECK(probe.calls[0] == std::vector<bool>{ true });
        CHECK(g[0].value() == array_t<double>{ 3.0, 3.0 });
    }
    SUBCASE("used twice, the first-aware op walked first: it writes, the other adds")
    {
        Probe probe;
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> a = mul(x, x);     // recorded first, so walked last: adds 2x
        Tensor<double> b = probe(x, {}, 3.0); // walked first: writes 3
        auto g = tape.gradient(sum(add(a, b)), { x });
        CHECK(probe.calls.at(0) == std::vector<bool>{ true });
        CHECK(g[0].value() == array_t<double>{ 7.0, -3.0 });
    }
    SUBCASE("used twice, the first-aware op walked last: the slot exists, it adds")
    {
        Probe probe;
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> b = probe(x, {}, 3.0);
        Tensor<double> a = mul(x, x);
        auto g = tape.gradient(sum(add(a, b)), { x });
        CHECK(probe.calls.at(0) == std::vector<bool>{ false });
        CHECK(g[0].value() == array_t<double>{ 7.0, -3.0 });
    }
    SUBCASE("two first-aware uses of the same tensor: only the first one walked writes")
    {
        Probe probe;
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> a = probe(x, {}, 2.0);
        Tensor<double> b = probe(x, {}, 5.0);
        auto g = tape.gradient(sum(add(a, b)), { x });
        REQUIRE(probe.calls.size() == 2);
        CHECK(probe.calls[0] == std::vector<bool>{ true });  // b's record, walked first
        CHECK(probe.calls[1] == std::vector<bool>{ false }); // a's record adds
        CHECK(g[0].value() == array_t<double>{ 7.0, 7.0 });
    }
    SUBCASE("the same tensor twice among one record's inputs: both slots share a zeroed array")
    {
        Probe probe;
        GradientTape<double> tape;
        tape.watch(x);
        auto g = tape.gradient(sum(probe(x, x, 4.0)), { x });
        CHECK(probe.calls.at(0) == (std::vector<bool>{ false, false }));
        CHECK(g[0].value() == array_t<double>{ 5.0, 5.0 });
    }
    SUBCASE("an intermediate tensor used twice")
    {
        Probe probe;
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> h = probe(x, {}, 2.0);
        Tensor<double> y = add(probe(h, {}, 3.0), mul(h, h)); // dy/dh = 3 + 2h, h = 2x
        auto g = tape.gradient(sum(y), { x });
        CHECK(g[0].value() == array_t<double>{ 2.0 * (3.0 + 8.0), 2.0 * (3.0 - 12.0) });
    }
}

TEST_CASE("tape: a given output gradient is read in place and not modified; nested tapes both record")
{
    const Tensor<double> x(array_t<double>{ 1.0, 2.0, 3.0 });
    const Tensor<double> dy(array_t<double>{ 0.5, -1.0, 2.0 });
    GradientTape<double> outer;
    outer.watch(x);
    GradientTape<double> middle; // tracks nothing: records nothing
    GradientTape<double> inner;
    inner.watch(x);
    Tensor<double> y = relu(mul(x, x));
    CHECK(outer.size() == 2);
    CHECK(middle.size() == 0);
    CHECK(inner.size() == 2);
    auto gi = inner.gradient(y, { x }, dy);
    CHECK(gi[0].value() == array_t<double>{ 1.0, -4.0, 12.0 });
    CHECK(dy.value() == array_t<double>{ 0.5, -1.0, 2.0 });
    // The target as a source gets a copy of the output gradient, not the caller's array.
    auto go = outer.gradient(y, { y, x }, dy);
    CHECK(go[0].value() == dy.value());
    CHECK(go[0].data() != dy.data());
    CHECK(go[1].value() == array_t<double>{ 1.0, -4.0, 12.0 });
}

TEST_CASE("ops: broadcasting forward values")
{
    Tensor<float> a(array_t<float>{ { 1.f, 2.f, 3.f }, { 4.f, 5.f, 6.f } });
    Tensor<float> b(array_t<float>{ 10.f, 20.f, 30.f });
    Tensor<float> c = add(a, b);
    CHECK(c.value()(1, 2) == 36.f);
    array_t<float> colv = array_t<float>::from_shape({ 2, 1 });
    colv(0, 0) = 1.f;
    colv(1, 0) = 2.f;
    Tensor<float> col(colv);
    CHECK(mul(a, col).value()(1, 0) == 8.f);
    CHECK(sum(a, { 0 }).value()(2) == 9.f);
    CHECK(mean(a, { 1 }, true).shape() == shape_t{ 2, 1 });
    CHECK(max(a, { -1 }).value()(1) == 6.f);
}
