// Streaming metrics against Keras's documented examples and hand-computed values.
// ctest-labels: sanitize
#include "framework/metrics.hpp"

#include <doctest/doctest.h>

#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

using namespace xtape;

namespace {
array_t<float> arr(std::initializer_list<float> v, shape_t s)
{
    array_t<float> a = array_t<float>::from_shape(s);
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}
} // namespace

TEST_CASE("metrics: Keras's docstring examples, with and without sample weights")
{
    {
        Accuracy<float> m;
        m.update_state(arr({ 1, 2, 3, 4 }, { 4, 1 }), arr({ 0, 2, 3, 4 }, { 4, 1 }));
        CHECK(m.result() == doctest::Approx(0.75));
        m.reset_state();
        array_t<float> sw = arr({ 1, 1, 0, 0 }, { 4 });
        m.update_state(arr({ 1, 2, 3, 4 }, { 4, 1 }), arr({ 0, 2, 3, 4 }, { 4, 1 }), &sw);
        CHECK(m.result() == doctest::Approx(0.5));
    }
    {
        BinaryAccuracy<float> m;
        m.update_state(arr({ 1, 1, 0, 0 }, { 4, 1 }), arr({ 0.98f, 1, 0, 0.6f }, { 4, 1 }));
        CHECK(m.result() == doctest::Approx(0.75));
        m.reset_state();
        array_t<float> sw = arr({ 1, 0, 0, 1 }, { 4 });
        m.update_state(arr({ 1, 1, 0, 0 }, { 4, 1 }), arr({ 0.98f, 1, 0, 0.6f }, { 4, 1 }), &sw);
        CHECK(m.result() == doctest::Approx(0.5));
    }
    const array_t<float> onehot = arr({ 0, 0, 1, 0, 1, 0 }, { 2, 3 });
    const array_t<float> pred = arr({ 0.1f, 0.9f, 0.8f, 0.05f, 0.95f, 0 }, { 2, 3 });
    const array_t<float> sw = arr({ 0.7f, 0.3f }, { 2 });
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
        m.update_state(arr({ 2, 1 }, { 2, 1 }), arr({ 0.1f, 0.6f, 0.3f, 0.05f, 0.95f, 0 }, { 2, 3 }));
        CHECK(m.result() == doctest::Approx(0.5));
        m.reset_state();
        m.update_state(arr({ 2, 1 }, { 2 }), arr({ 0.1f, 0.6f, 0.3f, 0.05f, 0.95f, 0 }, { 2, 3 }), &sw);
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
        m.update_state(arr({ 2, 1 }, { 2 }), pred);
        CHECK(m.result() == doctest::Approx(0.5));
        m.reset_state();
        m.update_state(arr({ 2, 1 }, { 2 }), pred, &sw);
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
    const array_t<float> yt = arr({ 1, 2, 3, 4 }, { 2, 2 });
    const array_t<float> yp = arr({ 2, 2, 1, 4 }, { 2, 2 });
    MeanAbsoluteError<float> mae;
    MeanSquaredError<float> mse;
    mae.update_state(yt, yp);
    mse.update_state(yt, yp);
    CHECK(mae.result() == doctest::Approx((0.5 + 1.0) / 2));
    CHECK(mse.result() == doctest::Approx((0.5 + 2.0) / 2));
    mae.reset_state();
    const array_t<float> w = arr({ 3, 1 }, { 2 });
    mae.update_state(yt, yp, &w);
    CHECK(mae.result() == doctest::Approx((3 * 0.5 + 1.0) / 4));
    // (batch, time, features): one value per sample, the mean over its positions.
    mse.reset_state();
    mse.update_state(arr({ 0, 0, 0, 0, 0, 0, 0, 0 }, { 2, 2, 2 }), arr({ 1, 1, 1, 1, 2, 2, 0, 0 }, { 2, 2, 2 }));
    CHECK(mse.result() == doctest::Approx((1.0 + 2.0) / 2));
}

TEST_CASE("metrics: ties, non-integer labels and ties in argmax follow numpy/TF")
{
    SparseTopKCategoricalAccuracy<float> top1(1);
    top1.update_state(arr({ 2 }, { 1 }), arr({ 1, 1, 1, 0.5f }, { 1, 4 }));
    CHECK(top1.result() == 1.0); // nobody scores strictly higher than the label
    SparseCategoricalAccuracy<float> acc;
    acc.update_state(arr({ 2 }, { 1 }), arr({ 1, 1, 1, 0.5f }, { 1, 4 }));
    CHECK(acc.result() == 0.0); // argmax takes the first maximum: class 0
    acc.reset_state();
    acc.update_state(arr({ 0.5f }, { 1 }), arr({ 1, 0 }, { 1, 2 }));
    CHECK(acc.result() == 0.0);
}

TEST_CASE("metrics: Mean, names, resolution of accuracy by shapes, errors")
{
    Mean<float> m;
    m.update(2.0, 3);
    m.update(4.0, 1);
    CHECK(m.result() == doctest::Approx(2.5));
    m.update_values(arr({ 1, 3, 5, 7 }, { 2, 2 }));
    CHECK(m.result() == doctest::Approx((6 + 4 + 2 + 6) / 6.0));
    CHECK_THROWS_AS(m.update_state(arr({ 1 }, { 1 }), arr({ 1 }, { 1 })), NotImplementedError);
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
    CHECK_THROWS_AS(c.update_state(arr({ 1, 0 }, { 1, 2 }), arr({ 1, 0, 0 }, { 1, 3 })), ShapeError);
    SparseCategoricalAccuracy<float> s;
    CHECK_THROWS_AS(s.update_state(arr({ 1, 0, 1 }, { 3 }), arr({ 1, 0, 0, 1 }, { 2, 2 })), ShapeError);
    const array_t<float> bad_w = arr({ 1, 1, 1 }, { 3 });
    CHECK_THROWS_AS(s.update_state(arr({ 1, 0 }, { 2 }), arr({ 1, 0, 0, 1 }, { 2, 2 }), &bad_w), ShapeError);
}
