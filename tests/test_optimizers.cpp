// ctest-labels: sanitize
// Optimizers against hand-computed steps of Keras 3's formulas (keras/src/optimizers/*.py),
// clipping, weight decay, schedules, state and slots, and lookup by name and config.
//
// Unless a test says otherwise: w0 = [1, 2], lr = 0.1, and the gradients of steps 1, 2, 3 are
// g1 = [0.5, -1], g2 = [0.1, 0.2], g3 = [-0.3, 0.4]. Expected values after step 1 are derived in
// the comments; later steps apply the same formula again (numbers computed in double precision).
#include "framework/initializer.hpp"
#include "framework/constraints.hpp"
#include "optim/registry.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>

using namespace xtape;

namespace {

const std::vector<std::vector<double>> grads3 = { { 0.5, -1.0 }, { 0.1, 0.2 }, { -0.3, 0.4 } };

Variable<double> make_var(std::vector<double> v, const std::string& name = "w")
{
    array_t<double> a = array_t<double>::from_shape({ v.size() });
    std::copy(v.begin(), v.end(), a.begin());
    return Variable<double>(name, a);
}

Tensor<double> tensor(std::vector<double> v)
{
    array_t<double> a = array_t<double>::from_shape({ v.size() });
    std::copy(v.begin(), v.end(), a.begin());
    return Tensor<double>(a);
}

/// Runs the three standard steps and checks w after each against `expected` (one row per step).
void check_steps(Optimizer<double>& opt, const std::vector<std::vector<double>>& expected,
                 const std::vector<std::vector<double>>& grads = grads3, double tol = 1e-12)
{
    Variable<double> w = make_var({ 1.0, 2.0 });
    for (std::size_t s = 0; s < expected.size(); ++s) {
        CAPTURE(s + 1);
        opt.apply_gradients({ tensor(grads[s]) }, { w });
        CHECK(opt.iterations() == static_cast<std::int64_t>(s + 1));
        for (std::size_t i = 0; i < 2; ++i)
            CHECK(w.value()(i) == doctest::Approx(expected[s][i]).epsilon(tol));
    }
}

} // namespace

// ---- update formulas ------------------------------------------------------------------------

TEST_CASE("SGD: plain, momentum and nesterov steps")
{
    SUBCASE("plain: w -= lr * g")
    {
        SGD<double> opt(0.1);
        // step 1: [1 - 0.05, 2 + 0.1]
        check_steps(opt, { { 0.95, 2.1 }, { 0.94, 2.08 }, { 0.97, 2.04 } });
        CHECK(opt.variables().size() == 1); // only the iteration count: no momentum slot
    }
    SUBCASE("momentum 0.9: m = 0.9 m - lr g; w += m")
    {
        SGD<double> opt(0.1, 0.9);
        // step 1: m = [-0.05, 0.1], w = [0.95, 2.1]
        // step 2: m = [-0.045 - 0.01, 0.09 - 0.02] = [-0.055, 0.07], w = [0.895, 2.17]
        // step 3: m = [-0.0495 + 0.03, 0.063 - 0.04] = [-0.0195, 0.023], w = [0.8755, 2.193]
        check_steps(opt, { { 0.95, 2.1 }, { 0.895, 2.17 }, { 0.8755, 2.193 } });
    }
    SUBCASE("nesterov: w += 0.9 m - lr g")
    {
        SGD<double> opt(0.1, 0.9, true);
        // step 1: m = [-0.05, 0.1]; w += [-0.045 - 0.05, 0.09 + 0.1] -> [0.905, 2.19]
        // step 2: m = [-0.055, 0.07]; w += [-0.0495 - 0.01, 0.063 - 0.02] -> [0.8455, 2.233]
        // step 3: m = [-0.0195, 0.023]; w += [-0.01755 + 0.03, 0.0207 - 0.04] -> [0.85795, 2.2137]
        check_steps(opt, { { 0.905, 2.19 }, { 0.8455, 2.233 }, { 0.85795, 2.2137 } });
    }
    CHECK_THROWS_AS(SGD<double>(0.1, 1.5), ValueError);
    CHECK_THROWS_AS(SGD<double>(0.1, -0.1), ValueError);
}

TEST_CASE("Adam: three steps, and amsgrad keeps the largest velocity")
{
    SUBCASE("adam")
    {
        Adam<double> opt(0.1);
        // step 1: m = 0.1 g1 = [0.05, -0.1]; v = 0.001 g1^2 = [0.00025, 0.001];
        //         alpha = 0.1 sqrt(1 - 0.999) / (1 - 0.9) = sqrt(0.001) = 0.0316227766...;
        //         w0 - m alpha / (sqrt(v) + 1e-7) = 1 - 0.00158113883 / 0.0158114883 = 0.90000063245...
        check_steps(opt, { { 0.9000006324515321, 2.099999683773234 },
                           { 0.819697032869824, 2.151102132953362 },
                           { 0.7986258503439517, 2.164526054163539 } });
    }
    // A zero gradient at step 2 makes v shrink (v2 = 0.999 v1) while v_hat keeps v1.
    const std::vector<std::vector<double>> g = { { 0.5, -1.0 }, { 0.0, 0.0 }, { 0.1, 0.2 } };
    SUBCASE("amsgrad")
    {
        Adam<double> opt(0.1, 0.9, 0.999, 1e-7, true);
        check_steps(opt,
                    { { 0.9000006324515321, 2.099999683773234 },
                      { 0.8330287418979304, 2.166971786109879 },
                      { 0.7697010083957316, 2.2052193478302216 } },
                    g);
        CHECK(opt.variables().size() == 4); // iteration, momentum, velocity, velocity_hat
    }
    SUBCASE("the same gradients without amsgrad differ")
    {
        Adam<double> opt(0.1);
        check_steps(opt,
                    { { 0.9000006324515321, 2.099999683773234 },
                      { 0.832995231029295, 2.1670052971905087 },
                      { 0.7696674975270962, 2.205252858910851 } },
                    g);
    }
}

TEST_CASE("AdamW: decoupled weight decay before the Adam step")
{
    AdamW<double> opt(0.1, 0.1);
    // step 1: w *= 1 - 0.1 * 0.1 -> [0.99, 1.98], then the Adam step of the test above
    //         (-0.0999993675, +0.0999996838) -> [0.8900006325, 2.0799996838]
    check_steps(opt, { { 0.890000632451532, 2.079999683773234 },
                       { 0.8007970265453086, 2.11030213611563 },
                       { 0.7717178737539833, 2.1026230359646503 } });
    CHECK(AdamW<double>().weight_decay() == doctest::Approx(0.004));
    CHECK(AdamW<double>().name() == "adamw");
}

TEST_CASE("RMSprop: plain, momentum, centered, both")
{
    SUBCASE("plain")
    {
        RMSprop<double> opt(0.1);
        // step 1: v = 0.1 * 0.25 = 0.025; w = 1 - 0.1 * 0.5 / sqrt(0.025 + 1e-7) = 1 - 0.31622713...
        check_steps(opt, { { 0.6837728664367966, 2.3162276079030737 },
                           { 0.6185401979242164, 2.2509948352960034 },
                           { 0.791313596517677, 2.124881565752653 } });
    }
    SUBCASE("momentum 0.5")
    {
        RMSprop<double> opt(0.1, 0.9, 0.5);
        check_steps(opt, { { 0.6837728664367966, 2.3162276079030737 },
                           { 0.46042663114261473, 2.4091086392475405 },
                           { 0.5215269120889843, 2.3294358853764234 } });
    }
    SUBCASE("centered")
    {
        RMSprop<double> opt(0.1, 0.9, 0.0, 1e-7, true);
        // step 1: a = 0.1 g = 0.05; d = 0.025 - 0.0025 + 1e-7; w = 1 - 0.05 / sqrt(0.0225001) = 0.66666741
        check_steps(opt, { { 0.6666674074049382, 2.3333331481483026 },
                           { 0.596781922283794, 2.266330664730609 },
                           { 0.7706552361768647, 2.1398845019474337 } });
    }
    SUBCASE("momentum and centered: slots in Keras's order")
    {
        RMSprop<double> opt(0.1, 0.9, 0.5, 1e-7, true);
        check_steps(opt, { { 0.6666674074049382, 2.3333331481483026 },
                           { 0.4301156259862631, 2.4329972388047603 },
                           { 0.48571304916999625, 2.356383121349814 } });
        auto vars = opt.variables();
        REQUIRE(vars.size() == 4);
        CHECK(vars[1].name() == "rmsprop/w_velocity");
        CHECK(vars[2].name() == "rmsprop/w_momentum");
        CHECK(vars[3].name() == "rmsprop/w_average_gradient");
    }
}

TEST_CASE("Adagrad: accumulator starts at initial_accumulator_value")
{
    Adagrad<double> opt(0.1);
    // step 1: acc = 0.1 + 0.25 = 0.35; w = 1 - 0.1 * 0.5 / sqrt(0.3500001) = 0.91548458...
    check_steps(opt, { { 0.9154845866007779, 2.0953462545906385 },
                       { 0.8988179222489255, 2.076614539180571 },
                       { 0.9435392768298823, 2.04153221975761 } });
    CHECK(opt.variables()[1].value()(0) == doctest::Approx(0.1 + 0.25 + 0.01 + 0.09));
}

TEST_CASE("Nadam: u_product and the three steps")
{
    Nadam<double> opt(0.1);
    Variable<double> w = make_var({ 1.0, 2.0 });
    // u_product after step t: 0.9 (1 - 0.5 * 0.96^1) = 0.468; then * 0.9 (1 - 0.5 * 0.96^2); ...
    const std::vector<std::vector<double>> expected = { { 0.8937212409248747, 2.106278769703 },
                                                        { 0.8666038573274288, 2.093303606397598 },
                                                        { 0.9128525732974374, 2.0597355642335016 } };
    const std::vector<double> u_product = { 0.468, 0.22711104000000004, 0.11397994511155204 };
    for (std::size_t s = 0; s < 3; ++s) {
        CAPTURE(s);
        opt.apply_gradients({ tensor(grads3[s]) }, { w });
        CHECK(w.value()(0) == doctest::Approx(expected[s][0]).epsilon(1e-12));
        CHECK(w.value()(1) == doctest::Approx(expected[s][1]).epsilon(1e-12));
        auto vars = opt.variables();
        REQUIRE(vars.size() == 4);
        CHECK(vars.back().name() == "nadam/u_product");
        CHECK(vars.back().value()() == doctest::Approx(u_product[s]).epsilon(1e-14));
    }
}

TEST_CASE("float optimizers follow the double ones")
{
    Adam<float> af(0.1);
    Adam<double> ad(0.1);
    Variable<float> wf("w", array_t<float>{ 1.0f, 2.0f });
    Variable<double> wd = make_var({ 1.0, 2.0 });
    for (const auto& g : grads3) {
        af.apply_gradients({ Tensor<float>(array_t<float>{ float(g[0]), float(g[1]) }) }, { wf });
        ad.apply_gradients({ tensor(g) }, { wd });
    }
    CHECK(wf.value()(0) == doctest::Approx(wd.value()(0)).epsilon(1e-6));
    CHECK(wf.value()(1) == doctest::Approx(wd.value()(1)).epsilon(1e-6));
}

TEST_CASE("a large variable (threaded kernels) gets the same update as a small one, element by element")
{
    const std::size_t n = 200000; // above parallel_threshold
    Tensor<double> big_w = testing::random_tensor<double>({ n }, 11);
    Tensor<double> big_g = testing::random_tensor<double>({ n }, 12);
    std::vector<OptimizerPtr<double>> big = { std::make_shared<Adam<double>>(0.1), std::make_shared<Nadam<double>>(0.1),
                                              std::make_shared<RMSprop<double>>(0.1, 0.9, 0.5, 1e-7, true),
                                              std::make_shared<SGD<double>>(0.1, 0.9, true),
                                              std::make_shared<Adagrad<double>>(0.1) };
    for (auto& opt : big) {
        CAPTURE(opt->class_name());
        Variable<double> w("w", big_w.value());
        OptimizerPtr<double> small = get_optimizer<double>(serialize_optimizer(*opt));
        std::vector<Variable<double>> ws;
        const std::vector<std::size_t> probe = { 0, 1, 77777, n - 1 };
        for (std::size_t i : probe)
            ws.push_back(make_var({ big_w.value()(i) }, "w" + std::to_string(i)));
        for (int step = 0; step < 2; ++step) {
            opt->apply_gradients({ big_g }, { w });
            std::vector<Tensor<double>> gs;
            for (std::size_t i : probe)
                gs.push_back(tensor({ big_g.value()(i) }));
            small->apply_gradients(gs, ws);
        }
        for (std::size_t k = 0; k < probe.size(); ++k)
            CHECK(w.value()(probe[k]) == ws[k].value()(0));
    }
}

// ---- the shared base --------------------------------------------------------------------------

TEST_CASE("clipnorm clips each gradient to its own norm")
{
    SGD<double> opt(1.0);
    opt.set_clipnorm(1.0);
    Variable<double> a = make_var({ 0.0, 0.0 }, "a"), b = make_var({ 0.0, 0.0 }, "b");
    // |[3, 4]| = 5 -> [0.6, 0.8]; |[0.3, 0.4]| = 0.5 <= 1 passes unchanged.
    opt.apply_gradients({ tensor({ 3, 4 }), tensor({ 0.3, 0.4 }) }, { a, b });
    CHECK(a.value()(0) == doctest::Approx(-0.6));
    CHECK(a.value()(1) == doctest::Approx(-0.8));
    CHECK(b.value()(0) == doctest::Approx(-0.3));
    CHECK(b.value()(1) == doctest::Approx(-0.4));
}

TEST_CASE("global_clipnorm scales all gradients by one factor")
{
    SGD<double> opt(1.0);
    opt.set_global_clipnorm(1.0);
    Variable<double> a = make_var({ 0.0 }, "a"), b = make_var({ 0.0 }, "b");
    // global norm sqrt(3^2 + 4^2) = 5 -> both scaled by 1/5.
    opt.apply_gradients({ tensor({ 3 }), tensor({ 4 }) }, { a, b });
    CHECK(a.value()(0) == doctest::Approx(-0.6));
    CHECK(b.value()(0) == doctest::Approx(-0.8));
    // within the norm: unchanged
    opt.apply_gradients({ tensor({ 0.3 }), tensor({ 0.4 }) }, { a, b });
    CHECK(a.value()(0) == doctest::Approx(-0.9));
    CHECK(b.value()(0) == doctest::Approx(-1.2));
}

TEST_CASE("clipvalue clips elementwise, and the raw gradient is left alone")
{
    SGD<double> opt(1.0);
    opt.set_clipvalue(0.5);
    Variable<double> a = make_var({ 0.0, 0.0, 0.0 });
    Tensor<double> g = tensor({ 2.0, -3.0, 0.25 });
    opt.apply_gradients({ g }, { a });
    CHECK(a.value()(0) == doctest::Approx(-0.5));
    CHECK(a.value()(1) == doctest::Approx(0.5));
    CHECK(a.value()(2) == doctest::Approx(-0.25));
    CHECK(g.value()(0) == 2.0);
}

TEST_CASE("only one clipping argument may be set")
{
    SGD<double> opt(1.0);
    opt.set_clipnorm(1.0);
    CHECK_THROWS_AS(opt.set_clipvalue(1.0), ValueError);
    CHECK_THROWS_AS(opt.set_global_clipnorm(1.0), ValueError);
    opt.set_clipnorm(std::nullopt);
    CHECK_NOTHROW(opt.set_clipvalue(1.0));
    OptimizerArgs args;
    args.clipnorm = 1.0;
    args.global_clipnorm = 1.0;
    CHECK_THROWS_AS(SGD<double>(0.1, 0.0, false, args), ValueError);
    CHECK_THROWS_AS(get_optimizer<double>(json{ { "class_name", "SGD" }, { "config", { { "clipnorm", 1 }, { "clipvalue", 1 } } } }),
                    ValueError);
}

TEST_CASE("weight_decay in the base applies only when set, before the update")
{
    SGD<double> opt(0.1);
    opt.set_weight_decay(0.5);
    Variable<double> w = make_var({ 1.0, 2.0 });
    // w -= w * 0.5 * 0.1 -> [0.95, 1.9], then w -= 0.1 g -> [0.9, 2.0]
    opt.apply_gradients({ tensor({ 0.5, -1.0 }) }, { w });
    CHECK(w.value()(0) == doctest::Approx(0.9));
    CHECK(w.value()(1) == doctest::Approx(2.0));

    SGD<double> plain(0.1);
    CHECK_FALSE(plain.weight_decay());
    CHECK(plain.get_config()["weight_decay"].is_null());
}

TEST_CASE("exclude_from_weight_decay by handle and by name")
{
    AdamW<double> opt(0.1, 0.5);
    Variable<double> k = make_var({ 1.0 }, "kernel"), b = make_var({ 1.0 }, "bias"), c = make_var({ 1.0 }, "c");
    opt.exclude_from_weight_decay({ c }, { "bias" });
    opt.apply_gradients({ tensor({ 0.0 }), tensor({ 0.0 }), tensor({ 0.0 }) }, { k, b, c });
    // A zero gradient gives a zero Adam step, so only the decay moves w: 1 - 1 * 0.5 * 0.1.
    CHECK(k.value()(0) == doctest::Approx(0.95));
    CHECK(b.value()(0) == 1.0);
    CHECK(c.value()(0) == 1.0);
    CHECK_THROWS_AS(opt.exclude_from_weight_decay({}, { "x" }), ValueError);
}

TEST_CASE("a schedule gives the learning rate at iterations()")
{
    auto sched = std::make_shared<ExponentialDecay>(1.0, 1.0, 0.5);
    SGD<double> opt(sched);
    Variable<double> w = make_var({ 0.0 });
    CHECK(opt.learning_rate() == 1.0);
    opt.apply_gradients({ tensor({ 1.0 }) }, { w }); // lr 1
    CHECK(opt.learning_rate() == 0.5);
    opt.apply_gradients({ tensor({ 1.0 }) }, { w }); // lr 0.5
    opt.apply_gradients({ tensor({ 1.0 }) }, { w }); // lr 0.25
    CHECK(w.value()(0) == doctest::Approx(-1.75));
    CHECK_THROWS_AS(opt.set_learning_rate(0.1), ValueError);
    json cfg = opt.get_config();
    CHECK(cfg["learning_rate"]["class_name"] == "ExponentialDecay");
    CHECK(cfg["learning_rate"]["module"] == "keras.optimizers.schedules");

    SGD<double> constant(0.1);
    constant.set_learning_rate(0.02);
    CHECK(constant.learning_rate() == 0.02);
    CHECK(constant.get_config()["learning_rate"] == 0.02);
}

TEST_CASE("constraints are applied after the update")
{
    SGD<double> opt(1.0);
    Variable<double> w = make_var({ 0.5, 0.5 });
    w.set_constraint(std::make_shared<NonNeg<double>>());
    opt.apply_gradients({ tensor({ 1.0, -1.0 }) }, { w });
    CHECK(w.value()(0) == 0.0); // 0.5 - 1 = -0.5, projected to 0
    CHECK(w.value()(1) == 1.5);
}

TEST_CASE("gradients that do not match their variables are refused before anything changes")
{
    Adam<double> opt(0.1);
    Variable<double> a = make_var({ 1.0, 2.0 }, "dense/kernel");
    Variable<double> b = make_var({ 1.0, 2.0, 3.0 }, "dense/bias");
    try {
        opt.apply_gradients({ tensor({ 1.0, 1.0 }), tensor({ 1.0, 1.0 }) }, { a, b });
        FAIL("expected a ShapeError");
    } catch (const ShapeError& e) {
        const std::string msg = e.what();
        CHECK(msg.find("dense/bias") != std::string::npos);
        CHECK(msg.find("(2,)") != std::string::npos);
        CHECK(msg.find("(3,)") != std::string::npos);
    }
    CHECK(a.value()(0) == 1.0); // the first variable was not updated
    CHECK(opt.iterations() == 0);

    CHECK_THROWS_AS(opt.apply_gradients({ tensor({ 1.0, 1.0 }) }, { a, b }), ValueError); // counts differ
    CHECK_THROWS_AS(opt.apply_gradients({ Tensor<double>(), Tensor<double>() }, { a, b }), ValueError);
    Variable<double> stranger = make_var({ 1.0 }, "stranger");
    CHECK_THROWS_AS(opt.apply_gradients({ tensor({ 1.0 }) }, { stranger }), ValueError);
}

TEST_CASE("undefined gradients are skipped; a subset of the built variables may be updated")
{
    SGD<double> opt(1.0);
    Variable<double> a = make_var({ 1.0 }, "a"), b = make_var({ 1.0 }, "b");
    opt.apply_gradients({ Tensor<double>(), tensor({ 1.0 }) }, { a, b });
    CHECK(a.value()(0) == 1.0);
    CHECK(b.value()(0) == 0.0);
    opt.apply_gradients({ tensor({ 1.0 }) }, { a });
    CHECK(a.value()(0) == 0.0);
    CHECK(opt.iterations() == 2);
}

// ---- state -------------------------------------------------------------------------------------

TEST_CASE("variables(): iteration, then per slot kind per variable, with Keras 3's names")
{
    Adam<double> opt(0.1);
    CHECK(opt.variables().empty());
    Variable<double> k = make_var({ 1, 2 }, "dense/kernel"), b = make_var({ 3 }, "dense/bias");
    opt.apply_gradients({ tensor({ 1, 1 }), tensor({ 1 }) }, { k, b });
    auto vars = opt.variables();
    REQUIRE(vars.size() == 5);
    CHECK(vars[0].name() == "adam/iteration");
    CHECK(vars[0].value()() == 1.0);
    CHECK(vars[1].name() == "adam/dense_kernel_momentum");
    CHECK(vars[2].name() == "adam/dense_bias_momentum");
    CHECK(vars[3].name() == "adam/dense_kernel_velocity");
    CHECK(vars[4].name() == "adam/dense_bias_velocity");
    CHECK(vars[1].shape() == shape_t{ 2 });
    CHECK(vars[2].shape() == shape_t{ 1 });
    for (const auto& v : vars)
        CHECK_FALSE(v.trainable());
    // step 1 with g = 1: m = 0.1, v = 0.001
    CHECK(vars[1].value()(0) == doctest::Approx(0.1));
    CHECK(vars[3].value()(0) == doctest::Approx(0.001));

    SGD<double> sgd(0.1, 0.5);
    sgd.build({ k });
    CHECK(sgd.variables()[1].name() == "SGD/dense_kernel_momentum");
}

TEST_CASE("no allocation after the first step: slots and clip buffers keep their storage")
{
    Adam<double> opt(0.1);
    opt.set_clipvalue(0.1);
    Variable<double> w = make_var({ 1, 2, 3 });
    opt.apply_gradients({ tensor({ 1, 2, 3 }) }, { w });
    std::vector<const double*> before;
    for (const auto& v : opt.variables())
        before.push_back(v.value().data());
    for (int i = 0; i < 5; ++i)
        opt.apply_gradients({ tensor({ 1, 2, 3 }) }, { w });
    auto after = opt.variables();
    for (std::size_t i = 0; i < after.size(); ++i)
        CHECK(after[i].value().data() == before[i]);
}

TEST_CASE("set_state restores a run: the next steps are identical")
{
    for (const char* name : { "sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam" }) {
        CAPTURE(name);
        json cfg = { { "class_name", name }, { "config", { { "learning_rate", 0.1 } } } };
        if (std::string(name) == "sgd")
            cfg["config"]["momentum"] = 0.9;
        OptimizerPtr<double> a = get_optimizer<double>(cfg), b = get_optimizer<double>(cfg);
        Variable<double> wa = make_var({ 1, 2 }), wb = make_var({ 0, 0 });
        a->apply_gradients({ tensor(grads3[0]) }, { wa });
        a->apply_gradients({ tensor(grads3[1]) }, { wa });
        wb.assign(wa.value());
        std::vector<array_t<double>> saved;
        for (const auto& v : a->variables())
            saved.push_back(v.value());
        b->set_state({ wb }, saved);
        CHECK(b->iterations() == 2);
        a->apply_gradients({ tensor(grads3[2]) }, { wa });
        b->apply_gradients({ tensor(grads3[2]) }, { wb });
        CHECK(wa.value() == wb.value());
    }
    Adam<double> opt(0.1);
    Variable<double> w = make_var({ 1, 2 });
    CHECK_THROWS_AS(opt.set_state({ w }, { array_t<double>(0.0) }), ValueError);
    Adam<double> opt2(0.1);
    CHECK_THROWS_AS(opt2.set_state({ w }, { array_t<double>(0.0), array_t<double>::from_shape({ 3 }),
                                            array_t<double>::from_shape({ 2 }) }),
                    ShapeError);
}

// ---- schedules ----------------------------------------------------------------------------------

TEST_CASE("schedules: values at given steps")
{
    ExponentialDecay e(0.1, 10, 0.5);
    CHECK(e(0) == doctest::Approx(0.1));
    CHECK(e(10) == doctest::Approx(0.05));
    CHECK(e(5) == doctest::Approx(0.1 * std::sqrt(0.5)));
    ExponentialDecay es(0.1, 10, 0.5, true);
    CHECK(es(9) == doctest::Approx(0.1));
    CHECK(es(25) == doctest::Approx(0.025));

    PiecewiseConstantDecay p({ 10, 20 }, { 1.0, 0.5, 0.1 });
    CHECK(p(0) == 1.0);
    CHECK(p(10) == 1.0); // step <= boundary keeps the earlier value
    CHECK(p(11) == 0.5);
    CHECK(p(20) == 0.5);
    CHECK(p(21) == 0.1);
    CHECK_THROWS_AS(PiecewiseConstantDecay({ 1 }, { 1.0 }), ValueError);

    CosineDecay c(1.0, 100);
    CHECK(c(0) == doctest::Approx(1.0));
    CHECK(c(50) == doctest::Approx(0.5));
    CHECK(c(100) == doctest::Approx(0.0));
    CHECK(c(200) == doctest::Approx(0.0));
    CosineDecay ca(1.0, 100, 0.1);
    CHECK(ca(100) == doctest::Approx(0.1));
    CHECK(ca(50) == doctest::Approx(0.55));
    // warmup from 0 to 1 over 10 steps, then decay over 100 steps
    CosineDecay cw(0.0, 100, 0.0, "CosineDecay", 1.0, 10);
    CHECK(cw(0) == doctest::Approx(0.0));
    CHECK(cw(5) == doctest::Approx(0.5));
    CHECK(cw(10) == doctest::Approx(1.0));
    CHECK(cw(60) == doctest::Approx(0.5));
    CHECK(cw(1000) == doctest::Approx(0.0));

    PolynomialDecay pd(1.0, 10, 0.0, 2.0);
    CHECK(pd(5) == doctest::Approx(0.25));
    CHECK(pd(20) == doctest::Approx(0.0));
    PolynomialDecay pc(1.0, 10, 0.0, 1.0, true);
    CHECK(pc(15) == doctest::Approx(0.25)); // decay_steps grows to 20
    InverseTimeDecay it(1.0, 10, 1.0);
    CHECK(it(10) == doctest::Approx(0.5));
    CHECK(InverseTimeDecay(1.0, 10, 1.0, true)(15) == doctest::Approx(0.5));

    CHECK_THROWS_AS(ExponentialDecay(0.1, 0, 0.5), ValueError);
}

TEST_CASE("schedules: config round trips and lookup")
{
    std::vector<SchedulePtr> all = { std::make_shared<ExponentialDecay>(0.1, 10, 0.5, true),
                                     std::make_shared<PiecewiseConstantDecay>(std::vector<double>{ 3 },
                                                                              std::vector<double>{ 1, 2 }),
                                     std::make_shared<PolynomialDecay>(0.1, 10),
                                     std::make_shared<InverseTimeDecay>(0.1, 10, 0.5),
                                     std::make_shared<CosineDecay>(0.1, 10, 0.1, "CosineDecay", 0.2, 5) };
    for (const auto& s : all) {
        CAPTURE(s->class_name());
        json j = serialize_schedule(*s);
        SchedulePtr back = get_schedule(j);
        CHECK(back->class_name() == s->class_name());
        CHECK(back->get_config() == s->get_config());
        for (std::int64_t step : { 0, 4, 7, 12 })
            CHECK((*back)(step) == (*s)(step));
        // Keras 2 form
        SchedulePtr k2 = get_schedule({ { "class_name", s->class_name() }, { "config", s->get_config() } });
        CHECK((*k2)(4) == (*s)(4));
    }
    CHECK(ExponentialDecay(0.1, 10, 0.5).get_config() ==
          json{ { "initial_learning_rate", 0.1 }, { "decay_steps", 10.0 }, { "decay_rate", 0.5 }, { "staircase", false },
                { "name", "ExponentialDecay" } });
    CHECK_THROWS_AS(get_schedule({ { "class_name", "CosineDecayRestarts" }, { "config", json::object() } }), KeyError);
}

// ---- lookup by name and config ---------------------------------------------------------------

TEST_CASE("get_optimizer by string, any case, with Keras's defaults")
{
    auto sgd = get_optimizer<float>("sgd");
    CHECK(sgd->class_name() == "SGD");
    CHECK(sgd->learning_rate() == doctest::Approx(0.01));
    CHECK(get_optimizer<float>("SGD")->class_name() == "SGD");
    auto adam = get_optimizer<float>("Adam");
    CHECK(adam->class_name() == "Adam");
    json c = adam->get_config();
    CHECK(c["learning_rate"] == 0.001);
    CHECK(c["beta_1"] == 0.9);
    CHECK(c["beta_2"] == 0.999);
    CHECK(c["epsilon"] == 1e-7);
    CHECK(c["amsgrad"] == false);
    CHECK(c["name"] == "adam");
    CHECK(get_optimizer<float>("ADAMW")->get_config()["weight_decay"] == 0.004);
    json r = get_optimizer<float>("rmsprop")->get_config();
    CHECK(r["rho"] == 0.9);
    CHECK(r["momentum"] == 0.0);
    CHECK(r["centered"] == false);
    CHECK(r["name"] == "rmsprop");
    json a = get_optimizer<float>("adagrad")->get_config();
    CHECK(a["initial_accumulator_value"] == 0.1);
    CHECK(a["learning_rate"] == 0.001);
    CHECK(get_optimizer<float>("nadam")->class_name() == "Nadam");
    CHECK(get_optimizer<float>("RMSprop")->class_name() == "RMSprop");
}

TEST_CASE("get_optimizer: every Keras 3 config key is written")
{
    json c = SGD<double>().get_config();
    for (const char* k : { "name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm", "clipvalue", "use_ema",
                           "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                           "gradient_accumulation_steps", "momentum", "nesterov" })
        CHECK_MESSAGE(c.contains(k), k);
    CHECK(c.size() == 13);
}

TEST_CASE("get_optimizer: configs from real Keras files")
{
    // Keras 2.1.3 (cnn_batch_norm.h5): legacy "lr" and "decay".
    json k2 = json::parse(R"({"class_name": "Adam", "config": {"beta_1": 0.8999999761581421, "beta_2": 0.9990000128746033,
        "decay": 0.0, "epsilon": 1e-07, "amsgrad": false, "lr": 0.0010000000474974513}})");
    auto a = get_optimizer<float>(k2);
    CHECK(a->class_name() == "Adam");
    CHECK(a->learning_rate() == doctest::Approx(0.001));
    CHECK(a->get_config()["beta_1"] == doctest::Approx(0.9));

    // tf.keras 2.14 (str_ww_ref_model.h5): "Custom>Adam" with the new-optimizer keys.
    json k214 = json::parse(R"({"class_name": "Custom>Adam", "config": {"name": "Adam", "weight_decay": null,
        "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99,
        "ema_overwrite_frequency": null, "jit_compile": true, "is_legacy_optimizer": false,
        "learning_rate": 9.999999974752427e-07, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}})");
    auto b = get_optimizer<float>(k214);
    CHECK(b->class_name() == "Adam");
    CHECK(b->learning_rate() == doctest::Approx(1e-6));
    CHECK(b->get_config()["name"] == "Adam");

    // tf.keras 2.2.4 (mlp_1.h5): SGD with "decay".
    json sgd = json::parse(R"({"class_name": "SGD", "config": {"name": "SGD", "learning_rate": 0.01, "decay": 0.0,
        "momentum": 0.0, "nesterov": false}})");
    CHECK(get_optimizer<float>(sgd)->class_name() == "SGD");
}

TEST_CASE("get_optimizer: Keras 3 module form, schedules, round trips")
{
    Adam<double> orig(std::make_shared<CosineDecay>(0.01, 1000), 0.8, 0.99, 1e-6, true);
    orig.set_clipnorm(2.0);
    json j = serialize_optimizer<double>(orig);
    CHECK(j["module"] == "keras.optimizers");
    CHECK(j["class_name"] == "Adam");
    CHECK(j["registered_name"].is_null());
    auto back = get_optimizer<double>(j);
    CHECK(back->get_config() == orig.get_config());
    CHECK(back->learning_rate() == doctest::Approx(0.01));

    for (const char* name : { "sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam" }) {
        CAPTURE(name);
        auto o = get_optimizer<float>(name);
        CHECK(get_optimizer<float>(serialize_optimizer(*o))->get_config() == o->get_config());
    }
}

TEST_CASE("get_optimizer: errors name what is wrong")
{
    try {
        get_optimizer<float>("adadelta_x");
        FAIL("expected KeyError");
    } catch (const KeyError& e) {
        CHECK(std::string(e.what()).find("adadelta_x") != std::string::npos);
    }
    CHECK_THROWS_AS(get_optimizer<float>(json{ { "class_name", "Lion" }, { "config", json::object() } }), KeyError);
    try {
        get_optimizer<float>(json{ { "class_name", "Adam" }, { "config", { { "beta_3", 0.5 } } } });
        FAIL("expected ValueError");
    } catch (const ValueError& e) {
        CHECK(std::string(e.what()).find("beta_3") != std::string::npos);
    }
    CHECK_THROWS_AS(get_optimizer<float>(json{ { "class_name", "AdamW" }, { "config", { { "weight_decay", nullptr } } } }),
                    ValueError);
    CHECK_THROWS_AS(get_optimizer<float>(json{ { "class_name", "Adam" }, { "config", { { "use_ema", true } } } }),
                    NotImplementedError);
    CHECK_THROWS_AS(get_optimizer<float>(json(nullptr)), ValueError);
    CHECK_THROWS_AS(get_optimizer<float>(json(3)), ValueError);
}
