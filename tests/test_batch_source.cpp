// ctest-labels: sanitize
// Batch sources: fit / evaluate / predict on a BatchSource (a user's, in-memory arrays, HDF5
// batches read from disk), the HDF5 source's shuffling by batch, its prefetch and its errors.
#include "framework/batch_source.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/hdf5_batches.hpp"
#include "framework/sequential.hpp"
#include "tests/helpers.hpp"
#include "tests/keras_files.hpp"
#include "tests/model_helpers.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace xtape;
using namespace xtape::testing;

namespace test_batch_source {

/// Two TDense layers (seeded from the global seed), PlainSGD, sparse crossentropy and accuracy.
std::shared_ptr<Sequential<float>> classifier(std::uint64_t seed)
{
    set_random_seed(seed);
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<TDense<float>>(6, "tanh"));
    m->add(std::make_shared<TDense<float>>(3, "softmax"));
    m->build({ -1, 5 });
    m->compile(std::make_shared<PlainSGD<float>>(0.2), "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

FitOptions<float> quiet(int epochs, std::size_t batch_size)
{
    FitOptions<float> fo;
    fo.epochs = epochs;
    fo.batch_size = batch_size;
    fo.shuffle = false;
    fo.verbose = 0;
    return fo;
}

void same_weights(const Model<float>& a, const Model<float>& b)
{
    const auto wa = a.get_weights(), wb = b.get_weights();
    REQUIRE(wa.size() == wb.size());
    for (std::size_t i = 0; i < wa.size(); ++i)
        CHECK(wa[i] == wb[i]);
}

/// x (n, 5), y (n,) class indices and w (n,) sample weights in an HDF5 file.
struct DataFile {
    std::string path;
    array_t<float> x, y, w;
};

DataFile data_file(const TempDir& tmp, std::size_t n, const std::string& name = "data.h5")
{
    DataFile d;
    blobs<float>(n, 5, 3, 21, d.x, d.y);
    d.w = array_t<float>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i)
        d.w(i) = static_cast<float>(0.5 + 0.25 * static_cast<double>(i % 4));
    d.path = tmp.file(name);
    io::H5File f = io::H5File::create(d.path);
    f.root().write_dataset<float>("x", d.x);
    f.root().write_dataset<float>("y", d.y);
    f.root().write_dataset<float>("w", d.w);
    f.close();
    return d;
}

io::H5BatchOptions batches_of(std::size_t batch_size, bool shuffle = false, std::optional<std::uint64_t> seed = {})
{
    io::H5BatchOptions o;
    o.batch_size = batch_size;
    o.shuffle = shuffle;
    o.seed = seed;
    return o;
}

/// A source written by a user: batch i is rows [4 i, 4 i + 4) of the arrays, with weights; it
/// counts the calls of its epoch hooks.
struct UserSource : BatchSource<float> {
    const array_t<float>& x;
    const array_t<float>& y;
    const array_t<float>* w = nullptr;
    int begun = 0, ended = 0;
    UserSource(const array_t<float>& x_, const array_t<float>& y_)
        : x(x_)
        , y(y_)
    {
    }
    std::size_t num_batches() const override { return (x.shape()[0] + 3) / 4; }
    Batch<float> get_batch(std::size_t i) override
    {
        const std::size_t b = 4 * i, c = std::min<std::size_t>(4, x.shape()[0] - b);
        Batch<float> out{ { take_rows(x, b, c) }, { take_rows(y, b, c) }, {} };
        if (w)
            out.sample_weight.emplace_back(take_rows(*w, b, c));
        return out;
    }
    void on_epoch_begin() override { ++begun; }
    void on_epoch_end() override { ++ended; }
};

} // namespace test_batch_source

using namespace test_batch_source;

TEST_CASE("batch source: a user's source trains, evaluates and predicts as the same arrays")
{
    array_t<float> x, y;
    blobs<float>(22, 5, 3, 4, x, y);
    array_t<float> w = array_t<float>::from_shape({ 22 });
    for (std::size_t i = 0; i < 22; ++i)
        w(i) = static_cast<float>(1 + i % 3);
    for (const bool weighted : { false, true }) {
        CAPTURE(weighted);
        UserSource src(x, y);
        if (weighted)
            src.w = &w;
        auto a = classifier(1), b = classifier(1);
        FitOptions<float> fa = quiet(3, 4);
        if (weighted)
            fa.sample_weight = w;
        const auto ha = a->fit(x, y, fa);
        const auto hb = b->fit(src, quiet(3, 999)); // the source's batches, not batch_size
        same_weights(*a, *b);
        CHECK(ha->history == hb->history);
        CHECK(src.begun == 3);
        CHECK(src.ended == 3);
        EvaluateOptions<float> eo;
        eo.batch_size = 4;
        eo.verbose = 0;
        if (weighted)
            eo.sample_weight = w;
        const Logs ea = a->evaluate(x, y, eo);
        eo.sample_weight = std::nullopt;
        CHECK(b->evaluate(src, eo) == ea);
        PredictOptions<float> po;
        po.batch_size = 4; // the source's batches: the same products, bit for bit
        po.verbose = 0;
        const array_t<float> pa = a->predict(x, po), pb = b->predict(src, po);
        CHECK(pa.shape() == pb.shape());
        CHECK(pa == pb);
    }
    // class_weight applies to each batch of a source.
    UserSource src(x, y);
    auto a = classifier(2), b = classifier(2);
    FitOptions<float> fa = quiet(2, 4), fb = quiet(2, 4);
    fa.class_weight = fb.class_weight = { { 0, 0.5 }, { 2, 2.0 } };
    a->fit(x, y, fa);
    b->fit(src, fb);
    same_weights(*a, *b);
}

TEST_CASE("batch source: a source as validation data; bad batches and options are errors naming the batch")
{
    array_t<float> x, y, xv, yv;
    blobs<float>(16, 5, 3, 5, x, y);
    blobs<float>(9, 5, 3, 6, xv, yv);
    UserSource val(xv, yv);
    auto a = classifier(3), b = classifier(3);
    FitOptions<float> fa = quiet(2, 4), fb = quiet(2, 4);
    fa.validation_data = ValidationData<float>(xv, yv);
    fb.validation_data = ValidationData<float>(val);
    const auto ha = a->fit(x, y, fa), hb = b->fit(x, y, fb);
    CHECK(ha->history == hb->history);
    CHECK(hb->history.at("val_loss").size() == 2);

    struct Bad : BatchSource<float> {
        Batch<float> batch;
        std::size_t num_batches() const override { return 2; }
        Batch<float> get_batch(std::size_t i) override
        {
            if (i == 0)
                return { { xt::ones<float>({ 2, 5 }) }, { xt::zeros<float>({ 2 }) }, {} };
            return batch;
        }
    };
    Bad bad;
    auto m = classifier(4);
    bad.batch = { { xt::ones<float>({ 3, 5 }) }, { xt::zeros<float>({ 2 }) }, {} };
    expect_error<ValueError>([&] { m->fit(bad, quiet(1, 4)); },
                             { "fit: batch 1 of the batch source", "'x' sizes: 3", "'y' sizes: 2" });
    bad.batch = { { xt::ones<float>({ 3, 5 }), xt::ones<float>({ 3, 5 }) }, { xt::zeros<float>({ 3 }) }, {} };
    EvaluateOptions<float> eo;
    eo.verbose = 0;
    expect_error<ValueError>([&] { m->evaluate(bad, eo); },
                             { "evaluate: batch 1", "expected 1 input array(s)", "received 2" });
    bad.batch = { { xt::ones<float>({ 3, 5 }) }, {}, {} };
    expect_error<ValueError>([&] { m->fit(bad, quiet(1, 4)); }, { "batch 1", "expected 1 target array(s)", "received 0" });
    PredictOptions<float> po;
    po.verbose = 0;
    CHECK(m->predict(bad, po).shape() == shape_t{ 5, 3 }); // predict needs no targets
    bad.batch = { { xt::ones<float>({ 0, 5 }) }, { xt::zeros<float>({ 0 }) }, {} };
    expect_error<ValueError>([&] { m->fit(bad, quiet(1, 4)); }, { "batch 1", "no samples", "(0, 5)" });
    FitOptions<float> split = quiet(1, 4);
    split.validation_split = 0.5;
    expect_error<ValueError>([&] { m->fit(val, split); }, { "validation_split", "batch source" });
    FitOptions<float> weighted = quiet(1, 4);
    weighted.sample_weight = xt::ones<float>({ 9 });
    expect_error<ValueError>([&] { m->fit(val, weighted); }, { "sample_weight", "batch source" });
}

TEST_CASE("H5Batches: the same trained weights as the in-memory arrays (no shuffling), validation rows included")
{
    TempDir tmp("h5batches_same");
    const DataFile d = data_file(tmp, 43);
    for (const bool prefetch : { false, true }) {
        CAPTURE(prefetch);
        auto a = classifier(7), b = classifier(7);
        FitOptions<float> fa = quiet(3, 8);
        fa.sample_weight = d.w;
        fa.validation_split = 0.25; // rows 32..42
        const auto ha = a->fit(d.x, d.y, fa);

        io::H5BatchOptions opt = batches_of(8);
        opt.prefetch = prefetch;
        opt.end = 32;
        io::H5Batches<float> train({ { d.path, "x" } }, { { d.path, "y" } }, { { d.path, "w" } }, opt);
        opt.begin = 32;
        opt.end = std::nullopt;
        io::H5Batches<float> val({ { d.path, "x" } }, { { d.path, "y" } }, { { d.path, "w" } }, opt);
        CHECK(train.num_samples() == 32);
        CHECK(train.num_batches() == 4);
        CHECK(val.num_batches() == 2);
        FitOptions<float> fb = quiet(3, 8);
        fb.validation_data = ValidationData<float>(val);
        const auto hb = b->fit(train, fb);
        same_weights(*a, *b);
        CHECK(ha->history == hb->history);
        CHECK(train.prefetched() == (prefetch ? 3u * 3u : 0u)); // batches 1..3 of each epoch

        io::H5Batches<float> all({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(10));
        EvaluateOptions<float> eo;
        eo.batch_size = 10;
        eo.verbose = 0;
        CHECK(b->evaluate(all, eo) == a->evaluate(d.x, d.y, eo));
        PredictOptions<float> po;
        po.batch_size = 10;
        po.verbose = 0;
        CHECK(b->predict(all, po) == a->predict(d.x, po));
    }
}

TEST_CASE("H5Batches: shuffling permutes the batches each epoch, reproducibly for a seed")
{
    TempDir tmp("h5batches_shuffle");
    const DataFile d = data_file(tmp, 40);
    auto orders = [&](io::H5Batches<float>& s) {
        std::vector<std::vector<std::size_t>> out;
        for (int e = 0; e < 4; ++e) {
            s.on_epoch_begin();
            out.push_back(s.order());
        }
        return out;
    };
    io::H5Batches<float> a({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(5, true, 11));
    io::H5Batches<float> b({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(5, true, 11));
    io::H5Batches<float> c({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(5, true, 12));
    const auto oa = orders(a), ob = orders(b), oc = orders(c);
    CHECK(oa == ob);
    CHECK(oa != oc);
    CHECK(oa[0] != oa[1]); // a new order each epoch
    for (const auto& o : oa) {
        std::vector<std::size_t> sorted = o;
        std::sort(sorted.begin(), sorted.end());
        CHECK(sorted == std::vector<std::size_t>{ 0, 1, 2, 3, 4, 5, 6, 7 });
    }
    // Batch i of an epoch is the file's batch order()[i], whole.
    a.on_epoch_begin();
    const std::size_t f = a.order()[2];
    const Batch<float> batch = a.get_batch(2);
    CHECK(batch.x[0] == take_rows(d.x, 5 * f, 5));
    CHECK(batch.y[0] == take_rows(d.y, 5 * f, 5));
    // Without a seed: drawn from the global generator, so set_random_seed makes it reproducible.
    set_random_seed(5);
    io::H5Batches<float> g1({ { d.path, "x" } }, {}, {}, batches_of(5, true));
    set_random_seed(5);
    io::H5Batches<float> g2({ { d.path, "x" } }, {}, {}, batches_of(5, true));
    CHECK(orders(g1) == orders(g2));
    // Training with the same seed gives the same weights; fit's global generator is not consumed.
    auto m1 = classifier(9), m2 = classifier(9);
    io::H5Batches<float> s1({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(5, true, 3));
    io::H5Batches<float> s2({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(5, true, 3));
    m1->fit(s1, quiet(3, 5));
    m2->fit(s2, quiet(3, 5));
    same_weights(*m1, *m2);
    auto m3 = classifier(9);
    io::H5Batches<float> s3({ { d.path, "x" } }, { { d.path, "y" } }, {}, batches_of(5, false));
    m3->fit(s3, quiet(3, 5));
    CHECK(m3->get_weights()[0] != m1->get_weights()[0]); // the order mattered
}

TEST_CASE("H5Batches: the prefetched batch is the one asked for, in any order of requests")
{
    TempDir tmp("h5batches_prefetch");
    const DataFile d = data_file(tmp, 23);
    io::H5Batches<float> s({ { d.path, "x" } }, { { d.path, "y" } }, { { d.path, "w" } }, batches_of(4));
    REQUIRE(s.num_batches() == 6);
    auto check_batch = [&](std::size_t i, const Batch<float>& b) {
        const std::size_t c = std::min<std::size_t>(4, 23 - 4 * i);
        CHECK(b.x[0] == take_rows(d.x, 4 * i, c));
        CHECK(b.y[0] == take_rows(d.y, 4 * i, c));
        REQUIRE(b.sample_weight.size() == 1);
        CHECK(*b.sample_weight[0] == take_rows(d.w, 4 * i, c));
    };
    for (std::size_t i = 0; i < 6; ++i)
        check_batch(i, s.get_batch(i));
    CHECK(s.prefetched() == 5);
    check_batch(3, s.get_batch(3)); // 1 is not what was prefetched (4 is): read directly
    check_batch(1, s.get_batch(1));
    check_batch(2, s.get_batch(2));
    CHECK(s.prefetched() == 6);
    check_batch(5, s.get_batch(5)); // the last batch reads nothing ahead
    s.get_batch(0);                 // leaves batch 1 in flight when s is destroyed
}

TEST_CASE("H5Batches: missing files and datasets, mismatched lengths and empty data are errors naming the file")
{
    TempDir tmp("h5batches_errors");
    const DataFile d = data_file(tmp, 12);
    const std::string other = tmp.file("other.h5");
    {
        io::H5File f = io::H5File::create(other);
        f.root().write_dataset<float>("y", xt::zeros<float>({ 11 }));
        f.root().write_dataset<float>("empty", array_t<float>::from_shape({ 0, 5 }));
        f.root().write_dataset<float>("scalar", array_t<float>(3.0f));
        f.close();
    }
    expect_error<IOError>([&] { io::H5Batches<float>({ { tmp.file("absent.h5"), "x" } }); }, { "absent.h5" });
    expect_error<IOError>([&] { io::H5Batches<float>({ { d.path, "x" } }, { { d.path, "labels" } }); },
                          { "data.h5", "no dataset 'labels'" });
    expect_error<ValueError>([&] { io::H5Batches<float>({ { d.path, "x" } }, { { other, "y" } }); },
                             { "different numbers of samples", "data.h5 'x' (12, 5)", "other.h5 'y' (11,)" });
    expect_error<ValueError>([&] { io::H5Batches<float>({ { other, "empty" } }); },
                             { "other.h5", "'empty'", "(0, 5)", "no samples" });
    expect_error<ValueError>([&] { io::H5Batches<float>({ { other, "scalar" } }); }, { "other.h5", "'scalar'", "scalar" });
    expect_error<ValueError>([&] { io::H5Batches<float>({ { d.path, "x" } }, {}, {}, batches_of(0)); }, { "batch_size" });
    io::H5BatchOptions rows = batches_of(4);
    rows.begin = 10;
    rows.end = 14;
    expect_error<ValueError>([&] { io::H5Batches<float>({ { d.path, "x" } }, {}, {}, rows); },
                             { "rows [10, 14)", "12 rows", "data.h5" });
    io::H5Batches<float> s({ { d.path, "x" } }, {}, {}, batches_of(4));
    expect_error<ValueError>([&] { s.get_batch(3); }, { "batch 3", "data.h5", "3 batches" });
}
