// Callbacks: the progress bar's text, History, EarlyStopping, CSVLogger, TerminateOnNaN,
// ReduceLROnPlateau, LearningRateScheduler and a user callback, inside real fit() runs.
// ctest-labels: sanitize
#include "framework/callbacks.hpp"
#include "framework/sequential.hpp"
#include "tests/model_helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace xtape;
using namespace xtape::testing;

namespace {

/// Redirects std::cout while alive.
struct CaptureCout {
    std::stringstream ss;
    std::streambuf* old;
    CaptureCout()
        : old(std::cout.rdbuf(ss.rdbuf()))
    {
    }
    ~CaptureCout() { std::cout.rdbuf(old); }
};

std::shared_ptr<Sequential<float>> small_model(double lr = 0.1)
{
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<TDense<float>>(8, "relu"));
    m->add(std::make_shared<TDense<float>>(3, "softmax"));
    m->compile(std::make_shared<PlainSGD<float>>(lr), "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

/// Puts scripted values under `key` into the epoch logs (runs before the callbacks after it)
/// and keeps a copy of the weights at each epoch end.
class Script : public Callback<float> {
public:
    Script(std::string key, std::vector<double> values)
        : m_key(std::move(key))
        , m_values(std::move(values))
    {
    }
    std::vector<std::vector<array_t<float>>> weights;
    void on_epoch_end(int epoch, Logs& logs) override
    {
        logs[m_key] = m_values.at(static_cast<std::size_t>(epoch));
        weights.push_back(model()->get_weights());
    }

private:
    std::string m_key;
    std::vector<double> m_values;
};

FitOptions<float> quiet(int epochs, std::vector<CallbackPtr<float>> cbs)
{
    FitOptions<float> fo;
    fo.epochs = epochs;
    fo.batch_size = 8;
    fo.verbose = 0;
    fo.callbacks = std::move(cbs);
    return fo;
}

std::string read_file(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("callbacks: python_float_repr writes floats as Python's repr")
{
    CHECK(python_float_repr(0.5) == "0.5");
    CHECK(python_float_repr(0.1) == "0.1");
    CHECK(python_float_repr(1.0 / 3) == "0.3333333333333333");
    CHECK(python_float_repr(static_cast<double>(0.1f)) == "0.10000000149011612");
    CHECK(python_float_repr(123.0) == "123.0");
    CHECK(python_float_repr(0.0) == "0.0");
    CHECK(python_float_repr(-2.5) == "-2.5");
    CHECK(python_float_repr(0.0001) == "0.0001");
    CHECK(python_float_repr(1e-5) == "1e-05");
    CHECK(python_float_repr(1.5e-7) == "1.5e-07");
    CHECK(python_float_repr(1e16) == "1e+16");
    CHECK(python_float_repr(1234567890123456.0) == "1234567890123456.0");
    CHECK(python_float_repr(12345678901234567890.0) == "1.2345678901234567e+19");
    CHECK(python_float_repr(std::nan("")) == "nan");
    CHECK(python_float_repr(-HUGE_VAL) == "-inf");
}

TEST_CASE("callbacks: Progbar text as Keras's, on a terminal and in a log file")
{
    double t = 100.0;
    auto clock = [&t] { return t; };
    {
        std::ostringstream os;
        Progbar p(10, 20, 1, 0.05, "step", &os, 0);
        p.set_clock(clock);
        t = 100.5;
        p.update(1, { { "loss", 0.9 } });
        t = 101.3;
        p.update(5, { { "loss", 0.5 } });
        CHECK(os.str().empty()); // plain lines: only the final one for a short run
        t = 102.3;
        p.update(10, { { "loss", 0.25 }, { "accuracy", 0.0001 } });
        CHECK(os.str() == "10/10 ━━━━━━━━━━━━━━━━━━━━ 2s 200ms/step - loss: 0.2500 - accuracy: 1.0000e-04\n");
    }
    {
        std::ostringstream os;
        t = 100.0;
        Progbar p(10, 20, 1, 0.05, "step", &os, 1);
        p.set_clock(clock);
        t = 100.5;
        p.update(1, { { "loss", 0.9 } });
        t = 101.5;
        os.str("");
        p.update(5, { { "loss", 0.5 } });
        // 0.25 s/step after the first step, ETA 5 steps; loss averaged over steps: (0.9 * 1 + 0.5 * 4) / 5.
        CHECK(os.str() == "\r\x1b[1m 5/10\x1b[0m \x1b[32m━━━━━━━━━━\x1b[0m\x1b[37m━━━━━━━━━━\x1b[0m \x1b[1m1s\x1b[0m "
                          "250ms/step - loss: 0.5800");
        t = 101.51; // within 0.05 s of the last update: not drawn
        os.str("");
        p.update(6, { { "loss", 0.5 } });
        CHECK(os.str().empty());
        t = 102.75;
        p.update(10, { { "loss", 0.25 } });
        CHECK(os.str() == "\r\x1b[1m10/10\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m3s\x1b[0m "
                          "250ms/step - loss: 0.2500\n");
    }
    {
        std::ostringstream os;
        t = 0;
        Progbar p(469, 20, 2, 0.05, "step", &os, 0);
        p.set_clock(clock);
        t = 0.01;
        p.update(1, { { "loss", 1.0 } });
        t = 2.81;
        p.update(469, { { "accuracy", 0.8123 }, { "loss", 0.5 } });
        CHECK(os.str() == "469/469 - 3s - 6ms/step - loss: 0.5000 - accuracy: 0.8123\n"); // first-seen order
    }
}

TEST_CASE("callbacks: ProgbarLogger inside fit prints epochs and one line each with verbose 2")
{
    set_random_seed(1);
    array_t<float> x, y;
    blobs<float>(40, 4, 3, 1, x, y);
    auto m = small_model();
    std::ostringstream os;
    auto bar = std::make_shared<ProgbarLogger<float>>(&os, 0);
    FitOptions<float> fo = quiet(2, { bar });
    fo.verbose = 2;
    fo.validation_split = 0.2;
    m->fit(x, y, fo);
    const std::string s = os.str();
    CHECK(s.rfind("Epoch 1/2\n4/4 - ", 0) == 0);
    CHECK(s.find("Epoch 2/2\n4/4 - ") != std::string::npos);
    // Keras's order: training metrics as first seen (sorted logs), then val_ ones.
    const auto a = s.find(" - accuracy: "), l = s.find(" - loss: "), va = s.find(" - val_accuracy: "),
               vl = s.find(" - val_loss: ");
    CHECK(a < l);
    CHECK(l < va);
    CHECK(va < vl);
    CHECK(std::count(s.begin(), s.end(), '\n') == 4);

    // verbose 1 without a terminal: plain lines; evaluate gets its own bar.
    std::ostringstream ev;
    auto bar2 = std::make_shared<ProgbarLogger<float>>(&ev, 0);
    m->evaluate(x, y, EvaluateOptions<float>{ 16, 1, std::nullopt, { bar2 } });
    CHECK(ev.str().rfind("3/3 ━━━━━━━━━━━━━━━━━━━━ ", 0) == 0);
    CHECK(ev.str().find(" - accuracy: ") != std::string::npos);

    // verbose 0 prints nothing at all.
    std::string printed;
    {
        CaptureCout cap;
        m->fit(x, y, quiet(1, {}));
        m->evaluate(x, y, EvaluateOptions<float>{ 16, 0, std::nullopt, {} });
        m->predict(x, PredictOptions<float>{ 16, 0, {} });
        printed = cap.ss.str();
    }
    CHECK(printed.empty());
}

TEST_CASE("callbacks: a user callback sees every hook, the model and the params, and can stop training")
{
    struct Spy : Callback<float> {
        std::vector<std::string> calls;
        Model<float>* seen = nullptr;
        CallbackParams p;
        int batches = 0;
        void on_train_begin(Logs&) override
        {
            calls.push_back("train_begin");
            seen = model();
            p = params();
        }
        void on_train_end(Logs&) override { calls.push_back("train_end"); }
        void on_epoch_begin(int e, Logs&) override { calls.push_back("epoch_begin " + std::to_string(e)); }
        void on_epoch_end(int e, Logs& logs) override
        {
            calls.push_back("epoch_end " + std::to_string(e) + (logs.count("val_loss") ? " val" : ""));
            if (e == 1)
                model()->set_stop_training(true);
        }
        void on_train_batch_end(int b, Logs& logs) override
        {
            CHECK(logs.count("loss") == 1);
            CHECK(logs.count("accuracy") == 1);
            CHECK(b == batches % 4);
            ++batches;
        }
        void on_test_begin(Logs&) override { calls.push_back("test_begin"); }
        void on_test_end(Logs& logs) override { calls.push_back("test_end " + std::to_string(logs.size())); }
        void on_predict_end(Logs&) override { calls.push_back("predict_end"); }
    };
    set_random_seed(2);
    array_t<float> x, y;
    blobs<float>(40, 4, 3, 1, x, y);
    auto m = small_model();
    auto spy = std::make_shared<Spy>();
    FitOptions<float> fo = quiet(5, { spy });
    fo.validation_split = 0.2;
    auto h = m->fit(x, y, fo);
    CHECK(spy->seen == m.get());
    CHECK(spy->p.epochs == 5);
    CHECK(spy->p.steps == 4);
    CHECK(spy->p.verbose == 0);
    CHECK(spy->batches == 8);
    CHECK(h->epoch == std::vector<int>{ 0, 1 });
    CHECK(spy->calls == std::vector<std::string>{ "train_begin", "epoch_begin 0", "test_begin", "test_end 2",
                                                  "epoch_end 0 val", "epoch_begin 1", "test_begin", "test_end 2",
                                                  "epoch_end 1 val", "train_end" });
    spy->calls.clear();
    m->predict(x, PredictOptions<float>{ 32, 0, { spy } });
    CHECK(spy->calls == std::vector<std::string>{ "predict_end" });
}

TEST_CASE("callbacks: EarlyStopping with patience, restore_best_weights, baseline and modes")
{
    set_random_seed(3);
    array_t<float> x, y;
    blobs<float>(32, 4, 3, 1, x, y);
    {
        auto m = small_model();
        auto script = std::make_shared<Script>("val_loss", std::vector<double>{ 1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 });
        EarlyStoppingOptions eo;
        eo.patience = 2;
        eo.restore_best_weights = true;
        auto es = std::make_shared<EarlyStopping<float>>(eo);
        auto h = m->fit(x, y, quiet(7, { script, es }));
        CHECK(h->epoch.size() == 4); // best at epoch 1, two epochs without improvement, stop after epoch 3
        CHECK(es->stopped_epoch() == 3);
        CHECK(es->best_epoch() == 1);
        CHECK(es->best() == 0.5);
        const auto w = m->get_weights();
        for (std::size_t i = 0; i < w.size(); ++i)
            CHECK(w[i] == script->weights[1][i]);
        CHECK(w[0] != script->weights[3][0]);
    }
    {
        // min_delta: 0.95 -> 0.9 is not an improvement by more than 0.1.
        auto m = small_model();
        auto script = std::make_shared<Script>("val_loss", std::vector<double>{ 1.0, 0.95, 0.9, 0.85, 0.5 });
        EarlyStoppingOptions eo;
        eo.patience = 2;
        eo.min_delta = 0.1;
        auto es = std::make_shared<EarlyStopping<float>>(eo);
        auto h = m->fit(x, y, quiet(5, { script, es }));
        CHECK(h->epoch.size() == 3);
    }
    {
        // A baseline never beaten: waiting is not reset by improvements; the weights of the
        // best epoch are restored although it never beat the baseline.
        auto m = small_model();
        auto script = std::make_shared<Script>("val_loss", std::vector<double>{ 1.0, 0.9, 0.8, 0.85, 0.9 });
        EarlyStoppingOptions eo;
        eo.patience = 3;
        eo.baseline = 0.1;
        eo.restore_best_weights = true;
        auto es = std::make_shared<EarlyStopping<float>>(eo);
        auto h = m->fit(x, y, quiet(5, { script, es }));
        CHECK(h->epoch.size() == 4);
        CHECK(m->get_weights()[0] == script->weights[2][0]);
    }
    {
        // mode auto on an accuracy: maximized; start_from_epoch skips the warm-up.
        auto m = small_model();
        auto script = std::make_shared<Script>("val_accuracy", std::vector<double>{ 0.1, 0.2, 0.9, 0.8, 0.7, 0.6 });
        EarlyStoppingOptions eo;
        eo.monitor = "val_accuracy";
        eo.patience = 1;
        eo.start_from_epoch = 2;
        auto es = std::make_shared<EarlyStopping<float>>(eo);
        auto h = m->fit(x, y, quiet(6, { script, es }));
        CHECK(h->epoch.size() == 4);
        CHECK(es->best() == 0.9);
    }
    {
        auto m = small_model();
        EarlyStoppingOptions eo;
        eo.monitor = "val_mystery";
        auto script = std::make_shared<Script>("val_mystery", std::vector<double>{ 1, 2 });
        CHECK_THROWS_AS(m->fit(x, y, quiet(2, { script, std::make_shared<EarlyStopping<float>>(eo) })), ValueError);
        eo.mode = "max";
        auto h = m->fit(x, y, quiet(2, { script, std::make_shared<EarlyStopping<float>>(eo) }));
        CHECK(h->epoch.size() == 2);
    }
}

TEST_CASE("callbacks: CSVLogger writes Keras's columns, Python floats, and appends")
{
    set_random_seed(4);
    array_t<float> x, y;
    blobs<float>(30, 4, 3, 1, x, y);
    auto m = small_model();
    const std::string path = "test_callbacks_log.csv";
    std::remove(path.c_str());
    FitOptions<float> fo = quiet(2, { std::make_shared<CSVLogger<float>>(path) });
    fo.validation_split = 0.2;
    auto h = m->fit(x, y, fo);
    std::string expected = "epoch,accuracy,loss,val_accuracy,val_loss\r\n";
    for (int e = 0; e < 2; ++e)
        expected += std::to_string(e) + "," + python_float_repr(h->history["accuracy"][e]) + "," +
                    python_float_repr(h->history["loss"][e]) + "," + python_float_repr(h->history["val_accuracy"][e]) +
                    "," + python_float_repr(h->history["val_loss"][e]) + "\r\n";
    CHECK(read_file(path) == expected);

    // append: no second header; another separator.
    fo.callbacks = { std::make_shared<CSVLogger<float>>(path, ",", true) };
    fo.epochs = 1;
    h = m->fit(x, y, fo);
    const std::string appended = read_file(path);
    CHECK(appended.rfind(expected, 0) == 0);
    CHECK(appended.substr(expected.size()).rfind("0," + python_float_repr(h->history["accuracy"][0]) + ",", 0) == 0);
    CHECK(std::count(appended.begin(), appended.end(), '\n') == 4);

    const std::string path2 = "test_callbacks_log2.csv";
    fo.callbacks = { std::make_shared<CSVLogger<float>>(path2, ";", true) };
    fo.validation_split = 0;
    std::remove(path2.c_str());
    m->fit(x, y, fo);
    CHECK(read_file(path2).rfind("epoch;accuracy;loss\r\n0;", 0) == 0);
    std::remove(path.c_str());
    std::remove(path2.c_str());
    fo.callbacks = { std::make_shared<CSVLogger<float>>("/nonexistent-dir/x.csv") };
    CHECK_THROWS_AS(m->fit(x, y, fo), IOError);
}

TEST_CASE("callbacks: TerminateOnNaN stops at the bad batch and keeps the weights from before it")
{
    set_random_seed(5);
    array_t<float> x, y;
    blobs<float>(32, 4, 3, 1, x, y);
    x(20, 1) = std::numeric_limits<float>::quiet_NaN(); // in batch 2 (batch size 8, no shuffle)
    struct Before : Callback<float> {
        std::vector<array_t<float>> at_batch2;
        void on_train_batch_begin(int b, Logs&) override
        {
            if (b == 2)
                at_batch2 = model()->get_weights();
        }
    };
    auto before = std::make_shared<Before>();
    auto tn = std::make_shared<TerminateOnNaN<float>>();
    // tanh and softmax carry the NaN into the loss.
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<TDense<float>>(8, "tanh"));
    m->add(std::make_shared<TDense<float>>(3, "softmax"));
    m->compile(std::make_shared<PlainSGD<float>>(0.1), "sparse_categorical_crossentropy", { "accuracy" });
    FitOptions<float> fo = quiet(3, { before, tn });
    fo.shuffle = false;
    std::shared_ptr<History<float>> h;
    std::string printed;
    {
        CaptureCout cap;
        h = m->fit(x, y, fo);
        printed = cap.ss.str();
    }
    CHECK(printed == "Batch 2: Invalid loss, terminating training\n");
    CHECK(tn->terminated());
    CHECK(h->epoch.size() == 1);
    CHECK(std::isnan(h->history["loss"][0]));
    const auto w = m->get_weights();
    REQUIRE(w.size() == before->at_batch2.size());
    for (std::size_t i = 0; i < w.size(); ++i) {
        CHECK(w[i] == before->at_batch2[i]);
        CHECK(std::all_of(w[i].begin(), w[i].end(), [](float v) { return std::isfinite(v); }));
    }
}

TEST_CASE("callbacks: TerminateOnNaN also puts back the optimizer's state, so training can go on")
{
    set_random_seed(6);
    array_t<float> x, y;
    blobs<float>(32, 4, 3, 1, x, y);
    array_t<float> bad = x;
    bad(20, 1) = std::numeric_limits<float>::quiet_NaN(); // batch 2 of 4
    struct Before : Callback<float> {
        std::vector<array_t<float>> opt_at_batch2;
        void on_train_batch_begin(int b, Logs&) override
        {
            if (b == 2)
                for (const auto& v : model()->optimizer()->variables())
                    opt_at_batch2.push_back(v.value());
        }
    };
    auto before = std::make_shared<Before>();
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<TDense<float>>(8, "tanh"));
    m->add(std::make_shared<TDense<float>>(3, "softmax"));
    m->compile(get_optimizer<float>(json("adam")), "sparse_categorical_crossentropy", {});
    FitOptions<float> fo = quiet(1, { before, std::make_shared<TerminateOnNaN<float>>() });
    fo.shuffle = false;
    {
        CaptureCout cap;
        m->fit(bad, y, fo);
    }
    CHECK(m->optimizer()->iterations() == 2);
    const auto state = m->optimizer()->variables();
    REQUIRE(state.size() == before->opt_at_batch2.size());
    REQUIRE(state.size() > 1); // iterations, then Adam's moments
    for (std::size_t i = 0; i < state.size(); ++i)
        CHECK(state[i].value() == before->opt_at_batch2[i]);
    // Training on clean data goes on from there with finite numbers.
    FitOptions<float> clean = quiet(2, {});
    const auto h = m->fit(x, y, clean);
    for (double l : h->history["loss"])
        CHECK(std::isfinite(l));
}

TEST_CASE("callbacks: ReduceLROnPlateau and LearningRateScheduler change the optimizer's learning rate")
{
    set_random_seed(6);
    array_t<float> x, y;
    blobs<float>(16, 4, 3, 1, x, y);
    {
        auto m = small_model(0.1);
        auto flat = std::make_shared<Script>("val_loss", std::vector<double>(12, 1.0));
        ReduceLROnPlateauOptions o;
        o.patience = 2;
        o.factor = 0.5;
        o.min_lr = 0.01;
        auto h = m->fit(x, y, quiet(12, { flat, std::make_shared<ReduceLROnPlateau<float>>(o) }));
        // Logged before the epoch's reduction: 0.1 until epoch 2 reduces it, then every 2 epochs.
        const std::vector<double> lr = h->history["learning_rate"];
        const std::vector<double> want{ 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.01, 0.01, 0.01 };
        REQUIRE(lr.size() == want.size());
        for (std::size_t i = 0; i < lr.size(); ++i)
            CHECK(lr[i] == doctest::Approx(want[i]));
        CHECK(m->optimizer()->learning_rate() == doctest::Approx(0.01));
    }
    {
        // cooldown: after a reduction, `cooldown` epochs pass before waiting starts again.
        auto m = small_model(0.1);
        auto flat = std::make_shared<Script>("val_loss", std::vector<double>(7, 1.0));
        ReduceLROnPlateauOptions o;
        o.patience = 1;
        o.factor = 0.1;
        o.cooldown = 2;
        auto h = m->fit(x, y, quiet(7, { flat, std::make_shared<ReduceLROnPlateau<float>>(o) }));
        const std::vector<double> want{ 0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.0001 };
        for (std::size_t i = 0; i < want.size(); ++i)
            CHECK(h->history["learning_rate"][i] == doctest::Approx(want[i]));
    }
    CHECK_THROWS_AS(ReduceLROnPlateau<float>(ReduceLROnPlateauOptions{ "val_loss", 1.0 }), ValueError);
    {
        auto m = small_model(0.1);
        auto sched = std::make_shared<LearningRateScheduler<float>>(
            [](int epoch, double lr) { return epoch < 2 ? lr : lr * 0.5; });
        auto h = m->fit(x, y, quiet(4, { sched }));
        const std::vector<double> want{ 0.1, 0.1, 0.05, 0.025 };
        for (std::size_t i = 0; i < want.size(); ++i)
            CHECK(h->history["learning_rate"][i] == doctest::Approx(want[i]));
        CHECK(m->optimizer()->learning_rate() == doctest::Approx(0.025));
        auto loud = std::make_shared<LearningRateScheduler<float>>([](int, double) { return 0.5; }, 1);
        std::string printed;
        {
            CaptureCout cap;
            m->fit(x, y, quiet(1, { loud }));
            printed = cap.ss.str();
        }
        CHECK(printed == "\nEpoch 1: LearningRateScheduler setting learning rate to 0.5.\n");
    }
}
