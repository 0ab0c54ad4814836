// Streaming metrics against Keras's documented examples and hand-computed values.
// ctest-labels: sanitize
#include "framework/metrics.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

using namespace xtape;

using xtape::testing::arr;

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
