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
