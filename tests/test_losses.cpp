// ctest-labels: sanitize
// Per-sample losses: Keras's published numbers (keras/src/losses/losses_test.py and the
// docstring examples of losses.py), float64 gradient checks with respect to both y_true and
// y_pred, Keras's shape rules (squeeze/expand of a trailing 1), numerical edge cases, errors.
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace xtape;
using xtape::testing::message_of;
using xtape::testing::contains;
using xtape::testing::tensor_of;
using xtape::testing::check_values;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using V = std::vector<Tensor<double>>;

namespace {


template <class T>
double mean_of(const Tensor<T>& t)
{
    double s = 0;
    for (std::size_t i = 0; i < t.size(); ++i)
        s += t.data()[i];
    return s / static_cast<double>(t.size());
}

/// One-hot rows for integer labels.
Tensor<double> one_hot(const std::vector<std::size_t>& labels, std::size_t classes)
{
    Tensor<double> t = Tensor<double>::zeros({ labels.size(), classes });
    for (std::size_t r = 0; r < labels.size(); ++r)
        t.mutable_value()(r, labels[r]) = 1.0;
    return t;
}

/// Rows of positive values that sum to 1 (a probability distribution per row).
Tensor<double> random_distribution(const shape_t& shape, unsigned seed)
{
    Tensor<double> t = random_tensor(shape, seed, 0.1, 1.0);
    const std::size_t n = shape.back();
    double* p = t.mutable_value().data();
    for (std::size_t r = 0; r < t.size() / n; ++r) {
        double s = 0;
        for (std::size_t k = 0; k < n; ++k)
            s += p[r * n + k];
        for (std::size_t k = 0; k < n; ++k)
            p[r * n + k] /= s;
    }
    return t;
}

// keras/src/losses/losses_test.py, MeanSquaredErrorTest and friends
const std::vector<double> reg_true = { 1, 9, 2, -5, -2, 6 };
const std::vector<double> reg_pred = { 4, 8, 12, 8, 1, 3 };
// CategoricalCrossentropyTest
const std::vector<double> cce_pred = { 0.9, 0.05, 0.05, 0.5, 0.89, 0.6, 0.05, 0.01, 0.94 };
const std::vector<double> cce_logits = { 8.0, 1.0, 1.0, 0.0, 9.0, 1.0, 2.0, 3.0, 5.0 };

} // namespace

TEST_CASE("mean_squared_error and mean_absolute_error: Keras's numbers")
{
    const Tensor<double> t = tensor_of(reg_true, { 2, 3 }), p = tensor_of(reg_pred, { 2, 3 });
    const Tensor<double> mse = mean_squared_error(t, p), mae = mean_absolute_error(t, p);
    CHECK(mse.shape() == shape_t{ 2 });
    check_values(mse, { 110.0 / 3, 187.0 / 3 });
    CHECK(mean_of(mse) == doctest::Approx(49.5));
    check_values(mae, { 14.0 / 3, 19.0 / 3 });
    CHECK(mean_of(mae) == doctest::Approx(5.5));
    check_values(mean_squared_error(t, t), { 0.0, 0.0 });
    // float32 gives the same numbers
    const Tensor<float> tf = tensor_of<float>(reg_true, { 2, 3 }), pf = tensor_of<float>(reg_pred, { 2, 3 });
    check_values(mean_squared_error(tf, pf), { 110.0 / 3, 187.0 / 3 }, 1e-6, 1e-6);
    check_values(mean_absolute_error(tf, pf), { 14.0 / 3, 19.0 / 3 }, 1e-6, 1e-6);
}

TEST_CASE("regression losses follow Keras's squeeze_or_expand_to_same_rank")
{
    // test_base_function_reduction: y_true (3,), y_pred (3, 1) -> loss (3,)
    const Tensor<double> t = tensor_of({ 4, 8, 12 }), p = tensor_of({ 3, 0, 1 }, { 3, 1 });
    const Tensor<double> l = mean_squared_error(t, p);
    CHECK(l.shape() == shape_t{ 3 });
    check_values(l, { 1, 64, 121 });
    check_values(mean_squared_error(p, t), { 1, 64, 121 });
    // y_true (2, 3) and y_pred (2, 3, 1): the trailing 1 is squeezed, one value per sample
    const Tensor<double> t2 = tensor_of(reg_true, { 2, 3 }), p3 = tensor_of(reg_pred, { 2, 3, 1 });
    CHECK(mean_absolute_error(t2, p3).shape() == shape_t{ 2 });
    check_values(mean_absolute_error(t2, p3), { 14.0 / 3, 19.0 / 3 });
    // equal ranks with a trailing 1 (Keras's timestep test): loss per timestep
    const Tensor<double> t3 = tensor_of(reg_true, { 2, 3, 1 });
    CHECK(mean_squared_error(t3, p3).shape() == shape_t{ 2, 3 });
    check_values(mean_squared_error(t3, p3), { 9, 1, 100, 169, 9, 9 });
    check_gradients([](const V& in) { return mean_squared_error(in[0], in[1]); }, V{ t, p });
    check_gradients([](const V& in) { return huber(in[0], in[1]); }, V{ t2, p3 });
}

TEST_CASE("regression losses broadcast y_true against y_pred")
{
    const Tensor<double> t = random_tensor({ 3 }, 1), p = random_tensor({ 4, 3 }, 2);
    const Tensor<double> l = mean_squared_error(t, p);
    CHECK(l.shape() == shape_t{ 4 });
    for (std::size_t r = 0; r < 4; ++r) {
        double s = 0;
        for (std::size_t k = 0; k < 3; ++k)
            s += std::pow(p.value()(r, k) - t.value()(k), 2);
        CHECK(l.data()[r] == doctest::Approx(s / 3).epsilon(1e-14));
    }
    check_gradients([](const V& in) { return mean_squared_error(in[0], in[1]); }, V{ t, p });
    check_gradients([](const V& in) { return mean_absolute_error(in[0], in[1]); }, V{ t, p });
    check_gradients([](const V& in) { return huber(in[0], in[1], 0.3); }, V{ t, p });
    check_gradients([](const V& in) { return mean_squared_error(in[0], in[1]); }, V{ p, t });
    const Tensor<double> col = random_tensor({ 4, 1 }, 3);
    check_gradients([](const V& in) { return huber(in[0], in[1]); }, V{ col, random_tensor({ 2, 4, 3 }, 4) });
    const std::string msg = message_of<ShapeError>([] {
        mean_squared_error(Tensor<double>::zeros({ 2, 3 }), Tensor<double>::zeros({ 2, 4 }));
    });
    CHECK(contains(msg, "mean_squared_error"));
    CHECK(contains(msg, "(2, 3)"));
    CHECK(contains(msg, "(2, 4)"));
    CHECK_THROWS_AS(mean_absolute_error(Tensor<double>::scalar(1), Tensor<double>::scalar(2)), ShapeError);
}

TEST_CASE("binary_crossentropy: Keras's numbers")
{
    const Tensor<double> eye = tensor_of({ 1, 0, 0, 0, 1, 0, 0, 0, 1 }, { 3, 3 });
    const Tensor<double> p = tensor_of({ 0.9, 0.1, 0.2, 0.3, 0.8, 0.1, 0.1, 0.2, 0.7 }, { 3, 3 });
    const Tensor<double> l = binary_crossentropy(eye, p);
    CHECK(l.shape() == shape_t{ 3 });
    check_values(l, { 0.14462152754328741, 0.22839300363692283, 0.22839300363692283 }, 1e-6, 1e-9);
    CHECK(mean_of(l) == doctest::Approx(0.20046903).epsilon(1e-6));
    CHECK(std::abs(mean_of(binary_crossentropy(eye, eye))) < 1e-6);
    // Saturated probabilities: Keras's float32 value 3.98559 comes from clipping at 1 - 1e-7 in
    // float32, where 1 - (1 - 1e-7) = 2^-23.
    const Tensor<float> tf = tensor_of<float>({ 1, 0, 1, 0 }, { 2, 2 }),
                        pf = tensor_of<float>({ 1, 1, 1, 0 }, { 2, 2 });
    CHECK(mean_of(binary_crossentropy(tf, pf)) == doctest::Approx(3.98559).epsilon(1e-5));
    // ... and in float64 the clip leaves exactly 1e-7.
    const Tensor<double> td = tensor_of({ 1, 0, 1, 0 }, { 2, 2 }), pd = tensor_of({ 1, 1, 1, 0 }, { 2, 2 });
    CHECK(mean_of(binary_crossentropy(td, pd)) == doctest::Approx(-std::log(1e-7) / 4).epsilon(1e-6));
    // from logits
    const Tensor<double> t2 = tensor_of({ 1, 0, 1, 0, 1, 1 }, { 2, 3 });
    const Tensor<double> z2 = tensor_of({ 10.0, -10.0, 10.0, 10.0, 10.0, -10.0 }, { 2, 3 });
    const Tensor<double> lz = binary_crossentropy(t2, z2, true);
    check_values(lz, { 0.0, 6.666 }, 1e-3, 1e-3);
    CHECK(mean_of(lz) == doctest::Approx(3.3333).epsilon(1e-4));
    const Tensor<double> z_ok = tensor_of({ 10, -10, -10, -10, 10, -10, -10, -10, 10 }, { 3, 3 });
    CHECK(std::abs(mean_of(binary_crossentropy(eye, z_ok, true))) < 1e-4);
}

TEST_CASE("binary_crossentropy from logits agrees with the probability form and stays finite")
{
    const Tensor<double> z = random_tensor({ 4, 5 }, 5, -4.0, 4.0), t = random_tensor({ 4, 5 }, 6, 0.0, 1.0);
    const Tensor<double> from_logits = binary_crossentropy(t, z, true),
                         from_probs = binary_crossentropy(t, sigmoid(z));
    for (std::size_t i = 0; i < 4; ++i)
        CHECK(from_logits.data()[i] == doctest::Approx(from_probs.data()[i]).epsilon(1e-9));
    // |z| = 100: finite loss and gradient, in both precisions
    for (bool use_float : { false, true }) {
        CAPTURE(use_float);
        const std::vector<double> zs = { 100, -100, 100, -100 }, ys = { 0, 1, 1, 0 };
        if (use_float) {
            const Tensor<float> l =
                binary_crossentropy(tensor_of<float>(ys, { 1, 4 }), tensor_of<float>(zs, { 1, 4 }), true);
            check_values(l, { 50.0 }, 1e-6, 1e-6);
        } else {
            Tensor<double> zt = tensor_of(zs, { 1, 4 });
            GradientTape<double> tape;
            tape.watch(zt);
            const Tensor<double> l = binary_crossentropy(tensor_of(ys, { 1, 4 }), zt, true);
            check_values(l, { 50.0 });
            const auto g = tape.gradient(l, V{ zt });
            check_values(g[0], { 0.25, -0.25, 0.0, 0.0 }, 1e-12, 1e-30);
        }
    }
}

TEST_CASE("binary_crossentropy: shapes must match")
{
    // Keras's test_shape_mismatch
    const Tensor<double> t = tensor_of({ 0, 1, 2 }, { 3, 1 }), p = tensor_of(cce_pred, { 3, 3 });
    const std::string msg = message_of<ShapeError>([&] { binary_crossentropy(t, p); });
    CHECK(contains(msg, "binary_crossentropy"));
    CHECK(contains(msg, "same shape"));
    CHECK(contains(msg, "(3, 1)"));
    CHECK(contains(msg, "(3, 3)"));
    // (N,) against (N, 1) is fine (Keras expands the rank-1 side)
    CHECK(binary_crossentropy(tensor_of({ 1, 0 }), tensor_of({ 0.7, 0.2 }, { 2, 1 })).shape() ==
          shape_t{ 2 });
}

TEST_CASE("categorical_crossentropy: Keras's numbers")
{
    const Tensor<double> eye = tensor_of({ 1, 0, 0, 0, 1, 0, 0, 0, 1 }, { 3, 3 });
    const Tensor<double> l = categorical_crossentropy(eye, tensor_of(cce_pred, { 3, 3 }));
    check_values(l, { 0.10536051565782628, 0.8046684549923527, 0.06187540371808753 });
    CHECK(mean_of(l) == doctest::Approx(0.3239).epsilon(1e-4));
    const Tensor<double> lz = categorical_crossentropy(eye, tensor_of(cce_logits, { 3, 3 }), true);
    check_values(lz, { 0.0018221028929250593, 0.00045876718223070156, 0.1698460195562852 });
    check_values(lz, { 0.001822, 0.000459, 0.169846 }, 1e-3, 1e-6);
    CHECK(mean_of(lz) == doctest::Approx(0.0573).epsilon(1e-3));
    // docstring example of keras.losses.categorical_crossentropy
    const Tensor<float> ld =
        categorical_crossentropy(tensor_of<float>({ 0, 1, 0, 0, 0, 1 }, { 2, 3 }),
                                 tensor_of<float>({ 0.05, 0.95, 0, 0.1, 0.8, 0.1 }, { 2, 3 }));
    check_values(ld, { 0.0513, 2.303 }, 1e-3, 1e-4);
    // float32 matches the float64 numbers
    const Tensor<float> lf =
        categorical_crossentropy(tensor_of<float>({ 1, 0, 0, 0, 1, 0, 0, 0, 1 }, { 3, 3 }),
                                 tensor_of<float>(cce_logits, { 3, 3 }), true);
    check_values(lf, { 0.0018221028929250593, 0.00045876718223070156, 0.1698460195562852 }, 1e-4, 1e-7);
    // all correct: one-hot probabilities are clipped, huge logits give 0
    check_values(categorical_crossentropy(eye, eye), { 0, 0, 0 }, 1e-6, 1e-6);
    check_values(categorical_crossentropy(tensor_of({ 1, 0, 0 }, { 1, 3 }),
                                          tensor_of({ 100, -100, -100 }, { 1, 3 }), true),
                 { 0.0 }, 1e-12, 1e-12);
}

TEST_CASE("categorical_crossentropy: large logits stay finite, gradient is softmax - y")
{
    Tensor<double> z = tensor_of({ 1000, -1000, 0, -500, 500, 0 }, { 2, 3 });
    const Tensor<double> y = tensor_of({ 0, 1, 0, 0, 1, 0 }, { 2, 3 });
    GradientTape<double> tape;
    tape.watch(z);
    const Tensor<double> l = categorical_crossentropy(y, z, true);
    check_values(l, { 2000.0, 0.0 });
    const auto g = tape.gradient(l, V{ z });
    check_values(g[0], { 1, -1, 0, 0, 0, 0 }, 1e-12, 1e-30);
    const Tensor<float> lf = categorical_crossentropy(tensor_of<float>({ 0, 1, 0 }, { 1, 3 }),
                                                      tensor_of<float>({ 1e4, -1e4, 0 }, { 1, 3 }), true);
    check_values(lf, { 2e4 }, 1e-6, 1e-6);
}

TEST_CASE("categorical_crossentropy: any axis equals the last axis of the transposed input")
{
    const Tensor<double> z = random_tensor({ 4, 3, 5 }, 7, -3.0, 3.0);
    const Tensor<double> y = random_distribution({ 4, 3, 5 }, 8);
    for (bool logits : { true, false }) {
        CAPTURE(logits);
        const Tensor<double> zz = logits ? z : softmax(z);
        const Tensor<double> l1 = categorical_crossentropy(y, zz, logits, 1);
        CHECK(l1.shape() == shape_t{ 4, 5 });
        const Tensor<double> ref =
            categorical_crossentropy(transpose(y, { 0, 2, 1 }), transpose(zz, { 0, 2, 1 }), logits);
        check_values(l1, std::vector<double>(ref.data(), ref.data() + ref.size()), 1e-12, 1e-14);
        const Tensor<double> l0 = categorical_crossentropy(y, zz, logits, 0);
        const Tensor<double> ref0 =
            categorical_crossentropy(transpose(y, { 1, 2, 0 }), transpose(zz, { 1, 2, 0 }), logits);
        check_values(l0, std::vector<double>(ref0.data(), ref0.data() + ref0.size()), 1e-12, 1e-14);
        for (int axis : { 0, 1, -1 }) {
            CAPTURE(axis);
            check_gradients(
                [axis, logits](const V& in) { return categorical_crossentropy(in[0], in[1], logits, axis); },
                V{ y, zz });
        }
    }
}

TEST_CASE("gradcheck: categorical_crossentropy with soft labels, both inputs, a value used twice")
{
    const Tensor<double> y = random_distribution({ 5, 4 }, 9);
    const Tensor<double> z = random_tensor({ 5, 4 }, 10, -2.0, 2.0);
    // unnormalized positive predictions exercise the p / sum(p) step
    const Tensor<double> p = random_tensor({ 5, 4 }, 11, 0.2, 2.0);
    check_gradients([](const V& in) { return categorical_crossentropy(in[0], in[1], true); }, V{ y, z });
    check_gradients([](const V& in) { return categorical_crossentropy(in[0], in[1], false); }, V{ y, p });
    // labels that do not sum to 1 (the closed form uses sum(y))
    const Tensor<double> y2 = random_tensor({ 5, 4 }, 12, 0.0, 1.0);
    check_gradients([](const V& in) { return categorical_crossentropy(in[0], in[1], true); }, V{ y2, z });
    const Tensor<double> q = random_distribution({ 3, 4 }, 13);
    check_gradients([](const V& in) { return categorical_crossentropy(in[0], in[0], false); }, V{ q });
    check_gradients([](const V& in) { return categorical_crossentropy(in[0], in[0], true); }, V{ q });
    check_gradients([](const V& in) { return categorical_crossentropy(softmax(in[0]), in[0], true); },
                    V{ z });
    // rank 1: one sample, scalar result
    check_gradients([](const V& in) { return categorical_crossentropy(in[0], in[1], true); },
                    V{ tensor_of({ 0, 1, 0 }), random_tensor({ 3 }, 14) });
}

TEST_CASE("categorical_crossentropy: errors")
{
    // Keras's test_shape_mismatch
    const Tensor<double> t = tensor_of({ 0, 1, 2 }, { 3, 1 }), p = tensor_of(cce_pred, { 3, 3 });
    const std::string msg = message_of<ShapeError>([&] { categorical_crossentropy(t, p); });
    CHECK(contains(msg, "categorical_crossentropy"));
    CHECK(contains(msg, "same shape"));
    CHECK(contains(msg, "(3, 1)"));
    CHECK(contains(msg, "(3, 3)"));
    CHECK(contains(message_of<ValueError>([&] { categorical_crossentropy(p, p, true, 2); }),
                   "categorical_crossentropy"));
    CHECK_THROWS_AS(categorical_crossentropy(Tensor<double>::scalar(1), Tensor<double>::scalar(1)),
                    ShapeError);
}

TEST_CASE("categorical_crossentropy: the result does not depend on the thread count")
{
    const Tensor<float> z = random_tensor<float>({ 2048, 64 }, 15, -5.0, 5.0);
    Tensor<float> y = Tensor<float>::zeros({ 2048, 64 });
    for (std::size_t r = 0; r < 2048; ++r)
        y.mutable_value()(r, (r * 7) % 64) = 1.0f;
    const int saved = max_threads();
    set_num_threads(1);
    const array_t<float> one = categorical_crossentropy(y, z, true).value();
    set_num_threads(2);
    const array_t<float> two = categorical_crossentropy(y, z, true).value();
    set_num_threads(saved);
    CHECK(one == two);
}

TEST_CASE("sparse_categorical_crossentropy: Keras's numbers and one-hot equivalence")
{
    const Tensor<double> p = tensor_of(cce_pred, { 3, 3 }), z = tensor_of(cce_logits, { 3, 3 });
    for (const Tensor<double>& labels : { tensor_of({ 0, 1, 2 }), tensor_of({ 0, 1, 2 }, { 3, 1 }) }) {
        CAPTURE(shape_str(labels.shape()));
        const Tensor<double> l = sparse_categorical_crossentropy(labels, p);
        CHECK(l.shape() == shape_t{ 3 });
        CHECK(mean_of(l) == doctest::Approx(0.3239).epsilon(1e-4));
        check_values(sparse_categorical_crossentropy(labels, z, true), { 0.001822, 0.000459, 0.169846 }, 1e-3,
                     1e-6);
        CHECK(mean_of(sparse_categorical_crossentropy(labels, z, true)) ==
              doctest::Approx(0.0573).epsilon(1e-3));
    }
    const Tensor<double> eye = tensor_of({ 1, 0, 0, 0, 1, 0, 0, 0, 1 }, { 3, 3 });
    CHECK(std::abs(mean_of(sparse_categorical_crossentropy(tensor_of({ 0, 1, 2 }), eye))) < 1e-6);
    // same values and gradients as the categorical form with one-hot labels
    const std::vector<std::size_t> lab = { 2, 0, 3, 3, 1 };
    const Tensor<double> labels = tensor_of({ 2, 0, 3, 3, 1 });
    const Tensor<double> zz = random_tensor({ 5, 4 }, 16, -3.0, 3.0);
    const Tensor<double> pp = random_tensor({ 5, 4 }, 17, 0.2, 2.0);
    for (bool logits : { true, false }) {
        CAPTURE(logits);
        const Tensor<double>& in = logits ? zz : pp;
        const Tensor<double> a = sparse_categorical_crossentropy(labels, in, logits);
        const Tensor<double> b = categorical_crossentropy(one_hot(lab, 4), in, logits);
        check_values(a, std::vector<double>(b.data(), b.data() + b.size()), 1e-13, 1e-15);
        check_gradients(
            [&labels, logits](const V& x) { return sparse_categorical_crossentropy(labels, x[0], logits); },
            V{ in });
    }
}

TEST_CASE("sparse_categorical_crossentropy: higher rank, float32, saturated probabilities")
{
    const Tensor<double> z = random_tensor({ 2, 3, 4 }, 18, -2.0, 2.0);
    const Tensor<double> labels = tensor_of({ 0, 3, 1, 2, 2, 0 }, { 2, 3 });
    CHECK(sparse_categorical_crossentropy(labels, z, true).shape() == shape_t{ 2, 3 });
    check_gradients([&labels](const V& x) { return sparse_categorical_crossentropy(labels, x[0], true); },
                    V{ z });
    check_gradients([&labels](const V& x) { return sparse_categorical_crossentropy(labels, x[0], false); },
                    V{ random_tensor({ 2, 3, 4 }, 19, 0.2, 1.0) });
    const Tensor<float> lf = sparse_categorical_crossentropy(tensor_of<float>({ 0, 1, 2 }),
                                                             tensor_of<float>(cce_logits, { 3, 3 }), true);
    check_values(lf, { 0.0018221028929250593, 0.00045876718223070156, 0.1698460195562852 }, 1e-4, 1e-7);
    // a predicted probability of 0 for the true class is clipped to 1e-7, not infinite
    const Tensor<double> l0 =
        sparse_categorical_crossentropy(tensor_of({ 1 }), tensor_of({ 1.0, 0.0 }, { 1, 2 }));
    check_values(l0, { -std::log(1e-7) });
    check_values(
        sparse_categorical_crossentropy(tensor_of({ 1 }), tensor_of({ 200.0, -200.0 }, { 1, 2 }), true),
        { 400.0 });
}

TEST_CASE("sparse_categorical_crossentropy: bad labels and shapes")
{
    const Tensor<double> z = tensor_of(cce_logits, { 3, 3 });
    const std::string msg = message_of<ValueError>([&] {
        sparse_categorical_crossentropy(tensor_of({ 0, 3, 1 }), z, true);
    });
    CHECK(contains(msg, "sparse_categorical_crossentropy"));
    CHECK(contains(msg, "label 3"));
    CHECK(contains(msg, "3 classes"));
    CHECK_THROWS_AS(sparse_categorical_crossentropy(tensor_of({ 0, -1, 1 }), z), ValueError);
    CHECK_THROWS_AS(sparse_categorical_crossentropy(tensor_of({ 0, 1.5, 1 }), z), ValueError);
    CHECK_THROWS_AS(sparse_categorical_crossentropy(tensor_of({ 0, std::nan(""), 1 }), z), ValueError);
    const std::string shape_msg = message_of<ShapeError>([&] {
        sparse_categorical_crossentropy(tensor_of({ 0, 1 }), z);
    });
    CHECK(contains(shape_msg, "sparse_categorical_crossentropy"));
    CHECK(contains(shape_msg, "(2,)"));
    CHECK(contains(shape_msg, "(3, 3)"));
    CHECK_THROWS_AS(sparse_categorical_crossentropy(tensor_of({ 0, 1, 2 }, { 3, 1, 1 }), z), ShapeError);
    CHECK_THROWS_AS(sparse_categorical_crossentropy(Tensor<double>::scalar(0), Tensor<double>::scalar(1)),
                    ShapeError);
}

TEST_CASE("huber: Keras's numbers for the quadratic and the linear part")
{
    const Tensor<double> t = tensor_of({ 1.0, 0.0, 1.0, 1.0, 0.0, 0.0 }, { 2, 3 });
    const Tensor<double> p = tensor_of({ 0.9, 0.2, 0.2, 0.8, 0.4, 0.6 }, { 2, 3 });
    check_values(huber(t, p), { 0.115, 0.09333333333333334 });
    CHECK(mean_of(huber(t, p)) == doctest::Approx(0.625 / 6));
    check_values(huber(t, p, 0.8), { 0.115, 0.09333333333333334 });
    check_values(huber(t, p, 0.3), { 0.07333333333333333, 0.07666666666666666 });
    // docstring example: 0.155; with delta 0.5 the 0.6 errors are in the linear part
    const Tensor<double> t2 = tensor_of({ 0, 1, 0, 0 }, { 2, 2 }),
                         p2 = tensor_of({ 0.6, 0.4, 0.4, 0.6 }, { 2, 2 });
    CHECK(mean_of(huber(t2, p2)) == doctest::Approx(0.155));
    check_values(huber(t2, p2, 0.5), { 0.175, 0.1275 });
    check_values(huber(t, t), { 0, 0 });
    // gradients away from |e| = delta
    const Tensor<double> a = random_tensor({ 4, 5 }, 20, -2.0, 2.0),
                         b = random_tensor({ 4, 5 }, 21, -2.0, 2.0);
    for (double delta : { 1.0, 0.37 }) {
        CAPTURE(delta);
        check_gradients([delta](const V& in) { return huber(in[0], in[1], delta); }, V{ a, b });
    }
    CHECK_THROWS_AS(huber(t, p, -1.0), ValueError);
}

TEST_CASE("kl_divergence: Keras's numbers, clipping, gradients")
{
    const Tensor<double> p = tensor_of({ 0.4, 0.9, 0.12, 0.36, 0.3, 0.4 }, { 2, 3 });
    const Tensor<double> t = tensor_of({ 0.5, 0.8, 0.12, 0.7, 0.43, 0.8 }, { 2, 3 });
    const Tensor<double> l = kl_divergence(t, p);
    check_values(l, { 0.017345347131998173, 1.1748023325967356 });
    CHECK(mean_of(l) == doctest::Approx(0.5960738398643669));
    const Tensor<float> lf = kl_divergence(tensor_of<float>({ 0.5, 0.8, 0.12, 0.7, 0.43, 0.8 }, { 2, 3 }),
                                           tensor_of<float>({ 0.4, 0.9, 0.12, 0.36, 0.3, 0.4 }, { 2, 3 }));
    check_values(lf, { 0.017345347131998173, 1.1748023325967356 }, 1e-5, 1e-6);
    // zeros are clipped to 1e-7 on both sides: finite values
    const Tensor<double> z =
        kl_divergence(tensor_of({ 1.0, 0.0 }, { 1, 2 }), tensor_of({ 0.0, 1.0 }, { 1, 2 }));
    check_values(z, { std::log(1.0 / 1e-7) + 1e-7 * std::log(1e-7) });
    const Tensor<double> tt = random_distribution({ 3, 4 }, 22), pp = random_distribution({ 3, 4 }, 23);
    check_gradients([](const V& in) { return kl_divergence(in[0], in[1]); }, V{ tt, pp });
    check_gradients([](const V& in) { return kl_divergence(in[0], in[1]); },
                    V{ random_distribution({ 4 }, 24), pp });
}

TEST_CASE("gradcheck: binary_crossentropy with respect to labels and predictions")
{
    const Tensor<double> t = random_tensor({ 3, 4 }, 25, 0.0, 1.0);
    const Tensor<double> p = random_tensor({ 3, 4 }, 26, 0.05, 0.95);
    const Tensor<double> z = random_tensor({ 3, 4 }, 27, -5.0, 5.0);
    check_gradients([](const V& in) { return binary_crossentropy(in[0], in[1]); }, V{ t, p });
    check_gradients([](const V& in) { return binary_crossentropy(in[0], in[1], true); }, V{ t, z });
    check_gradients([](const V& in) { return binary_crossentropy(sigmoid(in[0]), in[0], true); }, V{ z });
    check_gradients([](const V& in) { return binary_crossentropy(in[0], in[1]); },
                    V{ random_tensor({ 6, 1 }, 28, 0.0, 1.0), random_tensor({ 6 }, 29, 0.1, 0.9) });
}

TEST_CASE("losses compose with the tape: the mean of a loss over a batch")
{
    // A Dense-softmax-crossentropy step in miniature, every piece through the same tape.
    const Tensor<double> x = random_tensor({ 6, 4 }, 30), w = random_tensor({ 4, 3 }, 31),
                         b = random_tensor({ 3 }, 32);
    const Tensor<double> labels = tensor_of({ 0, 2, 1, 1, 0, 2 });
    check_gradients(
        [&](const V& in) {
            return mean(sparse_categorical_crossentropy(labels, linear(x, in[0], in[1]), true));
        },
        V{ w, b });
    check_gradients(
        [&](const V& in) {
            return mean(
                categorical_crossentropy(one_hot({ 0, 2, 1, 1, 0, 2 }, 3), softmax(linear(x, in[0], in[1]))));
        },
        V{ w, b });
}
