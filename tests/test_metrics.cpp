// Streaming metrics against Keras's documented examples and hand-computed values.
// ctest-labels: sanitize
#include "framework/metrics.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

using namespace xtape;

using xtape::testing::arr;

namespace {
/// Precision's and Recall's counts and results for the same arguments and batch.
struct Confusion {
    double tp, fp, fn, precision, recall;
};
Confusion confusion(std::vector<double> thresholds, std::optional<int> top_k, std::optional<int> class_id,
                    const array_t<float>& y, const array_t<float>& p, const array_t<float>* sw = nullptr)
{
    Precision<float> precision(thresholds, top_k, class_id);
    Recall<float> recall(thresholds, top_k, class_id);
    precision.update_state(y, p, sw);
    recall.update_state(y, p, sw);
    CHECK(precision.true_positives() == recall.true_positives());
    return Confusion{ precision.true_positives(), precision.false_positives(), recall.false_negatives(),
                      precision.result(), recall.result() };
}
} // namespace

TEST_CASE("metrics: Keras's docstring examples, with and without sample weights")
{
    {
        Accuracy<float> m;
        m.update_state(arr<float>({ 1, 2, 3, 4 }, { 4, 1 }), arr<float>({ 0, 2, 3, 4 }, { 4, 1 }));
        CHECK(m.result() == doctest::Approx(0.75));
        m.reset_state();
        array_t<float> sw = arr<float>({ 1, 1, 0, 0 }, { 4 });
        m.update_state(arr<float>({ 1, 2, 3, 4 }, { 4, 1 }), arr<float>({ 0, 2, 3, 4 }, { 4, 1 }), &sw);
        CHECK(m.result() == doctest::Approx(0.5));
    }
    {
        BinaryAccuracy<float> m;
        m.update_state(arr<float>({ 1, 1, 0, 0 }, { 4, 1 }), arr<float>({ 0.98f, 1, 0, 0.6f }, { 4, 1 }));
        CHECK(m.result() == doctest::Approx(0.75));
        m.reset_state();
        array_t<float> sw = arr<float>({ 1, 0, 0, 1 }, { 4 });
        m.update_state(arr<float>({ 1, 1, 0, 0 }, { 4, 1 }), arr<float>({ 0.98f, 1, 0, 0.6f }, { 4, 1 }), &sw);
        CHECK(m.result() == doctest::Approx(0.5));
    }
    const array_t<float> onehot = arr<float>({ 0, 0, 1, 0, 1, 0 }, { 2, 3 });
    const array_t<float> pred = arr<float>({ 0.1f, 0.9f, 0.8f, 0.05f, 0.95f, 0 }, { 2, 3 });
    const array_t<float> sw = arr<float>({ 0.7f, 0.3f }, { 2 });
    {
        CategoricalAccuracy<float> m;
        m.update_state(onehot, pred);
        CHECK(m.result() == doctest::Approx(0.5));
        m.reset_state();
        m.update_state(onehot, pred, &sw);
        CHECK(m.result() == doctest::Approx(0.3));
    }
    {
        SparseCategoricalAccuracy<float> m;
        m.update_state(arr<float>({ 2, 1 }, { 2, 1 }), arr<float>({ 0.1f, 0.6f, 0.3f, 0.05f, 0.95f, 0 }, { 2, 3 }));
        CHECK(m.result() == doctest::Approx(0.5));
        m.reset_state();
        m.update_state(arr<float>({ 2, 1 }, { 2 }), arr<float>({ 0.1f, 0.6f, 0.3f, 0.05f, 0.95f, 0 }, { 2, 3 }), &sw);
        CHECK(m.result() == doctest::Approx(0.3));
    }
    {
        TopKCategoricalAccuracy<float> m(1);
        m.update_state(onehot, pred);
        CHECK(m.result() == doctest::Approx(0.5));
        m.reset_state();
        m.update_state(onehot, pred, &sw);
        CHECK(m.result() == doctest::Approx(0.3));
    }
    {
        SparseTopKCategoricalAccuracy<float> m(1);
        m.update_state(arr<float>({ 2, 1 }, { 2 }), pred);
        CHECK(m.result() == doctest::Approx(0.5));
        m.reset_state();
        m.update_state(arr<float>({ 2, 1 }, { 2 }), pred, &sw);
        CHECK(m.result() == doctest::Approx(0.3));
    }
}

TEST_CASE("metrics: streaming over batches equals the metric over all samples")
{
    // 5 samples, 4 classes, split 3 + 2: the running result weights batches by sample count.
    const array_t<double> y = xt::adapt(std::vector<double>{ 0, 3, 2, 1, 1 }, { 5 });
    array_t<double> p = xt::adapt(std::vector<double>{ 0.7, 0.1, 0.1, 0.1, //
                                                       0.2, 0.3, 0.1, 0.4, //
                                                       0.3, 0.3, 0.2, 0.2, //
                                                       0.1, 0.6, 0.2, 0.1, //
                                                       0.5, 0.2, 0.2, 0.1 },
                                  { 5, 4 });
    // argmax: 0, 3, 0, 1, 0 -> hits at samples 0, 1, 3 = 3/5.
    SparseCategoricalAccuracy<double> all, parts;
    all.update_state(y, p);
    CHECK(all.result() == doctest::Approx(0.6));
    parts.update_state(array_t<double>(xt::view(y, xt::range(0, 3))), array_t<double>(xt::view(p, xt::range(0, 3), xt::all())));
    CHECK(parts.result() == doctest::Approx(2.0 / 3.0));
    parts.update_state(array_t<double>(xt::view(y, xt::range(3, 5))), array_t<double>(xt::view(p, xt::range(3, 5), xt::all())));
    CHECK(parts.result() == doctest::Approx(0.6));

    // top-2: sample 2 (label 2, scores 0.3 0.3 0.2 0.2) has two classes strictly above -> miss;
    // sample 4 (label 1, 0.2 tied with class 2, one class above) -> hit: 4/5.
    SparseTopKCategoricalAccuracy<double> top2(2);
    top2.update_state(y, p);
    CHECK(top2.result() == doctest::Approx(0.8));
}

TEST_CASE("metrics: mae and mse per sample, weighted, and over rank-3 outputs")
{
    const array_t<float> yt = arr<float>({ 1, 2, 3, 4 }, { 2, 2 });
    const array_t<float> yp = arr<float>({ 2, 2, 1, 4 }, { 2, 2 });
    MeanAbsoluteError<float> mae;
    MeanSquaredError<float> mse;
    mae.update_state(yt, yp);
    mse.update_state(yt, yp);
    CHECK(mae.result() == doctest::Approx((0.5 + 1.0) / 2));
    CHECK(mse.result() == doctest::Approx((0.5 + 2.0) / 2));
    mae.reset_state();
    const array_t<float> w = arr<float>({ 3, 1 }, { 2 });
    mae.update_state(yt, yp, &w);
    CHECK(mae.result() == doctest::Approx((3 * 0.5 + 1.0) / 4));
    // (batch, time, features): one value per sample, the mean over its positions.
    mse.reset_state();
    mse.update_state(arr<float>({ 0, 0, 0, 0, 0, 0, 0, 0 }, { 2, 2, 2 }), arr<float>({ 1, 1, 1, 1, 2, 2, 0, 0 }, { 2, 2, 2 }));
    CHECK(mse.result() == doctest::Approx((1.0 + 2.0) / 2));
}

TEST_CASE("metrics: ties, non-integer labels and ties in argmax follow numpy/TF")
{
    SparseTopKCategoricalAccuracy<float> top1(1);
    top1.update_state(arr<float>({ 2 }, { 1 }), arr<float>({ 1, 1, 1, 0.5f }, { 1, 4 }));
    CHECK(top1.result() == 1.0); // nobody scores strictly higher than the label
    SparseCategoricalAccuracy<float> acc;
    acc.update_state(arr<float>({ 2 }, { 1 }), arr<float>({ 1, 1, 1, 0.5f }, { 1, 4 }));
    CHECK(acc.result() == 0.0); // argmax takes the first maximum: class 0
    acc.reset_state();
    acc.update_state(arr<float>({ 0.5f }, { 1 }), arr<float>({ 1, 0 }, { 1, 2 }));
    CHECK(acc.result() == 0.0);
}

TEST_CASE("metrics: Mean, names, resolution of accuracy by shapes, errors")
{
    Mean<float> m;
    m.update(2.0, 3);
    m.update(4.0, 1);
    CHECK(m.result() == doctest::Approx(2.5));
    m.update_values(arr<float>({ 1, 3, 5, 7 }, { 2, 2 }));
    CHECK(m.result() == doctest::Approx((6 + 4 + 2 + 6) / 6.0));
    CHECK_THROWS_AS(m.update_state(arr<float>({ 1 }, { 1 }), arr<float>({ 1 }, { 1 })), NotImplementedError);
    Mean<float> empty;
    CHECK(empty.result() == 0.0);

    CHECK(get_metric<float>("mae")->name() == "mae");
    CHECK(get_metric<float>("mae")->class_name() == "MeanAbsoluteError");
    CHECK(get_metric<float>("mse")->direction() == -1);
    CHECK(get_metric<float>("sparse_top_k_categorical_accuracy")->get_config()["k"] == 5);
    CHECK(get_metric<float>(json{ { "class_name", "TopKCategoricalAccuracy" }, { "config", { { "k", 3 }, { "name", "t3" } } } })
              ->get_config() == json{ { "name", "t3" }, { "dtype", "float32" }, { "k", 3 } });
    CHECK_THROWS_AS(get_metric<float>("f1_score_of_doom"), KeyError);
    CHECK_THROWS_AS(BinaryAccuracy<float>("b", 1.5), ValueError);

    CHECK(resolve_compile_metric<float>("accuracy", { 8 }, { 8, 10 })->class_name() == "SparseCategoricalAccuracy");
    CHECK(resolve_compile_metric<float>("accuracy", { 8, 1 }, { 8, 10 })->class_name() == "SparseCategoricalAccuracy");
    CHECK(resolve_compile_metric<float>("acc", { 8, 10 }, { 8, 10 })->class_name() == "CategoricalAccuracy");
    CHECK(resolve_compile_metric<float>("acc", { 8, 10 }, { 8, 10 })->name() == "acc");
    CHECK(resolve_compile_metric<float>("accuracy", { 8, 1 }, { 8, 1 })->class_name() == "BinaryAccuracy");
    CHECK(resolve_compile_metric<float>("mae", { 8, 1 }, { 8, 1 })->class_name() == "MeanAbsoluteError");

    CategoricalAccuracy<float> c;
    CHECK_THROWS_AS(c.update_state(arr<float>({ 1, 0 }, { 1, 2 }), arr<float>({ 1, 0, 0 }, { 1, 3 })), ShapeError);
    SparseCategoricalAccuracy<float> s;
    CHECK_THROWS_AS(s.update_state(arr<float>({ 1, 0, 1 }, { 3 }), arr<float>({ 1, 0, 0, 1 }, { 2, 2 })), ShapeError);
    const array_t<float> bad_w = arr<float>({ 1, 1, 1 }, { 3 });
    CHECK_THROWS_AS(s.update_state(arr<float>({ 1, 0 }, { 2 }), arr<float>({ 1, 0, 0, 1 }, { 2, 2 }), &bad_w), ShapeError);
}

TEST_CASE("AUC: Keras's docstring example and hand-computed ROC and PR areas")
{
    // Keras: AUC(num_thresholds=3) on y = [0, 0, 1, 1], p = [0, 0.5, 0.3, 0.9]: thresholds
    // [-1e-7, 0.5, 1 + 1e-7], tp = [2, 1, 0], fp = [2, 0, 0], fn = [0, 1, 2], tn = [0, 2, 2].
    const array_t<float> y = arr<float>({ 0, 0, 1, 1 }, { 4 }), p = arr<float>({ 0, 0.5f, 0.3f, 0.9f }, { 4 });
    AUC<float> m(3);
    CHECK(m.name() == "auc");
    REQUIRE(m.thresholds().size() == 3);
    CHECK(m.thresholds()[0] == -1e-7);
    CHECK(m.thresholds()[1] == 0.5);
    CHECK(m.thresholds()[2] == 1 + 1e-7);
    m.update_state(y, p);
    CHECK(m.true_positives() == std::vector<double>{ 2, 1, 0 });
    CHECK(m.false_positives() == std::vector<double>{ 2, 0, 0 });
    CHECK(m.false_negatives() == std::vector<double>{ 0, 1, 2 });
    CHECK(m.true_negatives() == std::vector<double>{ 0, 2, 2 });
    // recall = [1, 0.5, 0], fp rate = [1, 0, 0]: (1 + 0.5) / 2 * (1 - 0) + (0.5 + 0) / 2 * 0.
    CHECK(m.result() == doctest::Approx(0.75));
    m.reset_state();
    const array_t<float> sw = arr<float>({ 1, 0, 0, 1 }, { 4 });
    m.update_state(y, p, &sw);
    CHECK(m.result() == doctest::Approx(1.0));

    // Minoring / majoring: the lower / upper rectangle of each interval.
    AUC<float> lo(3, "ROC", "minoring"), hi(3, "roc", "Majoring");
    lo.update_state(y, p);
    hi.update_state(y, p);
    CHECK(lo.result() == doctest::Approx(0.5));
    CHECK(hi.result() == doctest::Approx(1.0));

    // PR with interpolation (Davis & Goadrich): P = tp + fp = [4, 1, 0]; on [0, 1]: slope
    // dTP/dP = 1/3, intercept 1 - 1/3 = 2/3, area (1/3)(1 + (2/3) ln 4) / 2; on [1, 2]: slope 1,
    // P_B = 0 so the log term drops, area 1 * 1 / 2.
    AUC<float> pr(3, "PR");
    pr.update_state(y, p);
    CHECK(pr.result() == doctest::Approx((1.0 + 2.0 / 3.0 * std::log(4.0)) / 6.0 + 0.5));
    // PR minoring/majoring: recall [1, 0.5, 0], precision [0.5, 1, 0].
    AUC<float> prlo(3, "PR", "minoring"), prhi(3, "PR", "majoring");
    prlo.update_state(y, p);
    prhi.update_state(y, p);
    CHECK(prlo.result() == doctest::Approx(0.25));
    CHECK(prhi.result() == doctest::Approx(1.0));
}

TEST_CASE("AUC: 200 thresholds give the exact ROC AUC when no two points share a bucket; streaming")
{
    // Positives 0.35, 0.8, 0.65, negatives 0.1, 0.4, 0.2: 8 of the 9 pairs are ordered, so
    // the exact AUC is 8/9; buckets ceil(199 p) - 1 are 69, 159, 129, 19, 79, 39, all distinct.
    const array_t<float> y = arr<float>({ 0, 1, 0, 1, 1, 0 }, { 6, 1 });
    const array_t<float> p = arr<float>({ 0.1f, 0.35f, 0.4f, 0.8f, 0.65f, 0.2f }, { 6, 1 });
    AUC<float> m;
    CHECK(m.num_thresholds() == 200);
    CHECK(m.thresholds()[1] == doctest::Approx(1.0 / 199));
    m.update_state(y, p);
    CHECK(m.result() == doctest::Approx(8.0 / 9.0).epsilon(1e-12));
    CHECK(m.true_positives()[69] == 3);
    CHECK(m.true_positives()[70] == 2);
    // Two batches accumulate to the same counts.
    AUC<float> s;
    s.update_state(xt::view(y, xt::range(0, 4), xt::all()), xt::view(p, xt::range(0, 4), xt::all()));
    s.update_state(xt::view(y, xt::range(4, 6), xt::all()), xt::view(p, xt::range(4, 6), xt::all()));
    CHECK(s.true_positives() == m.true_positives());
    CHECK(s.true_negatives() == m.true_negatives());
    CHECK(s.result() == m.result());
    // Logits: sigmoid first. Labels are booleans (nonzero = positive), predictions clipped to [0, 1].
    array_t<float> logits = p;
    for (auto& v : logits)
        v = std::log(v / (1 - v));
    AUC<float> lg(200, "ROC", "interpolation", "auc_logits", {}, /*from_logits=*/true);
    lg.update_state(y, logits);
    CHECK(lg.result() == doctest::Approx(8.0 / 9.0).epsilon(1e-6));
    AUC<float> clipped;
    clipped.update_state(arr<float>({ 0, 5, 0, 1 }, { 4 }), arr<float>({ -2, 0.5f, 0.25f, 3 }, { 4 }));
    CHECK(clipped.false_positives()[0] == 2); // -2 clipped to 0, still above -1e-7
    CHECK(clipped.true_positives()[199] == 0);
    CHECK(clipped.result() == doctest::Approx(1.0));
    // Each element of a (batch, k) output is a point; a per-sample weight covers its row.
    AUC<float> rows;
    const array_t<float> w2 = arr<float>({ 1, 0 }, { 2 });
    rows.update_state(arr<float>({ 1, 0, 0, 1 }, { 2, 2 }), arr<float>({ 0.9f, 0.2f, 0.8f, 0.1f }, { 2, 2 }), &w2);
    CHECK(rows.result() == doctest::Approx(1.0));
    CHECK(rows.true_positives()[0] + rows.false_positives()[0] == 2);
}

TEST_CASE("AUC: given thresholds, configs, names, errors")
{
    const array_t<float> y = arr<float>({ 0, 0, 1, 1 }, { 4 }), p = arr<float>({ 0, 0.5f, 0.3f, 0.9f }, { 4 });
    // Evenly spaced thresholds take the bucket path and match num_thresholds.
    AUC<float> even(200, "ROC", "interpolation", "auc", { 0.5 });
    even.update_state(y, p);
    CHECK(even.result() == doctest::Approx(0.75));
    // Uneven thresholds [-1e-7, 0.3, 0.6, 1+1e-7]: p > t gives tp [2, 1, 1, 0], fp [2, 1, 0, 0]
    // (0.3 is not above 0.3); recall [1, .5, .5, 0], fp rate [1, .5, 0, 0];
    // area .5 * .75 + .5 * .5 + 0 = 0.625.
    AUC<float> uneven(200, "ROC", "interpolation", "auc", { 0.6, 0.3 });
    CHECK(uneven.num_thresholds() == 4);
    uneven.update_state(y, p);
    CHECK(uneven.true_positives() == std::vector<double>{ 2, 1, 1, 0 });
    CHECK(uneven.false_positives() == std::vector<double>{ 2, 1, 0, 0 });
    CHECK(uneven.result() == doctest::Approx(0.625));
    CHECK(uneven.get_config()["thresholds"] == json::array({ 0.3, 0.6 }));

    const json c = AUC<float>().get_config();
    CHECK(c == json{ { "name", "auc" },        { "dtype", "float32" },      { "num_thresholds", 200 },
                     { "curve", "ROC" },       { "summation_method", "interpolation" }, { "multi_label", false },
                     { "num_labels", nullptr }, { "label_weights", nullptr }, { "from_logits", false } });
    auto byname = get_metric<float>("auc");
    CHECK(byname->class_name() == "AUC");
    CHECK(byname->name() == "auc");
    CHECK(byname->direction() == 1);
    auto fromcfg = get_metric<float>(json{ { "class_name", "AUC" },
                                           { "config", { { "name", "pr_auc" }, { "num_thresholds", 3 }, { "curve", "PR" } } } });
    CHECK(fromcfg->name() == "pr_auc");
    fromcfg->update_state(y, p);
    CHECK(fromcfg->result() == doctest::Approx((1.0 + 2.0 / 3.0 * std::log(4.0)) / 6.0 + 0.5));
    CHECK(resolve_compile_metric<float>("auc", { 4, 1 }, { 4, 1 })->class_name() == "AUC");

    CHECK_THROWS_AS(AUC<float>(1), ValueError);
    CHECK_THROWS_AS(AUC<float>(200, "DET"), ValueError);
    CHECK_THROWS_AS(AUC<float>(200, "ROC", "riemann"), ValueError);
    CHECK_THROWS_AS(get_metric<float>(json{ { "class_name", "AUC" }, { "config", { { "multi_label", true } } } }),
                    NotImplementedError);
    AUC<float> m;
    CHECK_THROWS_AS(m.update_state(arr<float>({ 0, 1, 1 }, { 3 }), arr<float>({ 0.1f, 0.2f }, { 2 })), ShapeError);
    const array_t<float> bad_w = arr<float>({ 1, 1, 1 }, { 3 });
    CHECK_THROWS_AS(m.update_state(y, p, &bad_w), ShapeError);
}

TEST_CASE("Precision and Recall: Keras's docstring examples")
{
    const array_t<float> y = arr<float>({ 0, 1, 1, 1 }, { 4 }), p = arr<float>({ 1, 0, 1, 1 }, { 4 });
    const array_t<float> sw = arr<float>({ 0, 0, 1, 0 }, { 4 });
    Precision<float> precision;
    Recall<float> recall;
    precision.update_state(y, p);
    recall.update_state(y, p);
    CHECK(precision.result() == doctest::Approx(2.0 / 3.0));
    CHECK(recall.result() == doctest::Approx(2.0 / 3.0));
    precision.reset_state();
    recall.reset_state();
    precision.update_state(y, p, &sw);
    recall.update_state(y, p, &sw);
    CHECK(precision.result() == 1.0);
    CHECK(recall.result() == 1.0);
    // top_k on equal predictions keeps the lower indices: the first two, both negatives.
    const array_t<float> y2 = arr<float>({ 0, 0, 1, 1 }, { 4 }), ones = arr<float>({ 1, 1, 1, 1 }, { 4 });
    Precision<float> top2({}, 2), top4({}, 4);
    top2.update_state(y2, ones);
    top4.update_state(y2, ones);
    CHECK(top2.result() == 0.0);
    CHECK(top4.result() == 0.5);
}

TEST_CASE("Precision and Recall: class_id and a threshold, as str_ww_ref_model compiles them (hand-computed)")
{
    // Class 0 at threshold 0.95. Row by row: 0.97 with label 0 -> tp; 0.96 without -> fp; 0.5 with
    // -> fn; 0.95 with -> fn (0.95 is not above 0.95); 0.1 without -> neither.
    const array_t<float> y = arr<float>({ 1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1 }, { 5, 3 });
    const array_t<float> p = arr<float>({ 0.97f, 0.02f, 0.01f, 0.96f, 0.03f, 0.01f, 0.5f, 0.4f, 0.1f, 0.95f, 0.05f, 0.0f,
                                   0.1f, 0.8f, 0.1f },
                                 { 5, 3 });
    const Confusion c = confusion({ 0.95 }, std::nullopt, 0, y, p);
    CHECK(c.tp == 1);
    CHECK(c.fp == 1);
    CHECK(c.fn == 2);
    CHECK(c.precision == doctest::Approx(0.5));
    CHECK(c.recall == doctest::Approx(1.0 / 3.0));
    // A weight of 2 on the true positive: precision 2 / 3, recall 2 / 4.
    const array_t<float> sw = arr<float>({ 2, 1, 1, 1, 1 }, { 5 });
    const Confusion weighted = confusion({ 0.95 }, std::nullopt, 0, y, p, &sw);
    CHECK(weighted.precision == doctest::Approx(2.0 / 3.0));
    CHECK(weighted.recall == doctest::Approx(0.5));
    // Without class_id every element counts at the default 0.5: above it are 0.97 and 0.95
    // (labelled) and 0.96 and 0.8 (not): precision 2 / 4; the 5 labelled predictions are 0.97,
    // 0.03, 0.5, 0.95, 0.1: recall 2 / 5.
    const Confusion all = confusion({}, std::nullopt, std::nullopt, y, p);
    CHECK(all.precision == doctest::Approx(0.5));
    CHECK(all.recall == doctest::Approx(2.0 / 5.0));
}

TEST_CASE("Precision and Recall: top_k with class_id and with a threshold (hand-computed)")
{
    // top_k=1, class_id=1 (threshold -1e10: every kept prediction is positive). Rows: class 1 is
    // the top and the label -> tp; class 0 is the top, label 1 -> fn; class 1 top, label 0 -> fp;
    // 0.4 = 0.4 tie: the lower index (class 0) is kept, label 1 -> fn.
    const array_t<float> y = arr<float>({ 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0 }, { 4, 3 });
    const array_t<float> p = arr<float>({ 0.3f, 0.6f, 0.1f, 0.5f, 0.4f, 0.1f, 0.2f, 0.7f, 0.1f, 0.4f, 0.4f, 0.2f }, { 4, 3 });
    const Confusion c = confusion({}, 1, 1, y, p);
    CHECK(c.tp == 1);
    CHECK(c.fp == 1);
    CHECK(c.fn == 2);
    CHECK(c.precision == doctest::Approx(0.5));
    CHECK(c.recall == doctest::Approx(1.0 / 3.0));
    // top_k=2 and threshold 0.45, all classes: kept and above 0.45 are 0.6 (labelled), 0.5 and
    // 0.7 (not): precision 1 / 3; the 4 labelled predictions are 0.6, 0.4 (kept, not above),
    // 0.2 (kept, not above), 0.4 (kept, not above): recall 1 / 4.
    const Confusion c2 = confusion({ 0.45 }, 2, std::nullopt, y, p);
    CHECK(c2.precision == doctest::Approx(1.0 / 3.0));
    CHECK(c2.recall == doctest::Approx(1.0 / 4.0));
    // Streaming: two batches give the counts of one.
    Precision<float> streamed({}, 1, 1);
    streamed.update_state(xt::view(y, xt::range(0, 1)), xt::view(p, xt::range(0, 1)));
    streamed.update_state(xt::view(y, xt::range(1, 4)), xt::view(p, xt::range(1, 4)));
    CHECK(streamed.true_positives() == c.tp);
    CHECK(streamed.false_positives() == c.fp);
}

TEST_CASE("Precision and Recall: configs, names, Keras's errors")
{
    using xtape::testing::contains;
    using xtape::testing::message_of;
    const json file_config{ { "name", "precision" }, { "dtype", "float32" }, { "thresholds", 0.95 },
                            { "top_k", nullptr },    { "class_id", 0 } };
    auto m = get_metric<float>(json{ { "class_name", "Precision" }, { "config", file_config } });
    CHECK(m->class_name() == "Precision");
    CHECK(m->get_config() == file_config);
    CHECK(m->direction() == 1);
    auto r = get_metric<double>(json{ { "class_name", "Recall" },
                                      { "config", { { "name", "recall_top3" }, { "top_k", 3 } } } });
    CHECK(r->name() == "recall_top3");
    CHECK(r->get_config() == json{ { "name", "recall_top3" }, { "dtype", "float64" }, { "thresholds", nullptr },
                                   { "top_k", 3 }, { "class_id", nullptr } });
    CHECK(get_metric<float>("precision")->name() == "precision");
    CHECK(get_metric<float>("Recall")->class_name() == "Recall");
    CHECK(resolve_compile_metric<float>("recall", { 4, 3 }, { 4, 3 })->class_name() == "Recall");

    CHECK(contains(message_of<ValueError>([] { Precision<float>({ 1.5 }); }),
                   "Threshold values must be in [0, 1]. Received: [1.5]"));
    CHECK(contains(message_of<NotImplementedError>([] { Recall<float>({ 0.3, 0.6 }); }), "2 thresholds"));
    CHECK(contains(message_of<ValueError>([] { Precision<float>({}, 0); }), "top_k must be a positive integer"));
    CHECK(contains(message_of<ValueError>([] {
                       get_metric<float>(json{ { "class_name", "Precision" }, { "config", { { "thresholds", "high" } } } });
                   }),
                   "thresholds must be a number or a list of numbers"));
    Precision<float> by_class({}, std::nullopt, 3);
    const array_t<float> flat = arr<float>({ 0, 1 }, { 2 }), two = arr<float>({ 0, 1, 1, 0 }, { 2, 2 });
    CHECK(contains(message_of<ValueError>([&] { by_class.update_state(flat, flat); }),
                   "When class_id is provided, y_pred must be a 2D array"));
    CHECK(contains(message_of<ValueError>([&] { by_class.update_state(two, two); }),
                   "class_id 3 is not below the 2 classes of y_pred (2, 2)"));
    Recall<float> plain;
    CHECK(contains(message_of<ShapeError>([&] { plain.update_state(flat, two); }), "metric 'recall'"));
    const array_t<float> bad_w = arr<float>({ 1, 1, 1 }, { 3 });
    CHECK_THROWS_AS(plain.update_state(two, two, &bad_w), ShapeError);
}
