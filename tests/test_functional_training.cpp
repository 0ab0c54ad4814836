// Training functional models with several inputs and outputs: fit / evaluate / predict and the
// *_on_batch methods with x and y as lists or maps by name, per-output losses, loss_weights,
// metrics and weighted_metrics, sample weights per output, Keras's names of the logs, the
// training_config of a file, and a node's training=false while the model trains.
#include "framework/random.hpp"
#include "helpers.hpp"
#include "keras_files.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "layers/merging/merge.hpp"
#include "saving/keras_h5.hpp"

#include <doctest/doctest.h>

#include <cmath>

#include <xtensor/xview.hpp>

using namespace xtape;
using xtape::testing::contains;
using xtape::testing::message_of;
using xtape::testing::random_tensor;
using xtape::testing::TempDir;

namespace test_functional_training {

/// A (rows, cols) array of `v` in row-major order, or a vector when cols is 0.
array_t<double> values(std::vector<double> v, std::size_t rows, std::size_t cols = 0)
{
    array_t<double> a = cols ? array_t<double>::from_shape({ rows, cols }) : array_t<double>::from_shape({ rows });
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

/// Two inputs a (2 features) and b (1); "reg" = Dense(1)(concat(a, b)), "cls" = Dense(1, sigmoid)(a).
struct TwoHeads {
    std::shared_ptr<Model<double>> model;
    std::shared_ptr<Dense<double>> reg, cls;
};

TwoHeads two_heads()
{
    reset_layer_names();
    TwoHeads t;
    auto a = Input<double>({ 2 }, "a"), b = Input<double>({ 1 }, "b");
    t.reg = std::make_shared<Dense<double>>(1, "linear", true, "reg");
    t.cls = std::make_shared<Dense<double>>(1, "sigmoid", true, "cls");
    auto cat = (*std::make_shared<Concatenate<double>>(-1, "cat"))({ a, b });
    t.model = std::make_shared<Model<double>>(std::vector<KerasTensor<double>>{ a, b },
                                              std::vector<KerasTensor<double>>{ (*t.reg)(cat), (*t.cls)(a) }, "heads");
    t.reg->set_weights({ values({ 0.5, -0.25, 1.0 }, 3, 1), values({ 0.1 }, 1) });
    t.cls->set_weights({ values({ 0.75, -0.5 }, 2, 1), values({ -0.2 }, 1) });
    return t;
}

const array_t<double> xa = values({ 1.0, 2.0, -1.0, 0.5, 0.3, -0.7, 2.0, 1.0 }, 4, 2);
const array_t<double> xb = values({ 0.5, -1.5, 1.0, 0.0 }, 4, 1);
const array_t<double> y_reg = values({ 1.0, -2.0, 0.5, 1.5 }, 4, 1);
const array_t<double> y_cls = values({ 1.0, 0.0, 0.0, 1.0 }, 4, 1);
const array_t<double> sw_reg = values({ 1.0, 2.0, 0.0, 1.0 }, 4);

/// The hand-computed float64 reference of one full-batch SGD step on TwoHeads with
/// loss = 0.5 * mse(reg, sample weights sw_reg) + 2 * binary_crossentropy(cls): the logs of the
/// step (at the weights before the update) and the updated weights.
struct Reference {
    double w1[3], b1, w2[2], b2;
    /// The logs at these weights, with sw_reg weighing the reg output (and, `weigh_cls`, cls too).
    std::map<std::string, double> logs(bool weighted, bool weigh_cls = false) const
    {
        const std::size_t n = 4;
        double l1 = 0, l2 = 0, mae = 0, sum_w = 0, correct = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double w = weighted ? sw_reg(i) : 1.0;
            const double e = w1[0] * xa(i, 0) + w1[1] * xa(i, 1) + w1[2] * xb(i, 0) + b1 - y_reg(i, 0);
            l1 += w * e * e;
            mae += w * std::abs(e);
            sum_w += w;
            const double p = 1 / (1 + std::exp(-(w2[0] * xa(i, 0) + w2[1] * xa(i, 1) + b2)));
            l2 -= (weigh_cls ? sw_reg(i) : 1.0) * (y_cls(i, 0) * std::log(p) + (1 - y_cls(i, 0)) * std::log(1 - p));
            correct += ((p > 0.5) == (y_cls(i, 0) > 0.5));
        }
        l1 /= n; // sum_over_batch_size: zero weights still count in the divisor
        l2 /= n;
        return { { "loss", 0.5 * l1 + 2 * l2 }, { "reg_loss", l1 }, { "cls_loss", l2 },
                 { "reg_mae", mae / sum_w }, { "cls_accuracy", correct / n } };
    }
    void sgd_step(double lr)
    {
        const std::size_t n = 4;
        double g1[3] = { 0, 0, 0 }, gb1 = 0, g2[2] = { 0, 0 }, gb2 = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const double e = w1[0] * xa(i, 0) + w1[1] * xa(i, 1) + w1[2] * xb(i, 0) + b1 - y_reg(i, 0);
            const double dz1 = 0.5 * 2 * sw_reg(i) * e / n; // d(0.5 * sum(w e^2) / n) / dz
            g1[0] += dz1 * xa(i, 0);
            g1[1] += dz1 * xa(i, 1);
            g1[2] += dz1 * xb(i, 0);
            gb1 += dz1;
            const double p = 1 / (1 + std::exp(-(w2[0] * xa(i, 0) + w2[1] * xa(i, 1) + b2)));
            const double dz2 = 2 * (p - y_cls(i, 0)) / n; // d(2 * bce) / dz through the sigmoid
            g2[0] += dz2 * xa(i, 0);
            g2[1] += dz2 * xa(i, 1);
            gb2 += dz2;
        }
        for (int k = 0; k < 3; ++k)
            w1[k] -= lr * g1[k];
        b1 -= lr * gb1;
        for (int k = 0; k < 2; ++k)
            w2[k] -= lr * g2[k];
        b2 -= lr * gb2;
    }
};

CompileOptions<double> heads_options()
{
    CompileOptions<double> co;
    co.loss = { "mse", "binary_crossentropy" };
    co.loss_weights = { 0.5, 2.0 };
    co.metrics_by_name = { { "cls", { "accuracy" } } };
    co.weighted_metrics_by_name = { { "reg", { "mae" } } };
    return co;
}

void compile_sgd(Model<double>& m, const CompileOptions<double>& co)
{
    m.compile("sgd", co);
    m.optimizer()->set_learning_rate(0.1);
}

FitOptions<double> quiet_fit(int epochs)
{
    FitOptions<double> o;
    o.batch_size = 4;
    o.epochs = epochs;
    o.shuffle = false;
    o.verbose = 0;
    return o;
}

void check_logs(const std::map<std::string, double>& got, const std::map<std::string, double>& want,
                const std::string& prefix = "")
{
    for (const auto& kv : want) {
        INFO(prefix << kv.first);
        REQUIRE(got.count(prefix + kv.first));
        CHECK(got.at(prefix + kv.first) == doctest::Approx(kv.second).epsilon(1e-12));
    }
}


TEST_CASE("functional training: two steps of a two-output fit equal the hand-computed float64 reference")
{
    TwoHeads t = two_heads();
    compile_sgd(*t.model, heads_options());
    FitOptions<double> fo = quiet_fit(2);
    fo.output_sample_weights = std::vector<array_t<double>>{ sw_reg, xt::ones<double>({ 4 }) };
    fo.validation_data = ValidationData<double>{ { xa, xb }, { y_reg, y_cls }, std::nullopt };
    auto history = t.model->fit({ xa, xb }, { y_reg, y_cls }, fo);

    // Keras 3's names (Note [Names of the logs] in framework/model.cpp).
    std::vector<std::string> keys;
    for (const auto& kv : history->history)
        keys.push_back(kv.first);
    CHECK(keys == std::vector<std::string>{ "cls_accuracy", "cls_loss", "loss", "reg_loss", "reg_mae", "val_cls_accuracy",
                                            "val_cls_loss", "val_loss", "val_reg_loss", "val_reg_mae" });

    Reference r{ { 0.5, -0.25, 1.0 }, 0.1, { 0.75, -0.5 }, -0.2 };
    for (int epoch = 0; epoch < 2; ++epoch) {
        std::map<std::string, double> got;
        for (const auto& kv : history->history)
            got[kv.first] = kv.second[static_cast<std::size_t>(epoch)];
        check_logs(got, r.logs(/*weighted=*/true));
        r.sgd_step(0.1);
        // Validation runs after the epoch's step, without sample weights.
        check_logs(got, r.logs(/*weighted=*/false), "val_");
    }
    const auto w = t.model->get_weights(); // reg kernel, reg bias, cls kernel, cls bias
    for (int k = 0; k < 3; ++k)
        CHECK(w[0](static_cast<std::size_t>(k), 0) == doctest::Approx(r.w1[k]).epsilon(1e-12));
    CHECK(w[1](0) == doctest::Approx(r.b1).epsilon(1e-12));
    for (int k = 0; k < 2; ++k)
        CHECK(w[2](static_cast<std::size_t>(k), 0) == doctest::Approx(r.w2[k]).epsilon(1e-12));
    CHECK(w[3](0) == doctest::Approx(r.b2).epsilon(1e-12));

    // evaluate at the final weights gives the reference's unweighted logs.
    EvaluateOptions<double> eo;
    eo.verbose = 0;
    check_logs(t.model->evaluate({ xa, xb }, { y_reg, y_cls }, eo), r.logs(false));
}

TEST_CASE("functional training: validation_split takes the last rows of every input, target and sample weight")
{
    // 4 samples, split 0.25: one SGD step on rows 0-2, then validation on row 3 with its weights.
    TwoHeads fitted = two_heads(), stepped = two_heads();
    compile_sgd(*fitted.model, heads_options());
    compile_sgd(*stepped.model, heads_options());
    const array_t<double> sw_cls = values({ 0.5, 1.0, 1.5, 3.0 }, 4);
    FitOptions<double> fo = quiet_fit(1);
    fo.validation_split = 0.25;
    fo.output_sample_weights = std::map<std::string, array_t<double>>{ { "reg", sw_reg }, { "cls", sw_cls } };
    auto history = fitted.model->fit({ xa, xb }, { y_reg, y_cls }, fo);

    auto rows = [](const array_t<double>& a, std::size_t b, std::size_t e) -> array_t<double> {
        return xt::view(a, xt::range(b, e));
    };
    stepped.model->train_on_batch({ rows(xa, 0, 3), rows(xb, 0, 3) }, { rows(y_reg, 0, 3), rows(y_cls, 0, 3) },
                                  ArrayList<double>({ rows(sw_reg, 0, 3), rows(sw_cls, 0, 3) }));
    CHECK(fitted.model->get_weights() == stepped.model->get_weights());
    EvaluateOptions<double> eo;
    eo.verbose = 0;
    eo.output_sample_weights = std::vector<array_t<double>>{ rows(sw_reg, 3, 4), rows(sw_cls, 3, 4) };
    const Logs val = stepped.model->evaluate({ rows(xa, 3, 4), rows(xb, 3, 4) }, { rows(y_reg, 3, 4), rows(y_cls, 3, 4) },
                                             eo);
    for (const auto& kv : val)
        CHECK(history->history.at("val_" + kv.first).at(0) == kv.second);
}

TEST_CASE("functional training: maps by name, one sample weight for every output, *_on_batch")
{
    // x, y and the compile arguments by name train exactly as lists in the model's order.
    TwoHeads by_list = two_heads(), by_name = two_heads();
    compile_sgd(*by_list.model, heads_options());
    CompileOptions<double> named;
    named.loss_by_name = { { "cls", "binary_crossentropy" }, { "reg", "mse" } };
    named.loss_weights_by_name = { { "reg", 0.5 }, { "cls", 2.0 } };
    named.metrics = { {}, { "accuracy" } };
    named.weighted_metrics = { { "mae" }, {} };
    compile_sgd(*by_name.model, named);
    const std::map<std::string, array_t<double>> x{ { "b", xb }, { "a", xa } }, y{ { "cls", y_cls }, { "reg", y_reg } };
    const Logs l1 = by_list.model->train_on_batch({ xa, xb }, { y_reg, y_cls }, ArrayList<double>(sw_reg));
    const Logs l2 = by_name.model->train_on_batch(x, y, ArrayList<double>(sw_reg));
    CHECK(l1 == l2);
    CHECK(by_list.model->get_weights() == by_name.model->get_weights());
    // One sample-weight array weighs every output (Keras's rule for a sample_weight that is not a list).
    const Reference r{ { 0.5, -0.25, 1.0 }, 0.1, { 0.75, -0.5 }, -0.2 };
    check_logs(l1, r.logs(/*weighted=*/true, /*weigh_cls=*/true));
    CHECK(l1.size() == 5);

    const auto p = by_name.model->predict_on_batch_list(x);
    const auto q = by_list.model->predict_list({ xa, xb }, PredictOptions<double>{ 3, 0, {} });
    REQUIRE(p.size() == 2);
    CHECK(p[0] == q[0]);
    CHECK(p[1] == q[1]);
    CHECK(contains(message_of<ValueError>([&] { by_list.model->predict({ xa, xb }); }), "use predict_list"));
    const Logs t1 = by_list.model->test_on_batch({ xa, xb }, { y_reg, y_cls });
    by_list.model->reset_metrics();
    const Logs t2 = by_list.model->test_on_batch({ xa, xb }, { y_reg, y_cls });
    CHECK(t2.at("loss") == doctest::Approx(t2.at("reg_loss") * 0.5 + t2.at("cls_loss") * 2).epsilon(1e-12));
    CHECK(t1.at("loss") != t2.at("loss")); // t1 still held the training batch's running mean
}

TEST_CASE("functional training: names of weighted metrics that collide, and the errors")
{
    TwoHeads t = two_heads();
    CompileOptions<double> co;
    co.loss = { "mse" }; // one loss for every output
    co.metrics = { { "mae" } };
    co.weighted_metrics = { { "mae" } };
    compile_sgd(*t.model, co);
    t.model->test_on_batch({ xa, xb }, { y_reg, y_cls });
    CHECK(t.model->metrics_names() == std::vector<std::string>{ "loss", "reg_mae", "cls_mae", "reg_weighted_mae",
                                                                "cls_weighted_mae", "reg_loss", "cls_loss" });
    CHECK(t.model->metric_direction("reg_loss") == -1);

    CHECK(message_of<ValueError>([&] { t.model->fit({ xa, xb }, y_reg); }) ==
          "fit: y: expected 2 array(s) (['reg', 'cls']), but received 1");
    CHECK(message_of<ValueError>([&] { t.model->fit(std::vector<array_t<double>>{ xa }, { y_reg, y_cls }); }) ==
          "fit: x: expected 2 array(s) (['a', 'b']), but received 1");
    const std::map<std::string, array_t<double>> bad_y{ { "reg", y_reg }, { "score", y_cls } };
    CHECK(contains(message_of<ValueError>([&] { t.model->evaluate({ xa, xb }, bad_y); }),
                   "evaluate: y: expected keys ['reg', 'cls'], but found ['reg', 'score']"));
    CHECK(contains(message_of<ValueError>([&] { t.model->fit({ xa, xb }, { y_reg, xt::ones<double>({ 3, 1 }) }); }),
                   "'y' sizes: 4, 3"));
    FitOptions<double> cw = quiet_fit(1);
    cw.class_weight = { { 0, 1.0 } };
    CHECK(message_of<ValueError>([&] { t.model->fit({ xa, xb }, { y_reg, y_cls }, cw); }) ==
          "`class_weight` is only supported for Models with a single output.");

    FitOptions<double> both = quiet_fit(1);
    both.sample_weight = sw_reg;
    both.output_sample_weights = std::vector<array_t<double>>{ sw_reg, sw_reg };
    CHECK(message_of<ValueError>([&] { t.model->fit({ xa, xb }, { y_reg, y_cls }, both); }) ==
          "fit: sample_weight and output_sample_weights given together; give one");

    CompileOptions<double> three;
    three.loss = { "mse", "mse", "mse" };
    CHECK(message_of<ValueError>([&] { t.model->compile("sgd", three); }) ==
          "compile: `loss` must have one entry or one per output: the model has 2 outputs ['reg', 'cls'], loss has 3 "
          "entries");
    CompileOptions<double> unknown;
    unknown.loss_by_name = { { "score", "mse" } };
    CHECK(message_of<ValueError>([&] { t.model->compile("sgd", unknown); }) ==
          "compile: `loss` names the output 'score', but the model's outputs are ['reg', 'cls']");
    CompileOptions<double> none;
    none.loss = { LossSpec<double>(LossPtr<double>()), LossSpec<double>(LossPtr<double>()) };
    CHECK(contains(message_of<ValueError>([&] { t.model->compile("sgd", none); }), "no output of model \"heads\" has a loss"));

    // An output without a loss trains the other alone and logs no per-output losses.
    CompileOptions<double> only_reg;
    only_reg.loss = { LossSpec<double>("mse"), LossSpec<double>(LossPtr<double>()) };
    compile_sgd(*t.model, only_reg);
    const Logs l = t.model->test_on_batch({ xa, xb }, { y_reg, y_cls });
    CHECK(l.size() == 1);
    Reference r{ { 0.5, -0.25, 1.0 }, 0.1, { 0.75, -0.5 }, -0.2 };
    CHECK(l.at("loss") == doctest::Approx(r.logs(false).at("reg_loss")).epsilon(1e-12));
}

TEST_CASE("functional training: the training_config keeps per-output losses, weights and metrics")
{
    TempDir tmp("functional_training");
    TwoHeads t = two_heads();
    compile_sgd(*t.model, heads_options());
    const json tc = training_config_of(*t.model);
    CHECK(tc["loss"].size() == 2);
    CHECK(tc["loss"][1]["class_name"] == "BinaryCrossentropy");
    CHECK(tc["loss_weights"] == json::parse("[0.5, 2.0]"));
    CHECK(tc["metrics"] == json::parse(R"({"cls": ["accuracy"]})"));
    CHECK(tc["weighted_metrics"] == json::parse(R"({"reg": ["mae"]})"));

    const std::string path = (tmp.dir / "heads.h5").string();
    save_model(*t.model, path);
    auto back = load_model<double>(path);
    REQUIRE(back->compiled());
    EvaluateOptions<double> eo;
    eo.verbose = 0;
    eo.sample_weight = sw_reg;
    const Logs a = t.model->evaluate({ xa, xb }, { y_reg, y_cls }, eo);
    const Logs b = back->evaluate({ xa, xb }, { y_reg, y_cls }, eo);
    CHECK(a == b);
    CHECK(b.size() == 5);

    // tf.keras 2's forms: a dict of losses and of weights, metrics as a list per output.
    json tf = tc;
    tf["loss"] = json::parse(R"({"reg": "mse", "cls": "binary_crossentropy"})");
    tf["loss_weights"] = json::parse(R"({"reg": 0.5, "cls": 2.0})");
    tf["metrics"] = json::parse(R"([[], ["accuracy"]])");
    tf["weighted_metrics"] = json::parse(R"([["mae"], null])");
    auto again = two_heads().model;
    compile_from_training_config(*again, tf);
    CHECK(again->evaluate({ xa, xb }, { y_reg, y_cls }, eo) == a);
}

TEST_CASE("functional training: a node's training=false survives save and load while the model trains")
{
    reset_layer_names();
    set_random_seed(11);
    TempDir tmp("functional_training_bn");
    auto x = Input<float>({ 3 }, "x");
    auto bn = std::make_shared<BatchNormalization<float>>();
    auto h = (*bn)((*std::make_shared<Dense<float>>(3, "linear", true, "pre"))(x), false);
    Model<float> m(x, (*std::make_shared<Dense<float>>(1, "linear", true, "post"))(h), "frozen_bn");
    m.compile("sgd", "mse");
    const std::string path = (tmp.dir / "frozen_bn.h5").string();
    save_model(m, path);
    auto back = load_model<float>(path);
    auto& bn_back = dynamic_cast<BatchNormalization<float>&>(*back->get_layer("batch_normalization"));
    const array_t<float> mean_before = bn_back.moving_mean().value();
    const array_t<float> kernel_before = back->get_layer("pre")->get_weights()[0];
    FitOptions<float> fo;
    fo.batch_size = 4;
    fo.verbose = 0;
    back->fit(random_tensor<float>({ 8, 3 }, 1).value(), random_tensor<float>({ 8, 1 }, 2).value(), fo);
    CHECK(bn_back.moving_mean().value() == mean_before);
    // Gradients still flow through the frozen BN to the layer before it.
    CHECK(back->get_layer("pre")->get_weights()[0] != kernel_before);
}

} // namespace test_functional_training
