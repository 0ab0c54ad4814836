// ctest-labels: sanitize
// Activations (and the elementwise math ops of ops_unary.cpp): forward values against Keras's
// published test numbers or values computed independently (Python's math module, 17 digits),
// float64 gradient checks away from kinks, numerical edge cases and the by-name lookup.
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
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


/// Uniform values in [lo, hi) that stay at least `margin` away from every kink.
Tensor<double> random_away_from(const shape_t& shape, unsigned seed, double lo, double hi,
                                const std::vector<double>& kinks, double margin = 0.05)
{
    Tensor<double> t = random_tensor(shape, seed, lo, hi);
    double* p = t.mutable_value().data();
    for (std::size_t i = 0; i < t.size(); ++i)
        for (double k : kinks)
            if (std::abs(p[i] - k) < margin)
                p[i] = k + (p[i] < k ? -margin : margin) * 2;
    return t;
}

const std::vector<double> xs = { -3.5, -1.2, -0.3, 0.4, 1.7, 4.2 };

} // namespace

TEST_CASE("relu: Keras's activations_test numbers for negative_slope, max_value and threshold")
{
    const Tensor<double> x = tensor_of({ -10, -5, 0.0, 5, 10 });
    check_values(relu(x), { 0, 0, 0, 5, 10 });
    check_values(relu(x, 0.5, -1.0, 0.0), { -5.0, -2.5, 0.0, 5.0, 10.0 });
    check_values(relu(x, 0.0, 5.0, 0.0), { 0.0, 0.0, 0.0, 5.0, 5.0 });
    check_values(relu(x, 0.0, -1.0, 5.0), { 0.0, 0.0, 0.0, 0.0, 10.0 });
    check_values(relu(x, 0.0, 5.0, 5.0), { 0.0, 0.0, 0.0, 0.0, 5.0 });
    check_values(relu(x, 0.5, 5.0, 5.0), { -7.5, -5.0, -2.5, 0.0, 5.0 });
    check_values(relu(tensor_of({ -10, -5, 0.0, 5, 10, 12 }), 0.0, 6.0, 0.0),
                 { 0.0, 0.0, 0.0, 5.0, 6.0, 6.0 });
    check_values(activation("relu6", tensor_of({ -10, -5, 0.0, 5, 10, 12 })),
                 { 0.0, 0.0, 0.0, 5.0, 6.0, 6.0 });
    // Keras keeps x in (threshold, 0) when threshold < 0 and there is no max_value.
    check_values(relu(tensor_of({ -2.0, -0.5, 1.0 }), 0.0, -1.0, -1.0), { 0.0, -0.5, 1.0 });
}

TEST_CASE("selu and elu: Keras's activations_test numbers")
{
    const double alpha = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946;
    check_values(selu(tensor_of({ 1, 2 })), { scale, 2 * scale });
    check_values(selu(tensor_of({ -1, -2 })),
                 { (std::exp(-1.0) - 1) * scale * alpha, (std::exp(-2.0) - 1) * scale * alpha });
    check_values(elu(tensor_of({ -1, -2 })), { std::exp(-1.0) - 1, std::exp(-2.0) - 1 });
    check_values(elu(tensor_of({ -1, 0.5 }), 2.0), { 2 * (std::exp(-1.0) - 1), 0.5 });
}

TEST_CASE("elementwise activations match independently computed values")
{
    const Tensor<double> x = tensor_of(xs);
    check_values(sigmoid(x), { 0.029312230751356319, 0.23147521650098238, 0.42555748318834102,
                               0.598687660112452, 0.84553473491646525, 0.98522596830672693 });
    check_values(tanh(x), { -0.99817789761119868, -0.83365460701215521, -0.2913126124515909,
                            0.3799489622552249, 0.93540907060309897, 0.99955036645953343 });
    check_values(softplus(x), { 0.029750418272620566, 0.26328246733803123, 0.55435524446852713,
                                0.91301525239995263, 1.867786029386266, 4.2148842546719187 });
    check_values(softsign(x), { -0.77777777777777779, -0.54545454545454541, -0.23076923076923075,
                                0.28571428571428575, 0.62962962962962954, 0.80769230769230771 });
    check_values(gelu(x), { -0.00081420177662439031, -0.13808360426604999, -0.11462657334331421,
                            0.26216869664412967, 1.6242387133104768, 4.1999439478541332 });
    check_values(gelu(x, true), { -0.00061619765537374027, -0.13829723086213508, -0.11462907645724074,
                                  0.26216116942735618, 1.624105895551156, 4.199973902933043 });
    check_values(swish(x), { -0.10259280762974712, -0.27777025980117886, -0.12766724495650231,
                             0.23947506404498081, 1.437409049357991, 4.137949066888253 });
    check_values(hard_sigmoid(x), { 0, 0.3, 0.45, 0.56666666666666665, 0.78333333333333333, 1 });
    check_values(selu(x), { -1.7050093409572831, -1.2285699954174891, -0.45566731537912208,
                            0.42028039494219221, 1.7861916785043168, 4.4129441468930182 });
    check_values(elu(x), { -0.96980261657768152, -0.69880578808779792, -0.25918177931828212, 0.4, 1.7, 4.2 });
    check_values(leaky_relu(x), { -0.7, -0.24, -0.06, 0.4, 1.7, 4.2 });
    check_values(leaky_relu(x, 0.01), { -0.035, -0.012, -0.003, 0.4, 1.7, 4.2 });
}

TEST_CASE("float32 activations agree with float64")
{
    const Tensor<double> xd = random_tensor({ 7, 9 }, 31, -6.0, 6.0);
    const Tensor<float> xf(array_t<float>(xt::cast<float>(xd.value())));
    for (const std::string name :
         { "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh", "softplus",
           "softsign", "gelu", "swish", "silu", "exponential", "softmax", "log_softmax", "linear" }) {
        CAPTURE(name);
        const Tensor<double> yd = activation(name, xd);
        const Tensor<float> yf = activation(name, xf);
        for (std::size_t i = 0; i < yd.size(); ++i)
            CHECK(yf.data()[i] == doctest::Approx(yd.data()[i]).epsilon(1e-5).scale(1e-1));
    }
}

TEST_CASE("numerical edge cases stay finite")
{
    for (double big : { 100.0, 1000.0, 1e30 }) {
        CAPTURE(big);
        const Tensor<double> x = tensor_of({ -big, big });
        check_values(sigmoid(x), { 0.0, 1.0 }, 1e-12, 1e-40);
        check_values(softplus(x), { 0.0, big }, 1e-12, 1e-40);
        check_values(swish(x), { 0.0, big }, 1e-12, 1e-30);
        check_values(tanh(x), { -1.0, 1.0 });
        check_values(softsign(x), { -big / (1 + big), big / (1 + big) });
        const Tensor<float> xf = tensor_of<float>({ -big, big });
        CHECK(std::isfinite(sigmoid(xf).data()[0]));
        CHECK(std::isfinite(softplus(xf).data()[0]));
    }
    // Keras's softplus near zero and for large values.
    check_values(softplus(tensor_of({ 1e-8, -1e-8, 60.0, -60.0 })),
                 { std::log1p(std::exp(1e-8)), std::log1p(std::exp(-1e-8)), 60.0, std::exp(-60.0) });
    check_values(softmax(tensor_of({ 1000.0, 0.0, -1000.0 })), { 1.0, 0.0, 0.0 }, 1e-12, 1e-300);
    check_values(log_softmax(tensor_of({ 1000.0, 0.0, -1000.0 })), { 0.0, -1000.0, -2000.0 });
    const Tensor<float> big_f = tensor_of<float>({ 1e4, -1e4, 3e4, 3e4 }, { 2, 2 });
    check_values(softmax(big_f), { 1.0, 0.0, 0.5, 0.5 }, 1e-6, 1e-30);
    check_values(log_softmax(big_f), { 0.0, -2e4, -std::log(2.0), -std::log(2.0) }, 1e-6, 1e-6);
}

TEST_CASE("softmax and log_softmax: values along every axis")
{
    // Two rows computed with Python's math module.
    const Tensor<double> x = tensor_of({ 1.0, 2.0, 3.0, 0.5, -1.0, 0.0, 4.0, 2.0 }, { 2, 4 });
    const std::vector<double> p = { 0.085368893509788893, 0.23205671194331448,   0.63079554324746678,
                                    0.051778851299429808, 0.0058066284315270653, 0.015784052550033668,
                                    0.86178006925777129,  0.11662924976066819 };
    const std::vector<double> lp = { -2.4607734891568511,  -1.4607734891568511, -0.46077348915685118,
                                     -2.9607734891568511,  -5.1487551809444003, -4.1487551809444003,
                                     -0.14875518094440063, -2.1487551809444008 };
    check_values(softmax(x), p);
    check_values(softmax(x, 1), p);
    check_values(log_softmax(x), lp);
    check_values(activation("softmax", x), p);
    check_values(activation("log_softmax", x), lp);
    // Along axis 0 of the transposed input: the same numbers, transposed.
    const Tensor<double> xt = transpose(x);
    const Tensor<double> st = transpose(softmax(xt, 0)), lt = transpose(log_softmax(xt, -2));
    check_values(st, p);
    check_values(lt, lp);

    // A middle axis of a rank-3 tensor: each lane sums to 1 and matches a lane computed alone.
    const Tensor<double> x3 = random_tensor({ 3, 5, 4 }, 40, -3.0, 3.0);
    const Tensor<double> y3 = softmax(x3, 1), l3 = log_softmax(x3, 1);
    for (std::size_t o = 0; o < 3; ++o)
        for (std::size_t j = 0; j < 4; ++j) {
            std::vector<double> lane;
            for (std::size_t k = 0; k < 5; ++k)
                lane.push_back(x3.value()(o, k, j));
            const Tensor<double> ref = softmax(tensor_of(lane));
            double s = 0;
            for (std::size_t k = 0; k < 5; ++k) {
                CHECK(y3.value()(o, k, j) == doctest::Approx(ref.data()[k]).epsilon(1e-13));
                CHECK(l3.value()(o, k, j) == doctest::Approx(std::log(ref.data()[k])).epsilon(1e-13));
                s += y3.value()(o, k, j);
            }
            CHECK(s == doctest::Approx(1.0).epsilon(1e-14));
        }
}

TEST_CASE("softmax: the result does not depend on the thread count")
{
    const Tensor<float> x = random_tensor<float>({ 512, 300 }, 41, -8.0, 8.0);
    const int saved = max_threads();
    set_num_threads(1);
    const array_t<float> one = softmax(x).value(), one_log = log_softmax(x, 0).value();
    set_num_threads(2);
    const array_t<float> two = softmax(x).value(), two_log = log_softmax(x, 0).value();
    set_num_threads(saved);
    CHECK(one == two);
    CHECK(one_log == two_log);
}

TEST_CASE("gradcheck: elementwise activations away from their kinks")
{
    const shape_t s = { 3, 5 };
    const Tensor<double> x = random_away_from(s, 50, -3.0, 3.0, { 0.0 });
    check_gradients([](const V& in) { return relu(in[0]); }, V{ x });
    check_gradients([](const V& in) { return leaky_relu(in[0]); }, V{ x });
    check_gradients([](const V& in) { return leaky_relu(in[0], 0.05); }, V{ x });
    check_gradients([](const V& in) { return elu(in[0]); }, V{ x });
    check_gradients([](const V& in) { return elu(in[0], 0.7); }, V{ x });
    check_gradients([](const V& in) { return selu(in[0]); }, V{ x });
    check_gradients([](const V& in) { return sigmoid(in[0]); }, V{ x });
    check_gradients([](const V& in) { return tanh(in[0]); }, V{ x });
    check_gradients([](const V& in) { return softplus(in[0]); }, V{ x });
    check_gradients([](const V& in) { return softsign(in[0]); }, V{ x });
    check_gradients([](const V& in) { return gelu(in[0]); }, V{ x });
    check_gradients([](const V& in) { return gelu(in[0], true); }, V{ x });
    check_gradients([](const V& in) { return swish(in[0]); }, V{ x });
    const Tensor<double> xh = random_away_from(s, 51, -5.0, 5.0, { -3.0, 3.0 });
    check_gradients([](const V& in) { return hard_sigmoid(in[0]); }, V{ xh });
    // relu with every parameter; kinks at 0, the threshold and max_value.
    const Tensor<double> xr = random_away_from({ 4, 6 }, 52, -4.0, 4.0, { -1.0, 0.0, 0.5, 2.0 });
    check_gradients([](const V& in) { return relu(in[0], 0.3, 2.0, 0.5); }, V{ xr });
    check_gradients([](const V& in) { return relu(in[0], 0.3, -1.0, 0.5); }, V{ xr });
    check_gradients([](const V& in) { return relu(in[0], 0.0, 2.0, -1.0); }, V{ xr });
    check_gradients([](const V& in) { return relu(in[0], 0.2, 2.0, 0.0); }, V{ xr });
    check_gradients([](const V& in) { return relu(in[0], 0.0, 6.0, 0.0); }, V{ xr });
}

TEST_CASE("gradcheck: activations in a broadcast expression and a value used twice")
{
    const Tensor<double> x = random_away_from({ 4, 3 }, 53, -2.0, 2.0, { 0.0 }, 0.2);
    const Tensor<double> b = tensor_of({ 0.1, -0.05, 0.07 });
    check_gradients([](const V& in) { return sigmoid(add(in[0], in[1])); }, V{ x, b });
    check_gradients([](const V& in) { return mul(tanh(in[0]), in[0]); }, V{ x });
    check_gradients([](const V& in) { return add(relu(in[0]), swish(in[0])); }, V{ x });
    check_gradients([](const V& in) { return mul(softmax(in[0]), in[0]); }, V{ x });
}

TEST_CASE("gradcheck: softmax and log_softmax over every axis")
{
    const Tensor<double> x = random_tensor({ 3, 4, 5 }, 54, -3.0, 3.0);
    for (int axis : { 0, 1, 2, -1, -2 }) {
        CAPTURE(axis);
        check_gradients([axis](const V& in) { return softmax(in[0], axis); }, V{ x });
        check_gradients([axis](const V& in) { return log_softmax(in[0], axis); }, V{ x });
    }
    const Tensor<double> v = random_tensor({ 6 }, 55);
    check_gradients([](const V& in) { return softmax(in[0]); }, V{ v });
    check_gradients([](const V& in) { return log_softmax(in[0]); }, V{ v });
}

TEST_CASE("gradcheck: every activation through activation(name)")
{
    const Tensor<double> x = random_away_from({ 3, 4 }, 56, -4.0, 4.0, { -3.0, 0.0, 3.0, 6.0 });
    for (const std::string name :
         { "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh",
           "softplus", "softsign", "gelu", "swish", "silu", "exponential", "softmax", "log_softmax" }) {
        CAPTURE(name);
        check_gradients([&name](const V& in) { return activation(name, in[0]); }, V{ x });
    }
}

TEST_CASE("gradcheck: elementwise math ops of ops_unary.cpp")
{
    const Tensor<double> x = random_away_from({ 3, 4 }, 57, -2.0, 2.0, { -0.5, 0.0, 0.5 });
    const Tensor<double> pos = random_tensor({ 3, 4 }, 58, 0.2, 3.0);
    check_gradients([](const V& in) { return neg(in[0]); }, V{ x });
    check_gradients([](const V& in) { return exp(in[0]); }, V{ x });
    check_gradients([](const V& in) { return log(in[0]); }, V{ pos });
    check_gradients([](const V& in) { return sqrt(in[0]); }, V{ pos });
    check_gradients([](const V& in) { return square(in[0]); }, V{ x });
    check_gradients([](const V& in) { return abs(in[0]); }, V{ x });
    check_gradients([](const V& in) { return clip(in[0], -0.5, 0.5); }, V{ x });
    check_values(clip(tensor_of({ -2.0, 0.25, 3.0 }), -0.5, 0.5), { -0.5, 0.25, 0.5 });
    CHECK_THROWS_AS(clip(x, 1.0, -1.0), ValueError);
}

TEST_CASE("activation(): Keras names, linear is the identity, unknown names throw KeyError")
{
    const Tensor<double> x = tensor_of(xs);
    CHECK(activation("linear", x).node() == x.node());
    check_values(activation("exponential", x),
                 { 0.030197383422318501, 0.30119421191220214, 0.74081822068171788, 1.4918246976412703,
                   5.4739473917271999, 66.686331040925154 });
    const std::vector<double> swish_ref = { -0.10259280762974712, -0.27777025980117886, -0.12766724495650231,
                                            0.23947506404498081,  1.437409049357991,    4.137949066888253 };
    check_values(activation("swish", x), swish_ref);
    check_values(activation("silu", x), swish_ref);
    for (const std::string name :
         { "linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "softsign", "selu", "elu", "gelu",
           "swish", "silu", "hard_sigmoid", "leaky_relu", "exponential", "log_softmax", "relu6" })
        CHECK_MESSAGE(is_activation_name(name), name);
    CHECK_FALSE(is_activation_name("typo"));
    CHECK_FALSE(is_activation_name(""));
    CHECK_FALSE(is_activation_name("Relu"));
    const std::string msg = message_of<KeyError>([&] { activation("typo", x); });
    CHECK(contains(msg, "activation"));
    CHECK(contains(msg, "'typo'"));
    CHECK_THROWS_AS(activation<float>("softmax2", Tensor<float>::zeros({ 2 })), KeyError);
}

TEST_CASE("softmax errors name the op and the shape")
{
    const Tensor<double> x = random_tensor({ 2, 3 }, 59);
    const std::string axis_msg = message_of<ValueError>([&] { softmax(x, 2); });
    CHECK(contains(axis_msg, "softmax"));
    CHECK(contains(axis_msg, "rank 2"));
    CHECK(contains(message_of<ValueError>([&] { log_softmax(x, -3); }), "log_softmax"));
    const std::string scalar_msg = message_of<ShapeError>([&] { softmax(Tensor<double>::scalar(1.0)); });
    CHECK(contains(scalar_msg, "softmax"));
    CHECK(contains(scalar_msg, "()"));
}
