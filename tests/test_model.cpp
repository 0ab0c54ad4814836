// Models and the training loop: Keras's loss formula, batching, the train step, Sequential and
// Functional construction and configs, summary text, determinism, errors, gradcheck; fit's
// arguments (validation data, sample and class weights), add_loss, keras.Input, a custom
// training loop against fit. Most cases use the small layers of model_helpers.hpp; those
// marked "real layers" train layers/ and optim/ (Dense, BatchNormalization, Dropout, Adam).
// ctest-labels: sanitize
#include "framework/gradcheck.hpp"
#include "framework/model.hpp"
#include "framework/parallel.hpp"
#include "framework/regularizers.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "layers/dropout.hpp"
#include "layers/input_layer.hpp"
#include "layers/relu.hpp"
#include "optim/adam.hpp"
#include "tests/helpers.hpp"
#include "tests/model_helpers.hpp"

#include <doctest/doctest.h>

#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

using namespace xtape;
using namespace xtape::testing;

namespace {

/// A one-unit linear model with kernel (1, 2) and bias 0.5, optionally L2-regularized.
std::shared_ptr<Sequential<float>> linear_model(double l2 = 0)
{
    auto m = std::make_shared<Sequential<float>>("lin");
    m->add(std::make_shared<TDense<float>>(1, "linear", l2 ? std::make_shared<testing::L2<float>>(l2) : nullptr));
    m->build({ -1, 2 });
    m->set_weights({ arr<float>({ 1, 2 }, { 2, 1 }), arr<float>({ 0.5 }, { 1 }) });
    return m;
}

std::string contains_msg(const std::function<void()>& f)
{
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

/// Records x(0, 0) of every training call (the first sample of each batch).
class Recorder : public Layer<float> {
public:
    Recorder()
        : Layer<float>("Recorder")
    {
    }
    std::vector<float> seen;

protected:
    Tensor<float> call(const Tensor<float>& x, bool training, const Tensor<float>&) override
    {
        if (training)
            seen.push_back(x.value()(0, 0));
        return x;
    }
};

} // namespace

TEST_CASE("model: Keras's training loss with sample weights and regularization, hand-computed")
{
    // pred = x @ [1, 2] + 0.5 = [1.5, 2.5, 3.5]; y = [1, 2, 5]; squared errors 0.25, 0.25, 2.25.
    auto m = linear_model(0.1);
    m->compile(std::make_shared<PlainSGD<float>>(), "mse");
    const array_t<float> x = arr<float>({ 1, 0, 0, 1, 1, 1 }, { 3, 2 }), y = arr<float>({ 1, 2, 5 }, { 3, 1 });
    const double penalty = 0.1 * (1 + 4);
    Logs l = m->test_on_batch(x, y);
    CHECK(l["loss"] == doctest::Approx(2.75 / 3 + penalty));
    m->reset_metrics();
    // sum_over_batch_size: sum(loss * w) / batch size, zero weights still count in the divisor.
    const array_t<float> sw = arr<float>({ 1, 0, 2 }, { 3 });
    l = m->test_on_batch(x, y, &sw);
    CHECK(l["loss"] == doctest::Approx((0.25 + 0 + 2 * 2.25) / 3 + penalty));
    // compute_loss gives the same scalar, and the model's losses are the one penalty.
    Tensor<float> total = m->compute_loss(Tensor<float>(y), m->predict_on_batch(x), Tensor<float>(sw));
    CHECK(total.item() == doctest::Approx((0.25 + 2 * 2.25) / 3 + penalty));
    REQUIRE(m->losses().size() == 1);
    CHECK(m->losses()[0].item() == doctest::Approx(penalty));

    // Other reductions through reduce_weighted_values.
    Tensor<float> v(arr<float>({ 1, 2, 3 }, { 3 })), w(arr<float>({ 1, 0, 2 }, { 3 }));
    CHECK(reduce_weighted_values(v, w, "sum").item() == doctest::Approx(7));
    CHECK(reduce_weighted_values(v, w, "mean_with_sample_weight").item() == doctest::Approx(7.0 / 3));
    CHECK(reduce_weighted_values(v, Tensor<float>(), "sum_over_batch_size").item() == doctest::Approx(2));
    CHECK(reduce_weighted_values(v, w, "none").shape() == shape_t{ 3 });
    CHECK_THROWS_AS(reduce_weighted_values(v, w, "average"), ValueError);
    // One weight per sample broadcasts over the sample's positions.
    Tensor<float> v2(arr<float>({ 1, 2, 3, 4 }, { 2, 2 })), w2(arr<float>({ 1, 3 }, { 2 }));
    CHECK(reduce_weighted_values(v2, w2, "sum_over_batch_size").item() == doctest::Approx((1 + 2 + 9 + 12) / 4.0));
}

TEST_CASE("model: a train step is tape + gradient + apply_gradients on the trainable weights")
{
    auto m = linear_model(0.05);
    const double lr = 0.1;
    m->compile(std::make_shared<PlainSGD<float>>(lr), "mse");
    const array_t<float> x = arr<float>({ 1, 0, 0, 1, 1, 1 }, { 3, 2 }), y = arr<float>({ 1, 2, 5 }, { 3, 1 });
    // Hand gradient of mean((x w + b - y)^2) + 0.05 |w|^2.
    const double r[3] = { 0.5, 0.5, -1.5 };
    const double gw0 = 2.0 / 3 * (r[0] * 1 + r[2] * 1) + 0.1 * 1, gw1 = 2.0 / 3 * (r[1] + r[2]) + 0.1 * 2;
    const double gb = 2.0 / 3 * (r[0] + r[1] + r[2]);
    m->train_on_batch(x, y);
    const auto w = m->get_weights();
    CHECK(w[0](0, 0) == doctest::Approx(1 - lr * gw0));
    CHECK(w[0](1, 0) == doctest::Approx(2 - lr * gw1));
    CHECK(w[1](0) == doctest::Approx(0.5 - lr * gb));
    CHECK(m->optimizer()->iterations() == 1);
}

TEST_CASE("model: class_weight equals the matching sample weights")
{
    const array_t<float> y = arr<float>({ 0, 1, 1, 2 }, { 4 });
    CHECK(class_weight_to_sample_weights(y, { { 1, 2.0 } }) == arr<float>({ 1, 2, 2, 1 }, { 4 }));
    CHECK(class_weight_to_sample_weights(arr<float>({ 0, 1, 1, 0, 0.4, 0.6 }, { 3, 2 }), { { 1, 3.0 } }) ==
          arr<float>({ 3, 1, 3 }, { 3 }));
    CHECK(class_weight_to_sample_weights(arr<float>({ 2, 0.6 }, { 2, 1 }), { { 1, 5.0 }, { 2, 4.0 } }) == arr<float>({ 4, 5 }, { 2 }));

    set_random_seed(3);
    array_t<float> x, yy;
    blobs<float>(12, 4, 3, 1, x, yy);
    auto make = [] {
        auto m = std::make_shared<Sequential<float>>();
        m->add(std::make_shared<TDense<float>>(3));
        m->build({ -1, 4 });
        m->compile(std::make_shared<PlainSGD<float>>(0.5), std::make_shared<SparseCategoricalCrossentropy<float>>(true));
        return m;
    };
    auto a = make(), b = make();
    b->set_weights(a->get_weights());
    const std::map<int, double> cw{ { 0, 0.5 }, { 2, 3.0 } };
    const array_t<float> sw = class_weight_to_sample_weights(yy, cw);
    a->train_on_batch(x, yy, nullptr, &cw);
    b->train_on_batch(x, yy, &sw);
    CHECK(a->get_weights()[0] == b->get_weights()[0]);
    CHECK_THROWS_WITH_AS(a->train_on_batch(x, yy, &sw, &cw),
                         "You cannot `class_weight` and `sample_weight` at the same time.", ValueError);
}

TEST_CASE("model: fit on no samples raises as tf.keras does (test_fit_on_empty), unless no epoch runs")
{
    Sequential<float> m;
    m.add(std::make_shared<TDense<float>>(1));
    m.compile(std::make_shared<PlainSGD<float>>(0.1), "mse");
    const array_t<float> x = array_t<float>::from_shape({ 0, 3 }), y = array_t<float>::from_shape({ 0, 1 });
    FitOptions<float> fo;
    fo.verbose = 0;
    CHECK_THROWS_WITH_AS(m.fit(x, y, fo), doctest::Contains("Unexpected result of `train_function` (Empty logs)"),
                         ValueError);
    CHECK_THROWS_WITH_AS(m.fit(x, y, fo), doctest::Contains("x of shape (0, 3)"), ValueError);
    fo.epochs = 0;
    auto h = m.fit(x, y, fo);
    REQUIRE(h);
    CHECK(h->epoch.empty());
}

TEST_CASE("model: fit reduces the loss; logs, history, validation split and initial_epoch")
{
    set_random_seed(7);
    array_t<float> x, y;
    blobs<float>(200, 6, 3, 2, x, y);
    Sequential<float> m;
    m.add(std::make_shared<TDense<float>>(16, "relu"));
    m.add(std::make_shared<TDense<float>>(3, "softmax"));
    m.compile(std::make_shared<PlainSGD<float>>(0.2), "sparse_categorical_crossentropy", { "accuracy" });
    const double before = m.evaluate(x, y, EvaluateOptions<float>{ 32, 0, std::nullopt, {} })["loss"];
    FitOptions<float> fo;
    fo.epochs = 5;
    fo.batch_size = 16;
    fo.verbose = 0;
    fo.validation_split = 0.25;
    auto h = m.fit(x, y, fo);
    REQUIRE(h);
    CHECK(h->epoch == std::vector<int>{ 0, 1, 2, 3, 4 });
    for (const char* k : { "loss", "accuracy", "val_loss", "val_accuracy" })
        CHECK(h->history[k].size() == 5);
    CHECK(h->history.size() == 4);
    CHECK(h->history["loss"].back() < h->history["loss"].front());
    CHECK(h->history["accuracy"].back() > 0.8);
    CHECK(m.metrics_names() == std::vector<std::string>{ "loss", "accuracy" });
    // The validation samples are the last 25 % (before shuffling): evaluating them now gives val_*.
    const array_t<float> xv = xt::view(x, xt::range(150, 200), xt::all()), yv = xt::view(y, xt::range(150, 200));
    Logs v = m.evaluate(xv, yv, EvaluateOptions<float>{ 16, 0, std::nullopt, {} });
    CHECK(v["loss"] == doctest::Approx(h->history["val_loss"].back()).epsilon(1e-6));
    CHECK(v["accuracy"] == doctest::Approx(h->history["val_accuracy"].back()));
    CHECK(m.evaluate(x, y, EvaluateOptions<float>{ 32, 0, std::nullopt, {} })["loss"] < before);

    fo.validation_split = 0;
    fo.initial_epoch = 5;
    fo.epochs = 7;
    h = m.fit(x, y, fo);
    CHECK(h->epoch == std::vector<int>{ 5, 6 });
    CHECK(h->history.count("val_loss") == 0);
    CHECK(m.history() == h);
}

TEST_CASE("model: epoch loss is the batch losses weighted by batch size; evaluate/predict batching")
{
    set_random_seed(11);
    array_t<float> x, y;
    blobs<float>(10, 5, 2, 3, x, y);
    Sequential<float> m;
    m.add(std::make_shared<TDense<float>>(4, "tanh", std::make_shared<testing::L2<float>>(0.01)));
    m.add(std::make_shared<TDense<float>>(2));
    m.compile(std::make_shared<PlainSGD<float>>(0.0), std::make_shared<SparseCategoricalCrossentropy<float>>(true),
              { "accuracy", "sparse_top_k_categorical_accuracy" });
    FitOptions<float> fo;
    fo.batch_size = 4; // batches of 4, 4, 2
    fo.verbose = 0;
    auto h = m.fit(x, y, fo);
    const Logs full = m.evaluate(x, y, EvaluateOptions<float>{ 10, 0, std::nullopt, {} });
    CHECK(h->history["loss"][0] == doctest::Approx(full.at("loss")).epsilon(1e-6));
    CHECK(h->history["accuracy"][0] == doctest::Approx(full.at("accuracy")));
    for (std::size_t bs : { 1, 3, 7, 10, 64 }) {
        CAPTURE(bs);
        const Logs l = m.evaluate(x, y, EvaluateOptions<float>{ bs, 0, std::nullopt, {} });
        CHECK(l.at("loss") == doctest::Approx(full.at("loss")).epsilon(1e-6));
        CHECK(l.at("accuracy") == doctest::Approx(full.at("accuracy")));
        CHECK(l.at("sparse_top_k_categorical_accuracy") == 1.0);
        const array_t<float> p = m.predict(x, PredictOptions<float>{ bs, 0, {} });
        const array_t<float> q = m.predict_on_batch(x);
        REQUIRE(p.shape() == q.shape());
        for (std::size_t i = 0; i < p.size(); ++i)
            CHECK(p.data()[i] == doctest::Approx(q.data()[i]).epsilon(1e-6));
    }
}

TEST_CASE("model: batches in order without shuffle, a seeded permutation with it")
{
    array_t<float> x = array_t<float>::from_shape({ 12, 1 }), y = xt::zeros<float>({ 12, 1 });
    for (std::size_t i = 0; i < 12; ++i)
        x(i, 0) = static_cast<float>(i);
    auto run = [&](bool shuffle, std::uint64_t seed) {
        set_random_seed(seed);
        auto rec = std::make_shared<Recorder>();
        Sequential<float> m;
        m.add(rec);
        m.add(std::make_shared<TDense<float>>(1));
        m.compile(std::make_shared<PlainSGD<float>>(0.0), "mse");
        FitOptions<float> fo;
        fo.batch_size = 4;
        fo.epochs = 2;
        fo.verbose = 0;
        fo.shuffle = shuffle;
        m.fit(x, y, fo);
        return rec->seen;
    };
    CHECK(run(false, 1) == std::vector<float>{ 0, 4, 8, 0, 4, 8 });
    const auto a = run(true, 5), b = run(true, 5);
    CHECK(a == b);
    CHECK(a != std::vector<float>{ 0, 4, 8, 0, 4, 8 });
}

TEST_CASE("model: with a fixed seed, fit gives bit-identical weights with 1 and 2 OpenMP threads")
{
    array_t<float> x, y;
    blobs<float>(1024, 64, 10, 4, x, y);
    auto run = [&](int threads) {
        set_num_threads(threads);
        set_random_seed(1234);
        Sequential<float> m;
        m.add(std::make_shared<TDense<float>>(128, "relu", std::make_shared<testing::L2<float>>(1e-4)));
        m.add(std::make_shared<TDense<float>>(10, "softmax"));
        m.compile(std::make_shared<PlainSGD<float>>(0.05), "sparse_categorical_crossentropy", { "accuracy" });
        FitOptions<float> fo;
        fo.batch_size = 256; // 256 x 128 activations: large enough for the parallel kernels
        fo.epochs = 2;
        fo.verbose = 0;
        fo.validation_split = 0.25;
        auto h = m.fit(x, y, fo);
        return std::make_pair(m.get_weights(), h->history);
    };
    const auto one = run(1), two = run(2);
    set_num_threads(2);
    REQUIRE(one.first.size() == two.first.size());
    for (std::size_t i = 0; i < one.first.size(); ++i)
        CHECK(one.first[i] == two.first[i]);
    CHECK(one.second == two.second);
}

TEST_CASE("model: gradcheck of the training loss (regularizers, activity regularizer, sample weights)")
{
    set_random_seed(21);
    Sequential<double> m;
    auto d1 = std::make_shared<TDense<double>>(4, "tanh", std::make_shared<testing::L2<double>>(0.01));
    d1->set_activity_regularizer(std::make_shared<testing::L2<double>>(0.003));
    m.add(d1);
    m.add(std::make_shared<TDense<double>>(3, "linear", std::make_shared<testing::L2<double>>(0.02)));
    m.build({ -1, 5 });
    m.compile(std::make_shared<PlainSGD<double>>(), std::make_shared<SparseCategoricalCrossentropy<double>>(true));
    const Tensor<double> x = random_tensor({ 6, 5 }, 3), sw = random_tensor({ 6 }, 4, 0.2, 2.0);
    const Tensor<double> y(arr<double>({ 0, 1, 2, 2, 1, 0 }, { 6 }));
    std::vector<Tensor<double>> params;
    std::vector<std::string> names;
    for (const auto& v : m.trainable_weights()) {
        params.push_back(v.tensor());
        names.push_back(v.name());
    }
    REQUIRE(params.size() == 4);
    GradcheckResult r = gradcheck([&] { return m.compute_loss(y, m(x, true), sw); }, params, names);
    INFO(r.report());
    CHECK(r.passed);
    // The activity penalty and both weight penalties are part of the loss.
    m(x, true);
    CHECK(m.losses().size() == 3);
}

TEST_CASE("model: weights in layer order, non-trainable state, trainable propagation")
{
    Sequential<float> m("w");
    m.add(std::make_shared<FakeInputLayer<float>>(dims_t{ -1, 3 }));
    auto d1 = std::make_shared<TDense<float>>(2);
    auto cc = std::make_shared<CountCalls<float>>();
    auto d2 = std::make_shared<TDense<float>>(1);
    m.add(d1);
    CHECK(m.built()); // built as soon as the input shape is known
    CHECK(m.weights().size() == 2);
    m.add(cc);
    m.add(d2);
    std::vector<std::string> names;
    for (const auto& v : m.weights())
        names.push_back(v.name());
    CHECK(names == std::vector<std::string>{ "kernel", "bias", "count", "kernel", "bias" });
    CHECK(m.trainable_weights().size() == 4);
    CHECK(m.non_trainable_weights().size() == 1);
    CHECK(m.count_params() == 3 * 2 + 2 + 1 + 2 + 1);
    m.set_trainable(false);
    CHECK(!d1->trainable());
    CHECK(m.trainable_weights().empty());
    CHECK(m.non_trainable_weights().size() == 5);
    m.set_trainable(true);
    d2->set_trainable(false);
    CHECK(m.trainable_weights().size() == 2);
    CHECK(m.non_trainable_weights().size() == 3);

    // A frozen layer is not updated; its non-trainable counter still counts training calls.
    d2->set_trainable(true);
    d1->set_trainable(false);
    m.compile(std::make_shared<PlainSGD<float>>(0.1), "mse");
    const array_t<float> k1 = d1->kernel().value(), k2 = d2->kernel().value();
    m.train_on_batch(arr<float>({ 1, 2, 3, 4, 5, 6 }, { 2, 3 }), arr<float>({ 1, 0 }, { 2, 1 }));
    CHECK(d1->kernel().value() == k1);
    CHECK(d2->kernel().value() != k2);
    CHECK(cc->count().value()(0) == 1);
    m.predict(arr<float>({ 1, 2, 3 }, { 1, 3 }), PredictOptions<float>{ 32, 0, {} });
    CHECK(cc->count().value()(0) == 1);

    // Nested model: its weights and summary count.
    Sequential<float> outer("outer");
    auto inner = std::make_shared<Sequential<float>>("inner");
    inner->add(std::make_shared<TDense<float>>(4));
    outer.add(inner);
    outer.add(std::make_shared<TDense<float>>(2));
    outer.build({ -1, 3 });
    CHECK(outer.weights().size() == 4);
    CHECK(outer.count_params() == 3 * 4 + 4 + 4 * 2 + 2);
    CHECK(outer.get_layer("inner") == inner);
    CHECK_THROWS_AS(outer.get_layer("nope"), ValueError);
}

TEST_CASE("model: Sequential add/pop/build and their errors")
{
    Sequential<float> m("s");
    CHECK_THROWS_AS(m.build({ -1, 3 }), ValueError); // no layers
    auto d = std::make_shared<TDense<float>>(2, "linear", nullptr, "same");
    m.add(d);
    CHECK(!m.built());
    CHECK(m.weights().empty());
    CHECK_THROWS_AS(m.add(std::make_shared<TDense<float>>(2, "linear", nullptr, "same")), ValueError);
    CHECK_THROWS_AS(m.add(std::make_shared<FakeInputLayer<float>>(dims_t{ -1, 3 })), ValueError);
    m.add(std::make_shared<TDense<float>>(5));
    m.build({ -1, 3 });
    CHECK(m.weights().size() == 4);
    CHECK(m.input_shape() == dims_t{ -1, 3 });
    CHECK(m.compute_output_shape({ -1, 3 }) == dims_t{ -1, 5 });
    CHECK_THROWS_AS(m.build({ -1, 4 }), ValueError);
    auto popped = m.pop();
    CHECK(popped->compute_output_shape({ -1, 2 }) == dims_t{ -1, 5 });
    CHECK(m.layers().size() == 1);
    CHECK(m.weights().size() == 2);
    m.add(std::make_shared<TDense<float>>(7)); // built at once: the input shape is known
    CHECK(m.weights().size() == 4);
    CHECK(m.predict_on_batch(xt::ones<float>({ 2, 3 })).shape()[1] == 7);
    m.pop();
    m.pop();
    CHECK_THROWS_AS(m.pop(), ValueError);

    Sequential<float> with_input("wi");
    with_input.add(std::make_shared<FakeInputLayer<float>>(dims_t{ -1, 3 }));
    with_input.add(std::make_shared<TDense<float>>(2));
    CHECK_THROWS_AS(with_input.build({ -1, 4 }), ValueError);
    // An input shape declared by the first layer's config (Keras's input_shape= argument).
    class Declares : public TDense<float> {
    public:
        Declares()
            : TDense<float>(2)
        {
        }
        json get_config() const override
        {
            json c = TDense<float>::get_config();
            c["batch_input_shape"] = { nullptr, 6 };
            return c;
        }
    };
    Sequential<float> declared;
    declared.add(std::make_shared<Declares>());
    CHECK(declared.built());
    CHECK(declared.input_shape() == dims_t{ -1, 6 });
}

TEST_CASE("model: summary prints Keras's table")
{
    reset_layer_names();
    Sequential<float> m("seq");
    m.add(std::make_shared<TDense<float>>(16, "relu", nullptr, "d1"));
    m.add(std::make_shared<TDense<float>>(3, "linear", nullptr, "d2"));
    m.build({ -1, 8 });
    const std::string expected = "Model: \"seq\"\n"
                                 "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓\n"
                                 "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃\n"
                                 "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩\n"
                                 "│ d1 (Dense)                      │ (None, 16)             │           144 │\n"
                                 "├─────────────────────────────────┼────────────────────────┼───────────────┤\n"
                                 "│ d2 (Dense)                      │ (None, 3)              │            51 │\n"
                                 "└─────────────────────────────────┴────────────────────────┴───────────────┘\n"
                                 " Total params: 195 (780.00 B)\n"
                                 " Trainable params: 195 (780.00 B)\n"
                                 " Non-trainable params: 0 (0.00 B)\n";
    CHECK(m.summary_string(76) == expected);
    // Keras's default width on a non-terminal is min(88, 80 - 4) = 76.
    setenv("COLUMNS", "80", 1);
    CHECK(m.summary_string() == expected);
    unsetenv("COLUMNS");

    // 88 columns, an unbuilt layer, non-trainable params, a wrapped long name.
    Sequential<float> u("u");
    u.add(std::make_shared<TDense<float>>(4, "linear", nullptr, "a_layer_with_a_rather_long_name_indeed"));
    auto cc = std::make_shared<CountCalls<float>>();
    u.add(cc);
    const std::string s = u.summary_string(88);
    CHECK(s.find("│ a_layer_with_a_rather_long_name_ind… │ ?") != std::string::npos);
    CHECK(s.find("│ (Dense)                              │") != std::string::npos);
    CHECK(s.find("0 (unbuilt) │") != std::string::npos);
    u.build({ -1, 2 });
    const std::string b = u.summary_string(88);
    CHECK(b.find(" Non-trainable params: 1 (4.00 B)\n") != std::string::npos);
    CHECK(b.find(" Total params: 13 (52.00 B)\n") != std::string::npos);
    CHECK(b.find("━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳") != std::string::npos); // 36 + 2 wide
}

namespace {
LayerPtr<float> test_factory(const json& spec)
{
    const json& c = spec.at("config");
    if (spec.at("class_name") == "Dense")
        return std::make_shared<TDense<float>>(c.at("units").get<long>(), c.value("activation", "linear"), nullptr,
                                               c.at("name").get<std::string>());
    if (spec.at("class_name") == "InputLayer") // framework/ makes no InputLayer: the factory does
        return InputLayer<float>::from_config(c);
    throw KeyError("test factory: unknown layer " + spec.dump());
}
} // namespace

TEST_CASE("model: Sequential and Functional configs round-trip through a layer factory")
{
    reset_layer_names();
    Sequential<float> m("cfg");
    m.add(std::make_shared<TDense<float>>(4, "relu", nullptr, "h"));
    m.add(std::make_shared<TDense<float>>(2, "softmax", nullptr, "out"));
    m.build({ -1, 3 });
    const json spec = model_to_json(m);
    CHECK(spec["class_name"] == "Sequential");
    const json& c = spec["config"];
    CHECK(c["name"] == "cfg");
    CHECK(c["build_input_shape"] == json::array({ nullptr, 3 }));
    REQUIRE(c["layers"].size() == 3);
    CHECK(c["layers"][0] == json{ { "class_name", "InputLayer" },
                                  { "config", { { "batch_shape", { nullptr, 3 } }, { "dtype", "float32" }, { "sparse", false }, { "name", "input_layer" } } } });
    CHECK(c["layers"][1]["class_name"] == "Dense");
    CHECK(c["layers"][2]["config"]["units"] == 2);

    auto back = model_from_config<float>(spec, test_factory);
    CHECK(back->name() == "cfg");
    CHECK(back->built());
    CHECK(back->count_params() == m.count_params());
    CHECK(model_to_json(*back) == spec);
    // tf.keras 2 form: batch_input_shape on an InputLayer, no build_input_shape; Keras 1: a bare list.
    json old{ { "class_name", "Sequential" },
              { "config",
                { { "name", "old" },
                  { "layers",
                    { { { "class_name", "InputLayer" }, { "config", { { "batch_input_shape", { nullptr, 5 } }, { "name", "in" } } } },
                      { { "class_name", "Dense" }, { "config", { { "name", "d" }, { "units", 3 } } } } } } } } };
    auto o = model_from_config<float>(old, test_factory);
    CHECK(o->count_params() == 18);
    auto bare = Sequential<float>::from_config(json::array({ json{ { "class_name", "Dense" }, { "config", { { "name", "d9" }, { "units", 1 }, { "batch_input_shape", { nullptr, 2 } } } } } }),
                                               test_factory);
    CHECK(bare->count_params() == 3);

    // Functional: Keras 3 form round trip.
    Functional<float> f(Input<float>({ 3 }, "inp"), { std::make_shared<TDense<float>>(4, "relu", nullptr, "f1"), std::make_shared<TDense<float>>(2, "linear", nullptr, "f2") },
                        "fun");
    const json fj = model_to_json(f);
    CHECK(fj["class_name"] == "Functional");
    CHECK(fj["config"]["input_layers"] == json::array({ json::array({ "inp", 0, 0 }) }));
    CHECK(fj["config"]["output_layers"] == json::array({ json::array({ "f2", 0, 0 }) }));
    CHECK(fj["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == json::array({ "f1", 0, 0 }));
    CHECK(fj["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["shape"] == json::array({ nullptr, 4 }));
    auto fb = model_from_config<float>(fj, test_factory);
    CHECK(model_to_json(*fb) == fj);
    CHECK(fb->summary_string(76).find("│ inp (InputLayer)") != std::string::npos);

    // tf.keras 2 functional form (nested-list inbound nodes, class "Model").
    json legacy = json::parse(R"({"class_name": "Model", "config": {"name": "m2", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "config": {"batch_input_shape": [null, 4], "name": "input_1"}, "inbound_nodes": []},
        {"class_name": "Dense", "name": "dense_1", "config": {"name": "dense_1", "units": 3}, "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Dense", "name": "dense_2", "config": {"name": "dense_2", "units": 1}, "inbound_nodes": [[["dense_1", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_2", 0, 0]]}})");
    auto lm = model_from_config<float>(legacy, test_factory);
    CHECK(lm->count_params() == 4 * 3 + 3 + 3 + 1);
    CHECK(lm->layers().size() == 2);

    // A branch that feeds no output: the layer is made, the model leaves it out (Keras).
    json branch = legacy;
    branch["config"]["layers"].push_back(json::parse(
        R"({"class_name": "Dense", "name": "side", "config": {"name": "side", "units": 1}, "inbound_nodes": [[["dense_1", 0, 0, {}]]]})"));
    CHECK(model_from_config<float>(branch, test_factory)->layers().size() == 2);
    // A layer the factory does not know is the factory's error.
    json merge = legacy;
    merge["config"]["layers"].push_back(json::parse(
        R"({"class_name": "Add", "name": "add", "config": {"name": "add"}, "inbound_nodes": [[["dense_1", 0, 0, {}], ["dense_2", 0, 0, {}]]]})"));
    CHECK_THROWS_AS(model_from_config<float>(merge, test_factory), KeyError);
    CHECK_THROWS_AS(model_from_config<float>(json{ { "class_name", "Graph" }, { "config", json::object() } }, test_factory),
                    KeyError);
}

TEST_CASE("model: errors name what went wrong")
{
    Sequential<float> m("e");
    m.add(std::make_shared<TDense<float>>(3, "softmax", nullptr, "probs"));
    m.build({ -1, 4 });
    const array_t<float> x = xt::ones<float>({ 5, 4 }), y = arr<float>({ 0, 1, 2, 1, 0 }, { 5 });
    CHECK_THROWS_WITH_AS(m.fit(x, y), "You must call `compile()` before using the model.", RuntimeError);
    CHECK_THROWS_AS(m.evaluate(x, y), RuntimeError);
    CHECK_THROWS_AS(m.train_on_batch(x, y), RuntimeError);
    m.compile(std::make_shared<PlainSGD<float>>(), "sparse_categorical_crossentropy", { "accuracy" });
    FitOptions<float> quiet;
    quiet.verbose = 0;
    CHECK_THROWS_WITH_AS(m.fit(x, arr<float>({ 0, 1, 2, 1 }, { 4 }), quiet),
                         "Data cardinality is ambiguous. Make sure all arrays contain the same number of samples.'x' "
                         "sizes: 5\n'y' sizes: 4\n",
                         ValueError);
    const std::string shape_msg = contains_msg([&] { m.fit(xt::ones<float>({ 5, 7 }), y, quiet); });
    CHECK(shape_msg.find("\"e\"") != std::string::npos);
    CHECK(shape_msg.find("(None, 4)") != std::string::npos);
    CHECK(shape_msg.find("(5, 7)") != std::string::npos);
    CHECK_THROWS_AS(m.fit(xt::ones<float>({ 5, 7 }), y, quiet), ShapeError);
    const std::string label_msg = contains_msg([&] { m.fit(x, arr<float>({ 0, 1, 3, 1, 0 }, { 5 }), quiet); });
    CHECK(label_msg.find("label 3") != std::string::npos);
    CHECK_THROWS_AS(m.fit(x, arr<float>({ 0, 1, 3, 1, 0 }, { 5 }), quiet), ValueError);
    FitOptions<float> split = quiet;
    split.validation_split = 0.1; // floor(5 * 0.9) = 4 train, 1 validation: fine
    CHECK_NOTHROW(m.fit(x, y, split));
    split.validation_split = 0.01; // floor(5 * 0.99) = 4 ... still fine; 1 sample cannot be split
    CHECK_THROWS_AS(m.fit(arr<float>({ 1, 1, 1, 1 }, { 1, 4 }), arr<float>({ 0 }, { 1 }), split), ValueError);
    FitOptions<float> both = quiet;
    both.sample_weight = xt::ones<float>({ 5 });
    both.class_weight = { { 0, 2.0 } };
    CHECK_THROWS_AS(m.fit(x, y, both), ValueError);
    FitOptions<float> bad_sw = quiet;
    bad_sw.sample_weight = xt::ones<float>({ 3 });
    CHECK_THROWS_AS(m.fit(x, y, bad_sw), ValueError);
    CHECK_THROWS_AS(m.compile(std::make_shared<PlainSGD<float>>(), "mean_cubed_error"), KeyError);
    // A compile that fails leaves the model as it was (load_model warns "loaded uncompiled" and
    // goes on with the model, so a half-applied compile would look compiled with a fresh optimizer).
    const auto optimizer_before = m.optimizer();
    const auto loss_before = m.loss();
    CHECK_THROWS_AS(m.compile(std::make_shared<PlainSGD<float>>(), "mse", { "precision_at_nowhere" }), KeyError);
    CHECK(m.optimizer() == optimizer_before);
    CHECK(m.loss() == loss_before);
}

TEST_CASE("losses: Loss objects by Keras names and configs")
{
    auto l = get_loss<float>("sparse_categorical_crossentropy");
    CHECK(l->class_name() == "SparseCategoricalCrossentropy");
    CHECK(l->sparse_labels());
    CHECK(l->get_config() == json{ { "name", "sparse_categorical_crossentropy" },
                                   { "reduction", "sum_over_batch_size" },
                                   { "from_logits", false },
                                   { "ignore_class", nullptr } });
    auto c = get_loss<float>(json{ { "class_name", "CategoricalCrossentropy" },
                                   { "config", { { "from_logits", true }, { "label_smoothing", 0.1 }, { "reduction", "auto" } } } });
    CHECK(c->reduction() == "sum_over_batch_size");
    CHECK(c->get_config()["from_logits"] == true);
    CHECK(get_loss<float>("mse")->class_name() == "MeanSquaredError");
    CHECK(get_loss<float>(json{ { "class_name", "function" }, { "config", "mae" } })->class_name() == "MeanAbsoluteError");
    CHECK(serialize_loss(*get_loss<float>("huber"))["config"]["delta"] == 1.0);
    CHECK_THROWS_AS(get_loss<float>(json{ { "class_name", "SparseCategoricalCrossentropy" }, { "config", { { "ignore_class", 0 } } } }),
                    NotImplementedError);

    // Label smoothing: y -> y (1 - s) + s / classes, then the plain loss.
    CategoricalCrossentropy<double> smooth(false, 0.2), plain;
    const Tensor<double> yt(arr<double>({ 0, 1, 0, 1, 0, 0 }, { 2, 3 })), yp(arr<double>({ 0.2, 0.5, 0.3, 0.6, 0.3, 0.1 }, { 2, 3 }));
    const Tensor<double> ys(arr<double>({ 0.2 / 3, 0.8 + 0.2 / 3, 0.2 / 3, 0.8 + 0.2 / 3, 0.2 / 3, 0.2 / 3 }, { 2, 3 }));
    CHECK(smooth(yt, yp).item() == doctest::Approx(plain(ys, yp).item()));
    BinaryCrossentropy<double> bs(false, 0.5), bp;
    const Tensor<double> b1(arr<double>({ 1, 0 }, { 2, 1 })), bpred(arr<double>({ 0.7, 0.2 }, { 2, 1 }));
    CHECK(bs(b1, bpred).item() == doctest::Approx(bp(Tensor<double>(arr<double>({ 0.75, 0.25 }, { 2, 1 })), bpred).item()));
}

TEST_CASE("tape: gradient hands its arrays over, and a source listed twice gets the gradient twice")
{
    // The train step relies on GradientTape::gradient moving its accumulators out (no copy of
    // each weight's gradient); a repeated source must still get a full copy each time.
    Variable<double> w("w", arr<double>({ 1, 2, 3 }, { 3 }));
    GradientTape<double> tape;
    Tensor<double> loss = sum(square(w.tensor()));
    const auto g = tape.gradient(loss, std::vector<Tensor<double>>{ w.tensor(), w.tensor() });
    REQUIRE(g.size() == 2);
    CHECK(g[0].value() == arr<double>({ 2, 4, 6 }, { 3 }));
    CHECK(g[1].value() == arr<double>({ 2, 4, 6 }, { 3 }));
}

// ---- fit's arguments ---------------------------------------------------------------------------------

namespace {

array_t<float> rows(const array_t<float>& a, std::size_t begin, std::size_t end)
{
    if (a.dimension() == 1)
        return xt::view(a, xt::range(begin, end));
    return xt::view(a, xt::range(begin, end), xt::all());
}

/// Two TDense layers (seeded from the global seed), compiled with PlainSGD and `loss`.
std::shared_ptr<Sequential<float>> small_classifier(std::uint64_t seed, LossSpec<float> loss = LossSpec<float>(
                                                                            "sparse_categorical_crossentropy"))
{
    set_random_seed(seed);
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<TDense<float>>(8, "tanh"));
    m->add(std::make_shared<TDense<float>>(3, "softmax"));
    m->build({ -1, 5 });
    m->compile(std::make_shared<PlainSGD<float>>(0.3), std::move(loss), { "accuracy" });
    return m;
}

FitOptions<float> quiet_fit(int epochs, std::size_t batch_size, bool shuffle)
{
    FitOptions<float> fo;
    fo.epochs = epochs;
    fo.batch_size = batch_size;
    fo.shuffle = shuffle;
    fo.verbose = 0;
    return fo;
}

EvaluateOptions<float> quiet_eval(std::size_t batch_size, std::optional<array_t<float>> sw = std::nullopt)
{
    EvaluateOptions<float> eo;
    eo.batch_size = batch_size;
    eo.verbose = 0;
    eo.sample_weight = std::move(sw);
    return eo;
}

void check_same_weights(const Model<float>& a, const Model<float>& b)
{
    const auto wa = a.get_weights(), wb = b.get_weights();
    REQUIRE(wa.size() == wb.size());
    for (std::size_t i = 0; i < wa.size(); ++i) {
        CAPTURE(i);
        CHECK(wa[i] == wb[i]);
    }
}

} // namespace

TEST_CASE("fit: validation_data gives val_* equal to evaluate on that data (weighted or not)")
{
    array_t<float> x, y, xv, yv;
    blobs<float>(60, 5, 3, 8, x, y);
    blobs<float>(21, 5, 3, 9, xv, yv);
    array_t<float> swv = array_t<float>::from_shape({ 21 });
    for (std::size_t i = 0; i < 21; ++i)
        swv(i) = static_cast<float>(0.25 * static_cast<double>(i % 5));
    for (const bool weighted : { false, true }) {
        CAPTURE(weighted);
        auto m = small_classifier(5);
        FitOptions<float> fo = quiet_fit(3, 8, true);
        fo.validation_data = ValidationData<float>{ xv, yv, weighted ? std::optional<array_t<float>>(swv) : std::nullopt };
        fo.validation_split = 0.5; // ignored: validation_data wins, as in Keras
        auto h = m->fit(x, y, fo);
        REQUIRE(h->history.count("val_loss"));
        CHECK(h->history["val_loss"].size() == 3);
        // The last epoch's validation ran on the final weights, in batches of batch_size.
        const Logs v = m->evaluate(xv, yv, quiet_eval(8, weighted ? std::optional<array_t<float>>(swv) : std::nullopt));
        CHECK(h->history["val_loss"].back() == v.at("loss"));
        CHECK(h->history["val_accuracy"].back() == v.at("accuracy"));
        // All 60 samples trained (no split taken): the same run without validation gives the same weights.
        auto plain = small_classifier(5);
        plain->fit(x, y, quiet_fit(3, 8, true));
        check_same_weights(*m, *plain);
    }
    const Logs unweighted = small_classifier(5)->evaluate(xv, yv, quiet_eval(8));
    const Logs weighted = small_classifier(5)->evaluate(xv, yv, quiet_eval(8, swv));
    CHECK(unweighted.at("loss") != weighted.at("loss"));
}

TEST_CASE("fit: a zero sample weight removes the sample; weights follow the shuffle and the split")
{
    array_t<float> x, y;
    blobs<float>(40, 5, 3, 12, x, y);

    SUBCASE("sum_over_batch_size counts a zero-weighted sample in the divisor, as Keras")
    {
        auto m = small_classifier(1);
        array_t<float> sw = xt::ones<float>({ 4 });
        sw(3) = 0;
        const double with_zero = m->test_on_batch(rows(x, 0, 4), rows(y, 0, 4), &sw).at("loss");
        m->reset_metrics();
        const double dropped = m->test_on_batch(rows(x, 0, 3), rows(y, 0, 3)).at("loss");
        CHECK(with_zero * 4 == doctest::Approx(dropped * 3).epsilon(1e-6));
    }

    SUBCASE("with mean_with_sample_weight, fitting a zero-weighted sample equals fitting without it")
    {
        // Batches of 4 without shuffling: the zero-weighted last sample shares the last batch
        // with samples 36..38, exactly the last batch of the 39-sample run.
        auto loss = std::make_shared<SparseCategoricalCrossentropy<float>>(false, "sparse_categorical_crossentropy",
                                                                           "mean_with_sample_weight");
        auto a = small_classifier(2, loss), b = small_classifier(2, loss);
        FitOptions<float> fo = quiet_fit(3, 4, false);
        array_t<float> sw = xt::ones<float>({ 40 });
        sw(39) = 0;
        fo.sample_weight = sw; // viewed, not copied
        const auto ha = a->fit(x, y, fo);
        const auto hb = b->fit(rows(x, 0, 39), rows(y, 0, 39), quiet_fit(3, 4, false));
        const auto wa = a->get_weights(), wb = b->get_weights();
        for (std::size_t i = 0; i < wa.size(); ++i)
            for (std::size_t k = 0; k < wa[i].size(); ++k)
                CHECK(wa[i].data()[k] == doctest::Approx(wb[i].data()[k]).epsilon(1e-5));
        // The epoch loss weighs batches by their size (4 vs 3 in the last), so it differs; the
        // weights do not.
        CHECK(ha->history["loss"].size() == 3);
    }

    SUBCASE("shuffled: zero-weighted samples may hold anything, bit for bit")
    {
        // If the weights did not move with their samples through the permutation, garbage
        // samples would get weight and change the result.
        array_t<float> sw = array_t<float>::from_shape({ 40 });
        array_t<float> xg = x, yg = y;
        for (std::size_t i = 0; i < 40; ++i) {
            sw(i) = i % 3 == 1 ? 0.0f : static_cast<float>(0.5 + 0.1 * static_cast<double>(i % 7));
            if (sw(i) == 0) {
                for (std::size_t j = 0; j < 5; ++j)
                    xg(i, j) = -3.0f * x(i, j) + 2.0f;
                yg(i) = static_cast<float>((static_cast<int>(y(i)) + 1) % 3);
            }
        }
        auto a = small_classifier(3), b = small_classifier(3);
        FitOptions<float> fo = quiet_fit(4, 6, true);
        fo.sample_weight = sw;
        set_random_seed(77);
        const auto ha = a->fit(x, y, fo);
        set_random_seed(77);
        const auto hb = b->fit(xg, yg, fo);
        check_same_weights(*a, *b);
        CHECK(ha->history["loss"] == hb->history["loss"]);
        // Without the weights the garbage matters.
        auto c = small_classifier(3);
        set_random_seed(77);
        c->fit(xg, yg, quiet_fit(4, 6, true));
        CHECK(c->get_weights()[0] != a->get_weights()[0]);
    }

    SUBCASE("validation_split takes the last samples with their weights")
    {
        array_t<float> sw = array_t<float>::from_shape({ 40 });
        for (std::size_t i = 0; i < 40; ++i)
            sw(i) = static_cast<float>(0.2 + 0.15 * static_cast<double>(i % 6));
        auto a = small_classifier(4), b = small_classifier(4);
        FitOptions<float> fa = quiet_fit(3, 7, true);
        fa.sample_weight = sw;
        fa.validation_split = 0.25; // samples 30..39
        set_random_seed(91);
        const auto ha = a->fit(x, y, fa);
        FitOptions<float> fb = quiet_fit(3, 7, true);
        fb.sample_weight = rows(sw, 0, 30);
        fb.validation_data = ValidationData<float>{ rows(x, 30, 40), rows(y, 30, 40), rows(sw, 30, 40) };
        set_random_seed(91);
        const auto hb = b->fit(rows(x, 0, 30), rows(y, 0, 30), fb);
        check_same_weights(*a, *b);
        CHECK(ha->history == hb->history);
        const Logs v = a->evaluate(rows(x, 30, 40), rows(y, 30, 40), quiet_eval(7, rows(sw, 30, 40)));
        CHECK(ha->history["val_loss"].back() == v.at("loss"));
    }
}

TEST_CASE("fit: class_weight weighs the training samples only, as the matching sample weights")
{
    array_t<float> x, y;
    blobs<float>(48, 5, 3, 14, x, y);
    const std::map<int, double> cw{ { 0, 0.5 }, { 2, 3.0 } };
    const array_t<float> sw = class_weight_to_sample_weights(y, cw);
    auto a = small_classifier(6), b = small_classifier(6), c = small_classifier(6);
    FitOptions<float> fa = quiet_fit(3, 5, true);
    fa.class_weight = cw;
    fa.validation_split = 0.25; // samples 36..47, evaluated without weights
    FitOptions<float> fb = quiet_fit(3, 5, true);
    fb.sample_weight = sw;
    fb.validation_split = 0.25; // the split keeps the sample weights for validation
    set_random_seed(13);
    const auto ha = a->fit(x, y, fa);
    set_random_seed(13);
    const auto hb = b->fit(x, y, fb);
    check_same_weights(*a, *b);
    CHECK(ha->history["loss"] == hb->history["loss"]);
    const array_t<float> xv = rows(x, 36, 48), yv = rows(y, 36, 48);
    CHECK(ha->history["val_loss"].back() == a->evaluate(xv, yv, quiet_eval(5)).at("loss"));
    CHECK(hb->history["val_loss"].back() == b->evaluate(xv, yv, quiet_eval(5, rows(sw, 36, 48))).at("loss"));
    // Class weights change training.
    set_random_seed(13);
    FitOptions<float> fc = quiet_fit(3, 5, true);
    fc.validation_split = 0.25;
    c->fit(x, y, fc);
    CHECK(c->get_weights()[0] != a->get_weights()[0]);
}

// ---- add_loss ----------------------------------------------------------------------------------------

namespace {

/// Passes x through and adds c * mean(x) as a loss.
class AddsLoss : public Layer<float> {
public:
    explicit AddsLoss(float c, std::string name = "")
        : Layer<float>("AddsLoss", std::move(name))
        , m_c(c)
    {
    }

protected:
    Tensor<float> call(const Tensor<float>& x, bool, const Tensor<float>&) override
    {
        this->add_loss(mul_scalar(mean(x), m_c));
        return x;
    }
    void check_input(const shape_t&) const override {}

private:
    float m_c;
};

/// Calls one inner layer twice (a shared layer); reports the inner layer's losses as its own
/// sublayer's, as a Keras layer tracking its sublayers does.
class Twice : public Layer<float> {
public:
    explicit Twice(LayerPtr<float> inner)
        : Layer<float>("Twice")
        , m_inner(std::move(inner))
    {
    }
    void collect_added_losses(std::vector<Tensor<float>>& out) const override
    {
        Layer<float>::collect_added_losses(out);
        m_inner->collect_added_losses(out);
    }
    void clear_losses() override
    {
        Layer<float>::clear_losses();
        m_inner->clear_losses();
    }

protected:
    Tensor<float> call(const Tensor<float>& x, bool training, const Tensor<float>& mask) override
    {
        Tensor<float> h = (*m_inner)(x, training, mask);
        return (*m_inner)(mul_scalar(h, 2.0f), training, mask);
    }
    void check_input(const shape_t&) const override {}

private:
    LayerPtr<float> m_inner;
};

} // namespace

TEST_CASE("add_loss: losses from call() enter the training loss and reset at each call, as in Keras 3")
{
    // pred = [1.5, 2.5, 3.5] (linear_model), mean 2.5; squared errors 0.25, 0.25, 2.25.
    const array_t<float> x = arr<float>({ 1, 0, 0, 1, 1, 1 }, { 3, 2 }), y = arr<float>({ 1, 2, 5 }, { 3, 1 });
    auto m = linear_model();
    auto adds = std::make_shared<AddsLoss>(0.1f);
    m->add(adds);
    m->compile(std::make_shared<PlainSGD<float>>(0.1), "mse");
    CHECK(m->test_on_batch(x, y).at("loss") == doctest::Approx(2.75 / 3 + 0.1 * 2.5));
    // One loss per call, not one more per call.
    for (int i = 0; i < 3; ++i)
        m->predict_on_batch(x);
    REQUIRE(m->losses().size() == 1);
    CHECK(m->losses()[0].item() == doctest::Approx(0.25));
    CHECK(adds->added_losses().size() == 1);
    // Called alone, the layer clears its own losses too.
    (*adds)(Tensor<float>(arr<float>({ 4, 6 }, { 2, 1 })));
    REQUIRE(adds->losses().size() == 1);
    CHECK(adds->losses()[0].item() == doctest::Approx(0.5));

    // The added loss is differentiated: d/db of mse + 0.1 * mean(pred) is mean(2 r) + 0.1.
    m->reset_metrics();
    m->train_on_batch(x, y);
    const double gb = 2.0 / 3 * (0.5 + 0.5 - 1.5) + 0.1;
    CHECK(m->get_weights()[1](0) == doctest::Approx(0.5 - 0.1 * gb));

    // Keras's order: added losses (the model's own, then its layers'), then weight penalties.
    auto r = linear_model(0.1);
    r->add(std::make_shared<AddsLoss>(1.0f));
    r->predict_on_batch(x);
    const auto ls = r->losses();
    REQUIRE(ls.size() == 2);
    CHECK(ls[0].item() == doctest::Approx(2.5));
    CHECK(ls[1].item() == doctest::Approx(0.1 * 5));
}

TEST_CASE("add_loss: a shared layer keeps each call's loss; outside a call, a loss lasts until the next call")
{
    const array_t<float> x = arr<float>({ 1, 3 }, { 2, 1 });
    auto inner = std::make_shared<AddsLoss>(1.0f);
    Sequential<float> m("shared");
    m.add(std::make_shared<Twice>(inner));
    for (int i = 0; i < 2; ++i) {
        m.predict_on_batch(x);
        const auto ls = m.losses();
        REQUIRE(ls.size() == 2); // both inner calls (means 2 and 4), not cleared by the second one
        CHECK(ls[0].item() == doctest::Approx(2));
        CHECK(ls[1].item() == doctest::Approx(4));
    }

    // Keras 3 lets add_loss run outside call(): the loss is reported until the next outermost
    // call of the layer or of a model containing it clears it, so fit never trains on it.
    auto lin = linear_model();
    lin->compile(std::make_shared<PlainSGD<float>>(0.1), "mse");
    const array_t<float> x2 = arr<float>({ 1, 0, 0, 1, 1, 1 }, { 3, 2 }), y2 = arr<float>({ 1, 2, 5 }, { 3, 1 });
    lin->add_loss(Tensor<float>(arr<float>({ 7 }, {})));
    lin->layers()[0]->add_loss(Tensor<float>(arr<float>({ 5 }, {})));
    REQUIRE(lin->losses().size() == 2);
    CHECK(lin->losses()[0].item() == 7);
    CHECK(lin->losses()[1].item() == 5);
    CHECK(lin->compute_loss(Tensor<float>(y2), Tensor<float>(arr<float>({ 1.5, 2.5, 3.5 }, { 3, 1 }))).item() ==
          doctest::Approx(2.75 / 3 + 12));
    CHECK(lin->test_on_batch(x2, y2).at("loss") == doctest::Approx(2.75 / 3));
    CHECK(lin->losses().empty());
    lin->add_loss(Tensor<float>(arr<float>({ 7 }, {})));
    lin->clear_losses();
    CHECK(lin->losses().empty());
    CHECK_THROWS_AS(lin->add_loss(Tensor<float>()), ValueError);
}

// ---- keras.Input -------------------------------------------------------------------------------------

TEST_CASE("Input: keras.Input starts a Sequential model or a Functional chain")
{
    reset_layer_names();
    auto in = Input<float>({ 3 });
    CHECK(in.layer()->class_name() == "InputLayer");
    CHECK(in.layer()->name() == "input_layer");
    CHECK(in.shape() == dims_t{ -1, 3 });
    CHECK(in.node_index() == 0);
    CHECK(in.tensor_index() == 0);
    CHECK(Input<float>({ 28, 28 }, 32, "images").shape() == dims_t{ 32, 28, 28 });
    CHECK(Input<float>({ 2 }, "named").layer()->name() == "named");
    CHECK(Input<double>({ 4 }, none_dim, "", "float64").layer()->get_config()["dtype"] == "float64");
    CHECK_THROWS_AS(Input<float>({ 4 }, none_dim, "", "float64"), ValueError);
    CHECK_THROWS_AS(Input<float>({ 0 }), ValueError);

    // Sequential([keras.Input((3,)), Dense(4), Dense(2)]): built at once, the input in the config.
    Sequential<float> s({ in, std::make_shared<TDense<float>>(4, "relu", nullptr, "h"),
                          std::make_shared<TDense<float>>(2, "linear", nullptr, "o") },
                        "seq_in");
    CHECK(s.built());
    CHECK(s.input_shape() == dims_t{ -1, 3 });
    CHECK(s.count_params() == 3 * 4 + 4 + 4 * 2 + 2);
    const json c = s.get_config();
    CHECK(c["layers"][0]["class_name"] == "InputLayer");
    CHECK(c["layers"][0]["config"]["name"] == "input_layer");
    CHECK(c["layers"][0]["config"]["batch_shape"] == json::array({ nullptr, 3 }));
    CHECK(s.predict_on_batch(xt::ones<float>({ 5, 3 })).shape() == std::vector<std::size_t>{ 5, 2 });
    CHECK_THROWS_AS(s.predict_on_batch(xt::ones<float>({ 5, 4 })), ShapeError);
    // No samples: Keras refuses, and there would be no output shape to return.
    CHECK_THROWS_WITH_AS(s.predict(array_t<float>::from_shape({ 0, 3 })), doctest::Contains("holds no samples"),
                         ValueError);
    CHECK_THROWS_AS(s.add(Input<float>({ 3 })), ValueError); // an input only first

    // keras.Model(inputs=keras.Input((3,), name="pixels"), outputs=...) for a chain.
    Functional<float> f(Input<float>({ 3 }, "pixels"),
                        { std::make_shared<TDense<float>>(2, "linear", nullptr, "f_out") }, "fun_in");
    CHECK(f.input_shape() == dims_t{ -1, 3 });
    CHECK(f.get_config()["input_layers"] == json::array({ json::array({ "pixels", 0, 0 }) }));
    CHECK(f.summary_string(76).find("│ pixels (InputLayer)") != std::string::npos);
    CHECK_THROWS_AS(Functional<float>(std::make_shared<TDense<float>>(2), {}), ValueError);
    CHECK_THROWS_AS(Functional<float>(LayerPtr<float>(), {}), ValueError);
}

// ---- real layers: a custom training loop against fit, thread-count independence -------------------

namespace {

/// Dense(L2 kernel penalty) -> BatchNormalization -> ReLU -> Dropout -> Dense(softmax), all
/// seeded from the global seed `seed`.
std::shared_ptr<Sequential<float>> real_mlp(std::uint64_t seed, long features, long hidden, long classes)
{
    set_random_seed(seed);
    DenseOptions<float> d;
    d.units = hidden;
    d.kernel_regularizer = std::make_shared<xtape::L2<float>>(1e-3);
    return std::make_shared<Sequential<float>>(std::vector<LayerPtr<float>>{
        Input<float>({ features }), std::make_shared<Dense<float>>(d), std::make_shared<BatchNormalization<float>>(),
        std::make_shared<ReLU<float>>(), std::make_shared<Dropout<float>>(0.25),
        std::make_shared<Dense<float>>(classes, "softmax") });
}

} // namespace

TEST_CASE("real layers: a GradientTape + apply_gradients loop reaches fit's weights (no shuffle)")
{
    array_t<float> x, y;
    blobs<float>(200, 12, 4, 21, x, y);
    const std::size_t batch = 32; // 7 batches, the last of 8
    const int epochs = 2;

    auto fitted = real_mlp(42, 12, 16, 4);
    fitted->compile(std::make_shared<Adam<float>>(0.01), "sparse_categorical_crossentropy");
    fitted->fit(x, y, quiet_fit(epochs, batch, /*shuffle=*/false));

    // Keras's "training loop from scratch", with the same layers, loss and optimizer.
    auto model = real_mlp(42, 12, 16, 4);
    Adam<float> optimizer(0.01);
    SparseCategoricalCrossentropy<float> loss_fn;
    for (int epoch = 0; epoch < epochs; ++epoch)
        for (std::size_t b = 0; b < 200; b += batch) {
            const std::size_t e = std::min<std::size_t>(b + batch, 200);
            const Tensor<float> xb(rows(x, b, e)), yb(rows(y, b, e));
            std::vector<Tensor<float>> grads;
            std::vector<Variable<float>> vars;
            {
                GradientTape<float> tape;
                Tensor<float> y_pred = (*model)(xb, /*training=*/true);
                Tensor<float> loss = loss_fn(yb, y_pred);
                for (const auto& extra : model->losses()) // the kernel's L2 penalty
                    loss = loss + extra;
                vars = model->trainable_weights();
                grads = tape.gradient(loss, vars);
            }
            optimizer.apply_gradients(grads, vars);
        }
    REQUIRE(model->losses().size() == 1);
    CHECK(optimizer.iterations() == fitted->optimizer()->iterations());
    // Every weight bit for bit, BatchNormalization's moving statistics included, and Adam's state.
    check_same_weights(*model, *fitted);
    const auto va = optimizer.variables(), vb = fitted->optimizer()->variables();
    REQUIRE(va.size() == vb.size());
    for (std::size_t i = 0; i < va.size(); ++i)
        CHECK(va[i].value() == vb[i].value());
}

TEST_CASE("real layers: Dense + BatchNormalization + Dropout + Adam, shuffled, bit-identical with 1 and 2 threads")
{
    array_t<float> x, y;
    blobs<float>(1024, 64, 10, 5, x, y);
    auto run = [&](int threads) {
        set_num_threads(threads);
        auto m = real_mlp(2024, 64, 256, 10); // (256 x 256) activations: the parallel kernels run
        m->compile(std::make_shared<Adam<float>>(), "sparse_categorical_crossentropy", { "accuracy" });
        FitOptions<float> fo = quiet_fit(2, 256, /*shuffle=*/true);
        fo.validation_split = 0.25;
        set_random_seed(7); // the shuffles
        auto h = m->fit(x, y, fo);
        return std::make_pair(m->get_weights(), h->history);
    };
    const auto one = run(1), two = run(2);
    set_num_threads(2);
    REQUIRE(one.first.size() == two.first.size());
    REQUIRE(one.first.size() == 8); // two Dense (kernel, bias), BN (gamma, beta, moving mean, variance)
    for (std::size_t i = 0; i < one.first.size(); ++i) {
        CAPTURE(i);
        CHECK(one.first[i] == two.first[i]);
    }
    CHECK(one.second == two.second);
    CHECK(one.second.at("loss").back() < one.second.at("loss").front());
}
