// Training curves: reading CSVLogger files back, gnuplot pictures (PNG size from IHDR, SVG curves
// counted), their errors, and the PlotHistory callback inside fit. Needs gnuplot (scripts/setup.sh).
#include "framework/callbacks.hpp"
#include "framework/sequential.hpp"
#include "framework/training_curves.hpp"
#include "tests/helpers.hpp"
#include "tests/keras_files.hpp"
#include "tests/model_helpers.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using namespace xtape;
using namespace xtape::testing;

namespace test_training_curves {

void write_text(const std::string& path, const std::string& text)
{
    std::ofstream out(path, std::ios::binary);
    out << text;
}

/// Width and height from a PNG's IHDR chunk; {0, 0} when the file is not a PNG.
std::pair<unsigned, unsigned> png_size(const std::string& bytes)
{
    static const std::string signature("\x89PNG\r\n\x1a\n", 8);
    if (bytes.size() < 24 || bytes.compare(0, 8, signature) != 0 || bytes.compare(12, 4, "IHDR") != 0)
        return { 0, 0 };
    auto be32 = [&](std::size_t at) {
        unsigned v = 0;
        for (std::size_t i = 0; i < 4; ++i)
            v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
        return v;
    };
    return { be32(16), be32(20) };
}

/// The curves gnuplot's svg terminal drew: one group "gnuplot_plot_<k><panel>" per curve.
std::set<std::string> svg_curves(const std::string& svg)
{
    std::set<std::string> ids;
    const std::regex group("<g id=\"(gnuplot_plot_[0-9]+[a-z]+)\"");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), group); it != std::sregex_iterator(); ++it)
        ids.insert((*it)[1]);
    return ids;
}

/// A log as CSVLogger writes it: sorted keys, "\r\n", an "NA".
const char* const log_text = "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\r\n"
                             "0,0.71,0.001,0.82,0.78,0.61\r\n"
                             "1,0.80,0.00075,0.55,0.81,0.52\r\n"
                             "2,0.84,0.0005625,0.46,NA,0.49\r\n";

bool have_gnuplot()
{
    const bool ok = can_run_program("gnuplot");
    CHECK_MESSAGE(ok, "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)");
    return ok;
}

} // namespace test_training_curves

using namespace test_training_curves;

TEST_CASE("training curves: a CSVLogger file reads back with its columns and metrics")
{
    TempDir tmp("curves_read");
    const std::string path = tmp.file("log.csv");
    write_text(path, log_text);
    const TrainingLog log = read_training_log(path);
    CHECK(log.epochs == std::vector<double>{ 1, 2, 3 });
    CHECK(log.columns ==
          std::vector<std::string>{ "accuracy", "learning_rate", "loss", "val_accuracy", "val_loss" });
    CHECK(log.metrics() == std::vector<std::string>{ "accuracy", "learning_rate", "loss" });
    CHECK(log.values.at("loss")[1] == 0.55);
    CHECK(std::isnan(log.values.at("val_accuracy")[2]));

    // Quoted keys (Python's csv quoting), a text column left out, only validation columns.
    write_text(path, "epoch,\"a,b\",note,val_loss\n0,1.5,x,2\n1,1.25,y,NA\n");
    const TrainingLog q = read_training_log(path);
    CHECK(q.columns == std::vector<std::string>{ "a,b", "val_loss" });
    CHECK(q.metrics() == std::vector<std::string>{ "a,b", "loss" });
}

TEST_CASE("training curves: bad logs are one-line errors naming the file")
{
    TempDir tmp("curves_bad");
    const std::string path = tmp.file("log.csv");
    expect_error<IOError>([&] { read_training_log(tmp.file("absent.csv")); }, { "absent.csv", "cannot open" });
    write_text(path, "");
    expect_error<ValueError>([&] { read_training_log(path); }, { "log.csv", "empty" });
    write_text(path, "epoch,note\n0,abc\n1,def\n");
    expect_error<ValueError>([&] { read_training_log(path); }, { "log.csv", "no numeric columns" });
    write_text(path, "epoch,loss\n");
    expect_error<ValueError>([&] { read_training_log(path); }, { "log.csv", "no numeric columns", "0 rows" });
    write_text(path, "epoch,loss,val_loss\n0,1,2\n1,3\n");
    expect_error<IOError>([&] { read_training_log(path); }, { "log.csv:3", "expected 3 fields", "got 2" });
}

TEST_CASE("training curves: PNG of the requested size, SVG with one curve per column")
{
    if (!have_gnuplot())
        return;
    TempDir tmp("curves_plot");
    const std::string path = tmp.file("run_log.csv");
    write_text(path, log_text);
    const TrainingLog log = read_training_log(path);

    PlotOptions po;
    po.width = 640;
    po.height = 900;
    const std::string png = tmp.file("curves.png");
    plot_training_curves(log, png, po);
    const std::string bytes = read_bytes(png);
    CHECK(bytes.size() > 1000);
    CHECK(png_size(bytes) == std::make_pair(640u, 900u));
    // Default size: 800 wide, 300 per panel (three metrics).
    plot_training_curves(log, png);
    CHECK(png_size(read_bytes(png)) == std::make_pair(800u, 900u));

    // SVG: accuracy (2 curves), learning_rate (1), loss (2); then two panels asked for.
    const std::string svg = tmp.file("curves.svg");
    plot_training_curves(log, svg);
    std::string text = read_bytes(svg);
    CHECK(contains(text, "width=\"800\" height=\"900\""));
    CHECK(svg_curves(text).size() == 5);
    CHECK(contains(text, "run_log.csv"));
    CHECK(contains(text, "val_loss"));
    CHECK(contains(text, "epoch"));
    po = PlotOptions();
    po.metrics = { "loss", "val_accuracy" }; // a val_ name stands for its metric
    plot_training_curves(log, svg, po);
    text = read_bytes(svg);
    CHECK(svg_curves(text).size() == 4);
    CHECK(contains(text, "width=\"800\" height=\"600\""));
    CHECK_FALSE(contains(text, "learning_rate"));
    CHECK(tmp.names() == std::vector<std::string>{ "curves.png", "curves.svg", "run_log.csv" }); // no temporaries
}

TEST_CASE("training curves: unknown metric, bad format and a missing gnuplot are errors, the old picture stays")
{
    TempDir tmp("curves_errors");
    const std::string path = tmp.file("log.csv");
    write_text(path, log_text);
    const TrainingLog log = read_training_log(path);
    const std::string png = tmp.file("c.png");
    write_text(png, "previous");
    PlotOptions po;
    po.metrics = { "loss", "precision" };
    expect_error<ValueError>([&] { plot_training_curves(log, png, po); },
                             { "log.csv", "no metric 'precision'", "accuracy, learning_rate, loss" });
    expect_error<ValueError>([&] { plot_training_curves(log, tmp.file("c.jpg")); }, { "c.jpg", ".png or .svg" });
    po = PlotOptions();
    po.gnuplot = "xtape-no-such-gnuplot";
    expect_error<IOError>([&] { plot_training_curves(log, png, po); }, { "gnuplot", "xtape-no-such-gnuplot" });
    po.gnuplot = "/bin/false"; // runs, fails, writes nothing
    expect_error<IOError>([&] { plot_training_curves(log, png, po); }, { "c.png", "gnuplot failed" });
    CHECK(read_bytes(png) == "previous");
    CHECK(tmp.names() == std::vector<std::string>{ "c.png", "log.csv" });
}

TEST_CASE("training curves: PlotHistory redraws the picture at every epoch of fit")
{
    if (!have_gnuplot())
        return;
    TempDir tmp("curves_callback");
    set_random_seed(3);
    Sequential<float> m;
    m.add(std::make_shared<TDense<float>>(4, "relu"));
    m.add(std::make_shared<TDense<float>>(2, "softmax"));
    m.compile(std::make_shared<PlainSGD<float>>(0.1), "sparse_categorical_crossentropy", { "accuracy" });
    array_t<float> x = xt::zeros<float>({ 16, 3 }), y = xt::zeros<float>({ 16 });
    for (std::size_t i = 0; i < 16; ++i) {
        x(i, i % 3) = 1;
        y(i) = static_cast<float>(i % 2);
    }
    const std::string svg = tmp.file("live.svg");
    // After each epoch, the picture holds that epoch's curves.
    struct Watch : Callback<float> {
        std::string path;
        std::vector<std::size_t> curves;
        void on_epoch_end(int, Logs&) override { curves.push_back(svg_curves(read_bytes(path)).size()); }
    };
    auto watch = std::make_shared<Watch>();
    watch->path = svg;
    FitOptions<float> fo;
    fo.epochs = 2;
    fo.batch_size = 8;
    fo.verbose = 0;
    fo.validation_split = 0.25;
    fo.callbacks = { std::make_shared<PlotHistory<float>>(svg), watch };
    m.fit(x, y, fo);
    CHECK(watch->curves == std::vector<std::size_t>{ 4, 4 }); // accuracy and loss, with val_
    const std::string text = read_bytes(svg);
    CHECK(contains(text, "live.svg"));
    CHECK(contains(text, "val_accuracy"));

    // A missing gnuplot stops fit before its first epoch.
    PlotOptions po;
    po.gnuplot = "xtape-no-such-gnuplot";
    fo.callbacks = { std::make_shared<PlotHistory<float>>(tmp.file("x.png"), po) };
    expect_error<IOError>([&] { m.fit(x, y, fo); }, { "PlotHistory", "gnuplot" });
    CHECK(m.optimizer()->iterations() == 4); // only the first fit's 2 x 2 steps
}

TEST_CASE("training curves: a History JSON (json.dump(history.history)) reads back and plots; fit's History saves as one")
{
    TempDir tmp("curves_json");
    const std::string path = tmp.file("history.json");
    // As Python writes it: the logs' order, NaN for a diverged value, a shorter validation list.
    write_text(path, "{\"loss\": [0.82, 0.55, NaN], \"accuracy\": [0.71, 0.8, 0.84], "
                     "\"val_loss\": [0.61, 0.52], \"note\": [\"a\", \"b\"], \"lr\": 0.1}\n");
    const TrainingLog log = read_training_log(path);
    CHECK(log.columns == std::vector<std::string>{ "loss", "accuracy", "val_loss" }); // text and scalars left out
    CHECK(log.metrics() == std::vector<std::string>{ "loss", "accuracy" });
    CHECK(log.epochs == std::vector<double>{ 1, 2, 3 });
    CHECK(log.values.at("accuracy")[2] == 0.84);
    CHECK(std::isnan(log.values.at("loss")[2]));
    CHECK(std::isnan(log.values.at("val_loss")[2])); // padded at the end
    // A string holding "NaN" stays a string.
    write_text(path, "{\"loss\": [1, -Infinity], \"id\": [\"NaN\"]}");
    const TrainingLog inf = read_training_log(path);
    CHECK(inf.columns == std::vector<std::string>{ "loss" });
    CHECK(std::isnan(inf.values.at("loss")[1]));

    write_text(path, "[1, 2]");
    expect_error<ValueError>([&] { read_training_log(path); }, { "history.json", "JSON object", "array" });
    write_text(path, "{\"loss\": [1, 2]");
    expect_error<IOError>([&] { read_training_log(path); }, { "history.json", "not a History JSON file" });
    write_text(path, "{\"loss\": []}");
    expect_error<ValueError>([&] { read_training_log(path); }, { "history.json", "no metric with values" });

    // fit's History written as JSON reads back with the same values.
    set_random_seed(4);
    Sequential<float> m;
    m.add(std::make_shared<TDense<float>>(2, "softmax"));
    m.compile(std::make_shared<PlainSGD<float>>(0.1), "sparse_categorical_crossentropy", { "accuracy" });
    array_t<float> x = xt::zeros<float>({ 8, 3 }), y = xt::zeros<float>({ 8 });
    for (std::size_t i = 0; i < 8; ++i) {
        x(i, i % 3) = 1;
        y(i) = static_cast<float>(i % 2);
    }
    FitOptions<float> fo;
    fo.epochs = 3;
    fo.batch_size = 4;
    fo.verbose = 0;
    fo.validation_split = 0.25;
    const auto h = m.fit(x, y, fo);
    const std::string saved = tmp.file("fit.json");
    save_history_json(*h, saved);
    const json j = json::parse(read_bytes(saved));
    CHECK(j.at("loss").size() == 3);
    const TrainingLog back = read_training_log(saved);
    CHECK(back.columns == std::vector<std::string>{ "accuracy", "loss", "val_accuracy", "val_loss" });
    for (const auto& c : back.columns)
        CHECK(back.values.at(c) == h->history.at(c));
    if (!have_gnuplot())
        return;
    const std::string svg = tmp.file("fit.svg");
    plot_training_curves(back, svg);
    const std::string text = read_bytes(svg);
    CHECK(svg_curves(text).size() == 4);
    CHECK(contains(text, "fit.json"));
}
