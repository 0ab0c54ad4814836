// ctest-labels: sanitize
// ModelCheckpoint: Python-style file name formatting, save_best_only, weights only, save_freq.
#include "saving/model_checkpoint.hpp"

#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving/keras_h5.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>

using namespace xtape;
using xtape::testing::expect_error;
using xtape::testing::TempDir;
namespace fs = std::filesystem;

TEST_CASE("model_checkpoint: file names formatted as Python's str.format")
{
    const Logs logs{ { "loss", 0.123456789 }, { "val_loss", 0.5 }, { "accuracy", 0.875 }, { "val_accuracy", 2.0 } };
    CHECK(format_checkpoint_path("m-{epoch:02d}.h5", 3, std::nullopt, logs) == "m-03.h5");
    CHECK(format_checkpoint_path("m-{epoch}.h5", 12, std::nullopt, logs) == "m-12.h5");
    CHECK(format_checkpoint_path("m-{epoch:03d}-{val_loss:.2f}.h5", 7, std::nullopt, logs) == "m-007-0.50.h5");
    CHECK(format_checkpoint_path("{loss}", 1, std::nullopt, logs) == "0.123456789");
    CHECK(format_checkpoint_path("{val_accuracy}", 1, std::nullopt, logs) == "2.0");
    CHECK(format_checkpoint_path("{loss:.3e}", 1, std::nullopt, logs) == "1.235e-01");
    CHECK(format_checkpoint_path("{accuracy:.1%}", 1, std::nullopt, logs) == "87.5%");
    CHECK(format_checkpoint_path("{accuracy:>8.3f}|{epoch:<4d}|{epoch:^5}|{epoch:+d}", 2, std::nullopt, logs) ==
          "   0.875|2   |  2  |+2");
    CHECK(format_checkpoint_path("{loss:.3}", 1, std::nullopt, logs) == "0.123");
    CHECK(format_checkpoint_path("{{literal}}-{epoch}", 1, std::nullopt, logs) == "{literal}-1");
    CHECK(format_checkpoint_path("b{batch:04d}", 1, 25, logs) == "b0025");
    CHECK(format_checkpoint_path("{epoch:.1f}", 4, std::nullopt, logs) == "4.0");
    expect_error<KeyError>([&] { format_checkpoint_path("{val_acc}", 1, std::nullopt, logs); },
                           { "Failed to format this callback filepath", "val_acc", "val_accuracy" });
    expect_error<ValueError>([&] { format_checkpoint_path("{loss:d}", 1, std::nullopt, logs); }, { "'d'", "float" });
    expect_error<ValueError>([&] { format_checkpoint_path("{epoch", 1, std::nullopt, logs); }, { "Single '{'" });
    expect_error<ValueError>([] { ModelCheckpoint<float>("x.h5", ModelCheckpointOptions{ "val_loss", 0, false, false, "best" }); },
                             { "mode", "best" });
    ModelCheckpointOptions bad;
    bad.save_freq = "sometimes";
    expect_error<ValueError>([&] { ModelCheckpoint<float>("x.h5", bad); }, { "save_freq", "sometimes" });
}

namespace {

struct Fixture {
    std::shared_ptr<Sequential<float>> model;
    array_t<float> x, y;
    Fixture()
    {
        reset_layer_names();
        model = std::make_shared<Sequential<float>>();
        model->add(std::make_shared<InputLayer<float>>(dims_t{ 3 }));
        model->add(std::make_shared<Dense<float>>(4, "tanh"));
        model->add(std::make_shared<Dense<float>>(1));
        model->compile("sgd", "mse");
        std::mt19937 gen(5);
        std::uniform_real_distribution<float> u(-1, 1);
        x = array_t<float>::from_shape({ 32, 3 });
        y = array_t<float>::from_shape({ 32, 1 });
        for (auto& v : x)
            v = u(gen);
        for (std::size_t i = 0; i < 32; ++i)
            y(i, 0) = x(i, 0) - 0.5f * x(i, 2);
    }
    FitOptions<float> fit(int epochs, CallbackPtr<float> cb, double validation_split = 0.25) const
    {
        FitOptions<float> fo;
        fo.epochs = epochs;
        fo.batch_size = 8;
        fo.verbose = 0;
        fo.shuffle = false;
        fo.validation_split = validation_split;
        fo.callbacks = { cb };
        return fo;
    }
};

std::set<std::string> files_in(const fs::path& dir)
{
    std::set<std::string> s;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file())
            s.insert(fs::relative(e.path(), dir).string());
    return s;
}

} // namespace

TEST_CASE("model_checkpoint: one full model per epoch, in a folder it creates")
{
    TempDir tmp("ckpt_epoch");
    Fixture f;
    auto ckpt = std::make_shared<ModelCheckpoint<float>>(tmp.file("sub/m-{epoch:02d}-{val_loss:.3f}.h5"));
    auto h = f.model->fit(f.x, f.y, f.fit(3, ckpt));
    const auto files = files_in(tmp.dir);
    CHECK(files.size() == 3);
    const auto& vl = h->history.at("val_loss");
    char name[64];
    std::snprintf(name, sizeof name, "sub/m-03-%.3f.h5", vl[2]);
    REQUIRE(files.count(name) == 1);
    // The last checkpoint is the model as trained, optimizer state included.
    auto back = load_model<float>(tmp.file(name));
    PredictOptions<float> po;
    po.verbose = 0;
    CHECK(back->predict(f.x, po) == f.model->predict(f.x, po));
    CHECK(back->optimizer()->iterations() == f.model->optimizer()->iterations());
    CHECK(ckpt->last_saved() == tmp.file(name));
}

TEST_CASE("model_checkpoint: save_best_only keeps the best val_loss; weights only")
{
    TempDir tmp("ckpt_best");
    Fixture f;
    ModelCheckpointOptions o;
    o.save_best_only = true;
    o.save_weights_only = true;
    o.monitor = "val_loss";
    auto ckpt = std::make_shared<ModelCheckpoint<float>>(tmp.file("best.h5"), o);
    auto h = f.model->fit(f.x, f.y, f.fit(6, ckpt));
    const auto& vl = h->history.at("val_loss");
    const double best = *std::min_element(vl.begin(), vl.end());
    CHECK(ckpt->best() == best);
    CHECK(files_in(tmp.dir) == std::set<std::string>{ "best.h5" });
    // weights-only layout: layer_names on the root, so it is not a loadable model.
    expect_error<ValueError>([&] { load_model<float>(tmp.file("best.h5")); }, { "only weights" });

    // The file holds the weights of the best epoch: with an unreachable threshold nothing is saved.
    TempDir tmp2("ckpt_threshold");
    ModelCheckpointOptions t = o;
    t.initial_value_threshold = -1.0;
    auto none = std::make_shared<ModelCheckpoint<float>>(tmp2.file("never.h5"), t);
    f.model->fit(f.x, f.y, f.fit(2, none));
    CHECK(files_in(tmp2.dir).empty());

    // A monitor that is not in the logs: warning, nothing saved, training continues.
    ModelCheckpointOptions missing = o;
    missing.monitor = "val_nothing";
    auto skip = std::make_shared<ModelCheckpoint<float>>(tmp2.file("skip.h5"), missing);
    f.model->fit(f.x, f.y, f.fit(1, skip));
    CHECK(files_in(tmp2.dir).empty());
}

TEST_CASE("model_checkpoint: mode max for accuracy-like monitors, save_freq in batches")
{
    TempDir tmp("ckpt_freq");
    Fixture f;
    ModelCheckpointOptions o;
    o.save_freq = "2"; // 24 training samples / 8 = 3 batches per epoch
    auto ckpt = std::make_shared<ModelCheckpoint<float>>(tmp.file("e{epoch}-b{batch}.h5"), o);
    f.model->fit(f.x, f.y, f.fit(2, ckpt));
    // batches 2 of epoch 1 and 1, 3 of epoch 2 (counted over epochs, as Keras counts steps)
    CHECK(files_in(tmp.dir) == std::set<std::string>{ "e1-b2.h5", "e2-b1.h5", "e2-b3.h5" });

    ModelCheckpointOptions m;
    m.monitor = "val_fake_acc";
    m.save_best_only = true;
    ModelCheckpoint<float> acc(tmp.file("acc.h5"), m);
    acc.set_model(f.model.get());
    Logs none;
    acc.on_train_begin(none);
    CHECK(acc.best() == -std::numeric_limits<double>::infinity());
}

namespace {

std::string file_bytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Drives a checkpoint by hand through epochs whose monitored value is given, with one training
/// step before each epoch end so that every epoch has other weights. Returns the model's
/// weights at each epoch end.
std::vector<std::vector<array_t<float>>> run_epochs(Fixture& f, ModelCheckpoint<float>& ckpt,
                                                    const std::string& monitor, const std::vector<double>& values,
                                                    const std::function<void(int)>& after_epoch = {})
{
    ckpt.set_model(f.model.get());
    Logs none;
    ckpt.on_train_begin(none);
    std::vector<std::vector<array_t<float>>> weights;
    for (int epoch = 0; epoch < static_cast<int>(values.size()); ++epoch) {
        ckpt.on_epoch_begin(epoch, none);
        f.model->train_on_batch(f.x, f.y);
        weights.push_back(f.model->get_weights());
        Logs logs{ { "loss", 1.0 }, { monitor, values[epoch] } };
        ckpt.on_epoch_end(epoch, logs);
        if (after_epoch)
            after_epoch(epoch);
    }
    return weights;
}

} // namespace

TEST_CASE("model_checkpoint: save_best_only keeps the best epoch's weights; a worse epoch leaves the file untouched")
{
    TempDir tmp("ckpt_best_bytes");
    Fixture f;
    ModelCheckpointOptions o;
    o.save_best_only = true;
    o.save_weights_only = true;
    o.monitor = "val_loss";
    ModelCheckpoint<float> ckpt(tmp.file("best.h5"), o);
    const std::string path = tmp.file("best.h5");
    std::vector<std::string> bytes;
    std::vector<fs::file_time_type> mtimes;
    auto weights = run_epochs(f, ckpt, "val_loss", { 0.5, 0.7, 0.5, 0.3, 0.9 }, [&](int) {
        bytes.push_back(file_bytes(path));
        mtimes.push_back(fs::last_write_time(path));
    });
    // Saved at epochs 1 and 4 only: 0.7 and 0.9 are worse, 0.5 again is not an improvement.
    CHECK(bytes[1] == bytes[0]);
    CHECK(mtimes[1] == mtimes[0]);
    CHECK(bytes[2] == bytes[0]);
    CHECK(mtimes[2] == mtimes[0]);
    CHECK(bytes[3] != bytes[0]);
    CHECK(bytes[4] == bytes[3]);
    CHECK(mtimes[4] == mtimes[3]);
    CHECK(ckpt.best() == 0.3);
    CHECK(files_in(tmp.dir) == std::set<std::string>{ "best.h5" });

    // The file holds epoch 4's weights (index 3), not the last epoch's.
    Fixture g; // same architecture, fresh weights
    load_weights(*g.model, path);
    const auto loaded = g.model->get_weights();
    REQUIRE(loaded.size() == weights[3].size());
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        CHECK(loaded[i] == weights[3][i]);
        CHECK(loaded[i] != weights[4][i]);
    }
}

TEST_CASE("model_checkpoint: mode max and save_best_only with full models")
{
    TempDir tmp("ckpt_best_max");
    Fixture f;
    ModelCheckpointOptions o;
    o.save_best_only = true;
    o.monitor = "val_score"; // no "acc" in the name: "auto" would minimize it
    o.mode = "max";
    ModelCheckpoint<float> ckpt(tmp.file("best-{epoch}.h5"), o);
    std::vector<std::int64_t> iterations;
    auto weights = run_epochs(f, ckpt, "val_score", { 0.2, 0.6, 0.4, 0.6, 0.1 },
                              [&](int) { iterations.push_back(f.model->optimizer()->iterations()); });
    // Epochs 1 and 2 improved (a higher score); 3, 4 (equal) and 5 did not.
    CHECK(files_in(tmp.dir) == std::set<std::string>{ "best-1.h5", "best-2.h5" });
    CHECK(ckpt.best() == 0.6);
    CHECK(ckpt.last_saved() == tmp.file("best-2.h5"));
    auto best = load_model<float>(tmp.file("best-2.h5"));
    REQUIRE(best->compiled());
    CHECK(best->optimizer()->iterations() == iterations[1]); // the model as it was at epoch 2
    const auto loaded = best->get_weights();
    for (std::size_t i = 0; i < loaded.size(); ++i)
        CHECK(loaded[i] == weights[1][i]);

    // The same values with mode "min" keep epochs 1 and 5.
    TempDir tmp2("ckpt_best_min");
    Fixture g;
    ModelCheckpointOptions mn = o;
    mn.mode = "min";
    ModelCheckpoint<float> low(tmp2.file("best-{epoch}.h5"), mn);
    run_epochs(g, low, "val_score", { 0.2, 0.6, 0.4, 0.6, 0.1 });
    CHECK(files_in(tmp2.dir) == std::set<std::string>{ "best-1.h5", "best-5.h5" });
    CHECK(low.best() == 0.1);
}
