// ctest-labels: sanitize
// Regularizer penalties (values, gradients by hand and by gradcheck), constraint formulas on
// hand-computed cases, and lookup by every Keras name and config form.
#include "framework/constraints.hpp"
#include "framework/regularizers.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace xtape;
using xtape::testing::check_gradients;
using V = std::vector<Tensor<double>>;

namespace {

/// Random values with |x| in [0.2, 1] and mixed signs (|x| has no derivative at 0).
Tensor<double> away_from_zero(const shape_t& shape, unsigned seed)
{
    Tensor<double> t = testing::random_tensor<double>(shape, seed, 0.2, 1.0);
    auto& a = t.mutable_value();
    for (std::size_t i = 0; i < a.size(); i += 2)
        a.data()[i] = -a.data()[i];
    return t;
}

constexpr double eps = 1e-7;

} // namespace

// ---- regularizers -------------------------------------------------------------------------------

TEST_CASE("regularizers: penalty values")
{
    Tensor<double> w(array_t<double>{ { 1, -2 }, { 3, -4 } }); // sum |w| = 10, sum w^2 = 30
    CHECK((L1<double>(0.1))(w).item() == doctest::Approx(1.0));
    CHECK((L2<double>(0.1))(w).item() == doctest::Approx(3.0));
    CHECK((L1L2<double>(0.1, 0.01))(w).item() == doctest::Approx(1.3));
    CHECK(L1L2<double>{}(w).item() == 0.0);
    CHECK(L1<double>{}(w).item() == doctest::Approx(0.1)); // default 0.01
    CHECK(L2<float>{}(Tensor<float>(array_t<float>{ 1, -2 })).item() == doctest::Approx(0.05));
    // Keras's docstring example: L2(2.0) on ones(5, 5) is 50.
    CHECK((L2<double>(2.0))(Tensor<double>::full({ 5, 5 }, 1.0)).item() == doctest::Approx(50.0));
    CHECK_THROWS_AS(L1<double>(-0.1), ValueError);
    CHECK_THROWS_AS(L2<double>(std::nan("")), ValueError);
}

TEST_CASE("regularizers: gradient l1 sign(w) + 2 l2 w on the tape")
{
    Variable<double> w("w", array_t<double>{ 1.5, -2.0, 0.5 });
    GradientTape<double> tape;
    Tensor<double> p = L1L2<double>(0.1, 0.01)(w.tensor());
    auto g = tape.gradient(p, { w.tensor() });
    CHECK(g[0].value()(0) == doctest::Approx(0.1 + 0.02 * 1.5));
    CHECK(g[0].value()(1) == doctest::Approx(-0.1 + 0.02 * -2.0));
    CHECK(g[0].value()(2) == doctest::Approx(0.1 + 0.02 * 0.5));
}

TEST_CASE("regularizers: gradcheck")
{
    Tensor<double> w = away_from_zero({ 3, 4 }, 1);
    check_gradients([](const V& in) { return L1<double>(0.3)(in[0]); }, V{ w });
    check_gradients([](const V& in) { return L2<double>(0.7)(in[0]); }, V{ w });
    check_gradients([](const V& in) { return L1L2<double>(0.2, 0.5)(in[0]); }, V{ w });
    check_gradients([](const V& in) { return L1L2<double>(0.0, 0.5)(in[0]); }, V{ w });
}

TEST_CASE("get_regularizer: names, shortcut defaults and every config form")
{
    auto l1 = get_regularizer<double>("l1");
    CHECK(l1->class_name() == "L1");
    CHECK(l1->get_config() == json{ { "l1", 0.01 } });
    CHECK(get_regularizer<double>("l2")->get_config() == json{ { "l2", 0.01 } });
    // The string "l1_l2" is Keras's shortcut l1_l2(l1=0.01, l2=0.01); the class defaults to zeros.
    CHECK(get_regularizer<double>("l1_l2")->get_config() == json{ { "l1", 0.01 }, { "l2", 0.01 } });
    CHECK(get_regularizer<double>("L1L2")->get_config() == json{ { "l1", 0.0 }, { "l2", 0.0 } });
    // Keras 2
    auto k2 = get_regularizer<double>(json::parse(R"({"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.02}})"));
    CHECK(k2->class_name() == "L1L2");
    CHECK(dynamic_cast<const L1L2<double>&>(*k2).l2() == 0.02);
    // Keras 3
    auto k3 = get_regularizer<double>(json::parse(
        R"({"module": "keras.regularizers", "class_name": "L2", "config": {"l2": 0.001}, "registered_name": null})"));
    CHECK(k3->get_config() == json{ { "l2", 0.001 } });
    // Keras 1 layer configs: {"name": "L1L2Regularizer", "l1": ..., "l2": ...}
    auto k1 = get_regularizer<double>(json::parse(R"({"l2": 0.01, "name": "L1L2Regularizer", "l1": 0.0})"));
    CHECK(k1->get_config() == json{ { "l1", 0.0 }, { "l2", 0.01 } });
    // Keras 1.0/1.1 wrote every regularizer as WeightRegularizer / ActivityRegularizer.
    auto w1 = get_regularizer<double>(json::parse(R"({"name": "WeightRegularizer", "l1": 0.25, "l2": 0.5})"));
    REQUIRE(w1);
    CHECK(w1->class_name() == "L1L2");
    CHECK(w1->get_config() == json{ { "l1", 0.25 }, { "l2", 0.5 } });
    Tensor<double> w(array_t<double>{ { 1, -2 }, { 3, -4 } }); // sum |w| = 10, sum w^2 = 30
    CHECK((*w1)(w).item() == doctest::Approx(0.25 * 10 + 0.5 * 30));
    auto a1 = get_regularizer<double>(json::parse(R"({"name": "ActivityRegularizer", "l2": 0.01})"));
    REQUIRE(a1);
    CHECK(a1->get_config() == json{ { "l1", 0.0 }, { "l2", 0.01 } });
    CHECK_THROWS_AS(get_regularizer<double>(json::parse(R"({"name": "WeightRegularizer", "l1": -1})")), ValueError);

    CHECK(get_regularizer<double>(json(nullptr)) == nullptr);
    try {
        get_regularizer<double>("l3");
        FAIL("expected KeyError");
    } catch (const KeyError& e) {
        CHECK(std::string(e.what()).find("l3") != std::string::npos);
    }
    CHECK_THROWS_AS(get_regularizer<double>("OrthogonalRegularizer"), NotImplementedError);
    CHECK_THROWS_AS(get_regularizer<double>(json::parse(R"({"class_name": "L1", "config": {"l1": -1}})")), ValueError);

    for (const auto& r : { get_regularizer<double>("l1"), get_regularizer<double>("l2"), get_regularizer<double>("l1_l2") }) {
        json j = serialize(r);
        CHECK(j["module"] == "keras.regularizers");
        auto back = get_regularizer<double>(j);
        CHECK(back->class_name() == r->class_name());
        CHECK(back->get_config() == r->get_config());
    }
}

// ---- constraints --------------------------------------------------------------------------------

TEST_CASE("NonNeg")
{
    array_t<double> w{ -1, 2, -3, 0 };
    NonNeg<double>().apply(w);
    CHECK(w == array_t<double>{ 0, 2, 0, 0 });
}

TEST_CASE("MaxNorm, UnitNorm, MinMaxNorm on a hand-computed kernel")
{
    // Columns (axis 0 norms): [3, 4] has norm 5, [0, 1] has norm 1.
    const array_t<double> k{ { 3, 0 }, { 4, 1 } };
    SUBCASE("MaxNorm(2): the long column is scaled to norm 2, the short one kept")
    {
        array_t<double> w = k;
        MaxNorm<double>(2.0).apply(w);
        const double s0 = 2.0 / (eps + 5.0), s1 = 1.0 / (eps + 1.0);
        CHECK(w(0, 0) == doctest::Approx(3 * s0).epsilon(1e-15));
        CHECK(w(1, 0) == doctest::Approx(4 * s0).epsilon(1e-15));
        CHECK(w(1, 1) == doctest::Approx(1 * s1).epsilon(1e-15));
        CHECK(w(1, 1) != 1.0); // Keras divides by eps + norm even inside the bound
    }
    SUBCASE("UnitNorm: w / (eps + norm)")
    {
        array_t<double> w = k;
        UnitNorm<double>().apply(w);
        CHECK(w(0, 0) == doctest::Approx(3.0 / (5.0 + eps)).epsilon(1e-15));
        CHECK(w(1, 0) == doctest::Approx(4.0 / (5.0 + eps)).epsilon(1e-15));
        CHECK(w(1, 1) == doctest::Approx(1.0 / (1.0 + eps)).epsilon(1e-15));
    }
    SUBCASE("MinMaxNorm(2, 3, rate 0.5): desired = 0.5 clip(n, 2, 3) + 0.5 n")
    {
        array_t<double> w = k;
        MinMaxNorm<double>(2.0, 3.0, 0.5).apply(w);
        const double s0 = (0.5 * 3 + 0.5 * 5) / (eps + 5.0); // 4 / 5
        const double s1 = (0.5 * 2 + 0.5 * 1) / (eps + 1.0); // 1.5 / 1
        CHECK(w(0, 0) == doctest::Approx(3 * s0).epsilon(1e-15));
        CHECK(w(1, 0) == doctest::Approx(4 * s0).epsilon(1e-15));
        CHECK(w(1, 1) == doctest::Approx(1 * s1).epsilon(1e-15));
        CHECK(w(0, 1) == 0.0);
    }
    SUBCASE("axis 1 (rows), negative axis and all axes")
    {
        array_t<double> w = k;
        UnitNorm<double>(1).apply(w); // rows: [3, 0] norm 3, [4, 1] norm sqrt(17)
        CHECK(w(0, 0) == doctest::Approx(3.0 / (3.0 + eps)));
        CHECK(w(1, 0) == doctest::Approx(4.0 / (std::sqrt(17.0) + eps)));
        array_t<double> w2 = k;
        UnitNorm<double>(-1).apply(w2);
        CHECK(w2 == w);
        array_t<double> w3 = k;
        MaxNorm<double>(1.0, { 0, 1 }).apply(w3); // norm sqrt(26) over everything
        CHECK(w3(1, 0) == doctest::Approx(4.0 / (std::sqrt(26.0) + eps)));
    }
}

TEST_CASE("MaxNorm on a conv kernel with axis [0, 1, 2] constrains each filter")
{
    array_t<float> w = array_t<float>::from_shape({ 2, 2, 3, 2 });
    for (std::size_t i = 0; i < w.size(); ++i)
        w.data()[i] = (i % 2 == 0) ? 1.0f : 0.1f; // filter 0: twelve 1s (norm sqrt 12), filter 1: twelve 0.1s
    MaxNorm<float>(2.0, { 0, 1, 2 }).apply(w);
    const float n0 = std::sqrt(12.0f), n1 = std::sqrt(0.12f);
    for (std::size_t i = 0; i < w.size(); i += 2) {
        CHECK(w.data()[i] == doctest::Approx(2.0f / n0));
        CHECK(w.data()[i + 1] == doctest::Approx(0.1f * n1 / (n1 + float(eps))));
    }
    CHECK_THROWS_AS(MaxNorm<float>(2.0, 4).apply(w), ValueError); // axis out of range
    CHECK_THROWS_AS(MaxNorm<float>(2.0, "x"), ValueError);
}

TEST_CASE("Variable::apply_constraint uses the attached constraint")
{
    Variable<double> v("kernel", array_t<double>{ { 3, 0 }, { 4, 1 } });
    v.apply_constraint(); // none attached: unchanged
    CHECK(v.value()(1, 0) == 4.0);
    v.set_constraint(get_constraint<double>("unit_norm"));
    v.apply_constraint();
    CHECK(v.value()(1, 0) == doctest::Approx(0.8));
}

TEST_CASE("get_constraint: names and every config form")
{
    const std::vector<std::pair<std::string, std::string>> names = {
        { "non_neg", "NonNeg" },         { "NonNeg", "NonNeg" },         { "nonneg", "NonNeg" },
        { "max_norm", "MaxNorm" },       { "MaxNorm", "MaxNorm" },       { "maxnorm", "MaxNorm" },
        { "min_max_norm", "MinMaxNorm" }, { "MinMaxNorm", "MinMaxNorm" }, { "unit_norm", "UnitNorm" },
        { "UnitNorm", "UnitNorm" },      { "unitnorm", "UnitNorm" },
    };
    for (const auto& entry : names) {
        const auto& name = entry.first; // not a structured binding: clang 14 cannot capture one
        const auto& cls = entry.second;
        CAPTURE(name);
        CHECK(get_constraint<float>(name)->class_name() == cls);
    }
    CHECK(get_constraint<float>("max_norm")->get_config() == json{ { "max_value", 2.0 }, { "axis", 0 } });
    CHECK(get_constraint<float>("min_max_norm")->get_config() ==
          json{ { "min_value", 0.0 }, { "max_value", 1.0 }, { "rate", 1.0 }, { "axis", 0 } });
    CHECK(get_constraint<float>("unit_norm")->get_config() == json{ { "axis", 0 } });
    CHECK(get_constraint<float>("non_neg")->get_config() == json::object());

    // Keras 2 with a list axis (conv kernels)
    auto k2 = get_constraint<float>(
        json::parse(R"({"class_name": "MaxNorm", "config": {"max_value": 3, "axis": [0, 1, 2]}})"));
    CHECK(k2->get_config() == json{ { "max_value", 3.0 }, { "axis", { 0, 1, 2 } } });
    // Keras 3
    auto k3 = get_constraint<float>(json::parse(
        R"({"module": "keras.constraints", "class_name": "UnitNorm", "config": {"axis": 1}, "registered_name": null})"));
    CHECK(k3->get_config() == json{ { "axis", 1 } });
    // Keras 1: {"name": "MaxNorm", "m": 4, "axis": 0}
    auto k1 = get_constraint<float>(json::parse(R"({"name": "MaxNorm", "m": 4, "axis": 0})"));
    CHECK(k1->get_config() == json{ { "max_value", 4.0 }, { "axis", 0 } });

    CHECK(get_constraint<float>(json(nullptr)) == nullptr);
    try {
        get_constraint<float>("max_normal");
        FAIL("expected KeyError");
    } catch (const KeyError& e) {
        CHECK(std::string(e.what()).find("max_normal") != std::string::npos);
    }
    for (const auto& c : { get_constraint<double>("non_neg"), get_constraint<double>("max_norm"),
                           get_constraint<double>("min_max_norm"), ConstraintPtr<double>(std::make_shared<UnitNorm<double>>(json{ 0, 1 })) }) {
        json j = serialize(c);
        CHECK(j["module"] == "keras.constraints");
        auto back = get_constraint<double>(j);
        CHECK(back->class_name() == c->class_name());
        CHECK(back->get_config() == c->get_config());
    }
}
