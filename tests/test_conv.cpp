// Convolution: the fused ops (conv, depthwise_conv, conv_transpose) against a direct loop reference
// over every option combination, hand-computed cases, gradient checks in double, the adjoint
// identity of the transposed convolution, thread-count independence; then the layers.
// ctest-labels: sanitize
#include "framework/conv.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>
#include <xtensor/xview.hpp>

#include <cmath>
#include <functional>

using namespace xtape;
using xtape::testing::arr;
using xtape::testing::error_of;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using D = double;

namespace {

/// One test problem, described the way a Keras user would (not through convolution::Geometry).
struct Case {
    std::size_t rank = 2;
    std::vector<std::size_t> in, k; // spatial
    std::size_t batch = 2, cin = 4, cout = 4, groups = 1;
    std::size_t stride = 1, dilation = 1;
    std::string padding = "valid";
    bool channels_first = false;
    bool bias = true;

    ConvOptions options() const
    {
        ConvOptions o;
        o.strides = { stride };
        o.dilation_rate = { dilation };
        o.padding = padding;
        o.channels_first = channels_first;
        o.groups = groups;
        return o;
    }
    shape_t x_shape() const
    {
        shape_t s{ batch };
        if (channels_first)
            s.push_back(cin);
        s.insert(s.end(), in.begin(), in.end());
        if (!channels_first)
            s.push_back(cin);
        return s;
    }
    shape_t k_shape() const
    {
        shape_t s = k;
        s.push_back(cin / groups);
        s.push_back(cout);
        return s;
    }
    std::string str() const
    {
        return "rank " + std::to_string(rank) + " in " + shape_str(in) + " k " + shape_str(k) + " cin " +
               std::to_string(cin) + " cout " + std::to_string(cout) + " groups " + std::to_string(groups) +
               " stride " + std::to_string(stride) + " dilation " + std::to_string(dilation) + " " + padding +
               (channels_first ? " channels_first" : " channels_last") + (bias ? " bias" : "");
    }
};

/// Output length and padding in front, from Keras's / TensorFlow's formulas written out again.
void out_len(const Case& c, std::size_t d, long& out, long& pad)
{
    const long n = long(c.in[d]), span = long((c.k[d] - 1) * c.dilation + 1), s = long(c.stride);
    if (c.padding == "valid") {
        out = (n - span) / s + 1;
        pad = 0;
    } else if (c.padding == "same") {
        out = (n + s - 1) / s;
        pad = std::max(0L, (out - 1) * s + span - n) / 2;
    } else {
        out = (n - 1) / s + 1;
        pad = span - 1;
    }
}

/// Direct loops over every output element, tap and channel, in long double.
array_t<D> reference_conv(const Case& c, const array_t<D>& x, const array_t<D>& w, const array_t<D>* b)
{
    std::vector<long> out(c.rank), pad(c.rank);
    for (std::size_t d = 0; d < c.rank; ++d)
        out_len(c, d, out[d], pad[d]);
    shape_t ys{ c.batch };
    if (c.channels_first)
        ys.push_back(c.cout);
    for (long o : out)
        ys.push_back(std::size_t(o));
    if (!c.channels_first)
        ys.push_back(c.cout);
    array_t<D> y = array_t<D>::from_shape(ys);
    const std::size_t cg = c.cin / c.groups, og = c.cout / c.groups;
    std::size_t P = 1, taps = 1;
    for (std::size_t d = 0; d < c.rank; ++d) {
        P *= std::size_t(out[d]);
        taps *= c.k[d];
    }
    auto x_at = [&](std::size_t n, std::size_t ch, const std::vector<long>& pos) -> long double {
        std::size_t lin = 0;
        for (std::size_t d = 0; d < c.rank; ++d) {
            if (pos[d] < 0 || pos[d] >= long(c.in[d]))
                return 0;
            lin = lin * c.in[d] + std::size_t(pos[d]);
        }
        std::size_t inP = x.size() / (c.batch * c.cin);
        return c.channels_first ? x.data()[(n * c.cin + ch) * inP + lin] : x.data()[(n * inP + lin) * c.cin + ch];
    };
    for (std::size_t n = 0; n < c.batch; ++n)
        for (std::size_t p = 0; p < P; ++p) {
            std::vector<long> q(c.rank);
            std::size_t rem = p;
            for (std::size_t d = c.rank; d-- > 0;) {
                q[d] = long(rem % std::size_t(out[d]));
                rem /= std::size_t(out[d]);
            }
            for (std::size_t o = 0; o < c.cout; ++o) {
                long double s = b ? b->data()[o] : 0;
                const std::size_t gr = o / og;
                for (std::size_t t = 0; t < taps; ++t) {
                    std::vector<long> pos(c.rank);
                    std::size_t tr = t;
                    for (std::size_t d = c.rank; d-- > 0;) {
                        const long kt = long(tr % c.k[d]);
                        tr /= c.k[d];
                        pos[d] = q[d] * long(c.stride) + kt * long(c.dilation) - pad[d];
                    }
                    for (std::size_t ci = 0; ci < cg; ++ci)
                        s += x_at(n, gr * cg + ci, pos) * (long double)w.data()[(t * cg + ci) * c.cout + o];
                }
                const std::size_t yi = c.channels_first ? (n * c.cout + o) * P + p : (n * P + p) * c.cout + o;
                y.data()[yi] = D(s);
            }
        }
    return y;
}

std::vector<Case> all_cases()
{
    std::vector<Case> cases;
    for (std::size_t rank : { 1, 2, 3 })
        for (bool cf : { false, true })
            for (std::string pad : { "valid", "same", "causal" })
                for (std::size_t stride : { 1, 2 })
                    for (std::size_t dil : { 1, 2 })
                        for (std::size_t groups : { 1, 2 }) {
                            if (pad == "causal" && rank != 1)
                                continue;
                            Case c;
                            c.rank = rank;
                            c.channels_first = cf;
                            c.padding = pad;
                            c.stride = stride;
                            c.dilation = dil;
                            c.groups = groups;
                            c.bias = (stride + dil + groups) % 2 == 0;
                            if (rank == 1) {
                                c.in = { 9 };
                                c.k = { 3 };
                            } else if (rank == 2) {
                                c.in = { 6, 7 };
                                c.k = { 3, 2 };
                            } else {
                                c.in = { 5, 6, 5 };
                                c.k = { 2, 3, 2 };
                                c.cin = 2;
                                c.cout = 2;
                                c.batch = 1;
                            }
                            cases.push_back(c);
                            if (rank == 2 && groups == 1) { // one input channel (a grayscale first layer)
                                c.cin = 1;
                                cases.push_back(c);
                            }
                        }
    return cases;
}

} // namespace

// ---- the op against a direct loop ---------------------------------------------------------------

TEST_CASE("conv: a hand-computed 3x3 input with a 2x2 kernel, valid and same")
{
    const Tensor<D> x(arr({ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, { 1, 3, 3, 1 }));
    const Tensor<D> w(arr({ 1, 1, 1, 1 }, { 2, 2, 1, 1 }));
    // valid: sums of each 2x2 window
    CHECK(conv<D>(x, w, Tensor<D>(), {}).value() == arr({ 12, 16, 24, 28 }, { 1, 2, 2, 1 }));
    // same, stride 1, 2x2: TensorFlow pads 0 before and 1 after, so the last row and column see zeros
    ConvOptions same;
    same.padding = "same";
    CHECK(conv<D>(x, w, Tensor<D>(arr({ 0.5 }, { 1 })), same).value() ==
          arr({ 12.5, 16.5, 9.5, 24.5, 28.5, 15.5, 15.5, 17.5, 9.5 }, { 1, 3, 3, 1 }));
    // stride 2 same on 3x3 with 2x2: out 2x2, total padding 1, all after
    same.strides = { 2 };
    CHECK(conv<D>(x, w, Tensor<D>(), same).value() == arr({ 12, 9, 15, 9 }, { 1, 2, 2, 1 }));
    // causal 1-D: y[t] = x[t-1] * w0 + x[t] * w1
    ConvOptions causal;
    causal.padding = "causal";
    const Tensor<D> x1(arr({ 1, 2, 3, 4 }, { 1, 4, 1 }));
    const Tensor<D> w1(arr({ 10, 1 }, { 2, 1, 1 }));
    CHECK(conv<D>(x1, w1, Tensor<D>(), causal).value() == arr({ 1, 12, 23, 34 }, { 1, 4, 1 }));
}

TEST_CASE("conv: forward equals the direct loop for every rank, layout, padding, stride, dilation, groups")
{
    unsigned seed = 1;
    for (const Case& c : all_cases()) {
        CAPTURE(c.str());
        const Tensor<D> x = random_tensor(c.x_shape(), seed++);
        const Tensor<D> w = random_tensor(c.k_shape(), seed++);
        const Tensor<D> b = c.bias ? random_tensor({ c.cout }, seed++) : Tensor<D>();
        const array_t<D> want = reference_conv(c, x.value(), w.value(), c.bias ? &b.value() : nullptr);
        const array_t<D> got = conv<D>(x, w, b, c.options()).value();
        REQUIRE(shape_of(got) == shape_of(want));
        double worst = 0;
        for (std::size_t i = 0; i < got.size(); ++i)
            worst = std::max(worst, std::abs(got.data()[i] - want.data()[i]));
        CHECK(worst < 1e-12);
        // float runs the same kernels
        Tensor<float> xf(array_t<float>(xt::cast<float>(x.value())));
        Tensor<float> wf(array_t<float>(xt::cast<float>(w.value())));
        Tensor<float> bf = c.bias ? Tensor<float>(array_t<float>(xt::cast<float>(b.value()))) : Tensor<float>();
        const array_t<float> gf = conv<float>(xf, wf, bf, c.options()).value();
        double worst_f = 0;
        for (std::size_t i = 0; i < gf.size(); ++i)
            worst_f = std::max(worst_f, std::abs(double(gf.data()[i]) - want.data()[i]));
        CHECK(worst_f < 1e-5);
    }
}

TEST_CASE("conv: gradient check in double for every option combination")
{
    unsigned seed = 100;
    for (const Case& c : all_cases()) {
        CAPTURE(c.str());
        std::vector<Tensor<D>> inputs{ random_tensor(c.x_shape(), seed++), random_tensor(c.k_shape(), seed++) };
        if (c.bias)
            inputs.push_back(random_tensor({ c.cout }, seed++));
        const ConvOptions o = c.options();
        // the weighted output sums reach ~100, so central differences carry ~1e-8 of rounding
        GradcheckOptions go;
        go.min_abs_error = 1e-7;
        check_gradients(
            [&](const std::vector<Tensor<D>>& t) { return conv<D>(t[0], t[1], t.size() > 2 ? t[2] : Tensor<D>(), o); },
            inputs, go);
    }
}

TEST_CASE("conv: 1x1 kernels read the input in place (pointwise path), with groups and both layouts")
{
    unsigned seed = 300;
    for (bool cf : { false, true })
        for (std::size_t groups : { 1, 2 }) {
            Case c;
            c.in = { 3, 4 };
            c.k = { 1, 1 };
            c.cin = 4;
            c.cout = 6;
            c.groups = groups;
            c.channels_first = cf;
            CAPTURE(c.str());
            std::vector<Tensor<D>> inputs{ random_tensor(c.x_shape(), seed++), random_tensor(c.k_shape(), seed++),
                                           random_tensor({ c.cout }, seed++) };
            const array_t<D> want = reference_conv(c, inputs[0].value(), inputs[1].value(), &inputs[2].value());
            const array_t<D> got = conv<D>(inputs[0], inputs[1], inputs[2], c.options()).value();
            for (std::size_t i = 0; i < got.size(); ++i)
                CHECK(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(1e-12));
            const ConvOptions o = c.options();
            check_gradients([&](const std::vector<Tensor<D>>& t) { return conv<D>(t[0], t[1], t[2], o); }, inputs);
        }
}

TEST_CASE("conv: gradients accumulate when the input is used twice, and unrequested ones are skipped")
{
    const Tensor<D> x = random_tensor({ 2, 5, 5, 3 }, 7);
    const Tensor<D> w = random_tensor({ 3, 3, 3, 3 }, 8);
    ConvOptions same;
    same.padding = "same";
    // conv(x) + x: dx = conv's input gradient + 1
    check_gradients([&](const std::vector<Tensor<D>>& t) { return add(conv<D>(t[0], t[1], Tensor<D>(), same), t[0]); },
                    { x, w });
    // conv(conv(x)) uses the kernel twice
    check_gradients(
        [&](const std::vector<Tensor<D>>& t) {
            return conv<D>(conv<D>(t[0], t[1], Tensor<D>(), same), t[1], Tensor<D>(), same);
        },
        { x, w });
}

TEST_CASE("conv: kernel and bias gradients are bit-identical at 1 and 2 threads")
{
    const int before = max_threads();
    for (bool cf : { false, true }) {
        Tensor<float> x(array_t<float>(xt::cast<float>(random_tensor({ 24, 12, 12, 8 }, 11).value())));
        if (cf)
            x = Tensor<float>(array_t<float>(xt::cast<float>(random_tensor({ 24, 8, 12, 12 }, 11).value())));
        Variable<float> w("w", array_t<float>(xt::cast<float>(random_tensor({ 3, 3, 8, 16 }, 12).value())));
        Variable<float> b("b", array_t<float>(xt::zeros<float>({ 16 })));
        ConvOptions o;
        o.padding = "same";
        o.channels_first = cf;
        auto grads = [&](int threads) {
            set_num_threads(threads);
            GradientTape<float> tape;
            tape.watch(x);
            Tensor<float> y = conv<float>(x, w, b, o);
            Tensor<float> loss = sum(mul(y, y));
            return tape.gradient(loss, std::vector<Tensor<float>>{ x, w.tensor(), b.tensor() });
        };
        const auto g1 = grads(1), g2 = grads(2);
        for (std::size_t i = 0; i < 3; ++i) {
            CAPTURE(i);
            CHECK(g1[i].value() == g2[i].value());
        }
    }
    set_num_threads(before);
}

TEST_CASE("conv: errors name the op and the values")
{
    const Tensor<D> x = random_tensor({ 1, 5, 5, 4 }, 1);
    ConvOptions o;
    CHECK(error_of([&] { conv<D>(x, random_tensor({ 3, 3, 3, 2 }, 2), Tensor<D>(), o); })
              .find("kernel's input-channel dimension must be 4") != std::string::npos);
    o.groups = 3;
    CHECK(error_of([&] { conv<D>(x, random_tensor({ 3, 3, 1, 3 }, 2), Tensor<D>(), o); })
              .find("must be divisible by groups, received groups=3") != std::string::npos);
    o.groups = 1;
    o.padding = "causal";
    CHECK(error_of([&] { conv<D>(x, random_tensor({ 3, 3, 4, 2 }, 2), Tensor<D>(), o); })
              .find("'causal' is only allowed for 1-D") != std::string::npos);
    o.padding = "valid";
    CHECK(error_of([&] { conv<D>(x, random_tensor({ 6, 6, 4, 2 }, 2), Tensor<D>(), o); })
              .find("the output would be empty") != std::string::npos);
    CHECK_THROWS_AS(conv<D>(x, random_tensor({ 3, 3, 4, 2 }, 2), random_tensor({ 3 }, 3), o), ShapeError);
    CHECK_THROWS_AS(conv<D>(random_tensor({ 5, 4 }, 1), random_tensor({ 3, 4 }, 2), Tensor<D>(), o), ShapeError);
}

// ---- depthwise ----------------------------------------------------------------------------------

TEST_CASE("depthwise_conv: each channel with its own filters, output channel c * m + j; gradients")
{
    unsigned seed = 500;
    for (bool cf : { false, true })
        for (std::size_t m : { 1, 2 })
            for (std::size_t stride : { 1, 2 }) {
                const std::size_t C = 3;
                const shape_t xs = cf ? shape_t{ 2, C, 6, 5 } : shape_t{ 2, 6, 5, C };
                const Tensor<D> x = random_tensor(xs, seed++);
                const Tensor<D> w = random_tensor({ 3, 3, C, m }, seed++);
                const Tensor<D> b = random_tensor({ C * m }, seed++);
                ConvOptions o;
                o.padding = "same";
                o.strides = { stride };
                o.channels_first = cf;
                const array_t<D> y = depthwise_conv<D>(x, w, b, o).value();
                // each output channel against a single-channel conv of its input channel
                for (std::size_t c = 0; c < C; ++c)
                    for (std::size_t j = 0; j < m; ++j) {
                        Case one;
                        one.in = { 6, 5 };
                        one.k = { 3, 3 };
                        one.cin = 1;
                        one.cout = 1;
                        one.stride = stride;
                        one.padding = "same";
                        one.channels_first = cf;
                        array_t<D> xc = cf ? array_t<D>(xt::view(x.value(), xt::all(), xt::range(c, c + 1)))
                                           : array_t<D>(xt::view(x.value(), xt::all(), xt::all(), xt::all(),
                                                                 xt::range(c, c + 1)));
                        array_t<D> wc = xt::view(w.value(), xt::all(), xt::all(), xt::range(c, c + 1), xt::range(j, j + 1));
                        array_t<D> bc = xt::view(b.value(), xt::range(c * m + j, c * m + j + 1));
                        const array_t<D> want = reference_conv(one, xc, wc, &bc);
                        const std::size_t o_ch = c * m + j;
                        for (std::size_t i = 0; i < want.size(); ++i) {
                            const std::size_t n = i / (want.size() / 2), p = i % (want.size() / 2);
                            const std::size_t P = want.size() / 2;
                            const D got = cf ? y.data()[(n * C * m + o_ch) * P + p] : y.data()[(n * P + p) * C * m + o_ch];
                            CHECK(got == doctest::Approx(want.data()[i]).epsilon(1e-12));
                        }
                    }
                check_gradients([&](const std::vector<Tensor<D>>& t) { return depthwise_conv<D>(t[0], t[1], t[2], o); },
                                { x, w, b });
            }
}

// ---- transposed ---------------------------------------------------------------------------------

TEST_CASE("conv_transpose: Keras's output lengths")
{
    auto len = [](std::size_t n, std::size_t k, std::size_t s, const char* pad, std::vector<long> op = {}) {
        ConvOptions o;
        o.strides = { s };
        o.padding = pad;
        o.output_padding = op;
        return conv_transpose<D>(random_tensor({ 1, n, n, 2 }, 1), random_tensor({ k, k, 3, 2 }, 2), Tensor<D>(), o)
            .shape()[1];
    };
    // keras.ops.conv_transpose docs / compute_conv_transpose_output_length by hand
    CHECK(len(4, 3, 2, "same") == 8);
    CHECK(len(4, 3, 2, "valid") == 9);
    CHECK(len(4, 3, 1, "valid") == 6);
    CHECK(len(4, 2, 3, "valid") == 12); // stride > kernel: n * s
    CHECK(len(4, 3, 2, "same", { 1 }) == 8);
    CHECK(len(4, 3, 2, "same", { 0 }) == 7);
    CHECK(len(4, 3, 2, "valid", { 1 }) == 10);
    CHECK(error_of([&] { len(4, 3, 2, "valid", { 2 }); }).find("Strides must be greater than output padding") !=
          std::string::npos);
}

TEST_CASE("conv_transpose: a hand-computed case and the adjoint identity <conv(x), y> = <x, conv_transpose(y)>")
{
    // 1-D, stride 2, kernel [1, 10], valid: every input scatters x*1 and x*10 to positions 2i, 2i+1
    ConvOptions o;
    o.strides = { 2 };
    const Tensor<D> x(arr({ 1, 2, 3 }, { 1, 3, 1 }));
    const Tensor<D> w(arr({ 1, 10 }, { 2, 1, 1 }));
    CHECK(conv_transpose<D>(x, w, Tensor<D>(arr({ 0.5 }, { 1 })), o).value() ==
          arr({ 1.5, 10.5, 2.5, 20.5, 3.5, 30.5 }, { 1, 6, 1 }));

    unsigned seed = 700;
    for (bool cf : { false, true })
        for (std::string pad : { "valid", "same" })
            for (std::size_t s : { 1, 2, 3 })
                for (std::size_t dil : { 1, 2 }) {
                    ConvOptions t;
                    t.strides = { s };
                    t.dilation_rate = { dil };
                    t.padding = pad;
                    t.channels_first = cf;
                    const shape_t ys = cf ? shape_t{ 2, 3, 4, 3 } : shape_t{ 2, 4, 3, 3 };
                    const Tensor<D> y = random_tensor(ys, seed++);
                    const Tensor<D> w2 = random_tensor({ 3, 2, 2, 3 }, seed++); // (k, k, filters 2, in 3)
                    const Tensor<D> z = conv_transpose<D>(y, w2, Tensor<D>(), t);
                    const Tensor<D> u = random_tensor(z.shape(), seed++);
                    // the convolution from z's shape back to y's with the same kernel
                    const convolution::Geometry g = convolution::conv_transpose_geometry(ys, w2.shape(), t);
                    array_t<D> cu = array_t<D>::from_shape(ys);
                    convolution::forward<D>(g, u.data(), w2.data(), nullptr, cu.data());
                    CAPTURE(pad);
                    CAPTURE(s);
                    CAPTURE(dil);
                    CAPTURE(cf);
                    CHECK(double(xt::sum(u.value() * z.value())()) ==
                          doctest::Approx(double(xt::sum(cu * y.value())())).epsilon(1e-12));
                    // outputs reach ~100 here, so central differences carry ~1e-8 of rounding
                    GradcheckOptions go;
                    go.min_abs_error = 1e-7;
                    check_gradients([&](const std::vector<Tensor<D>>& in) { return conv_transpose<D>(in[0], in[1], in[2], t); },
                                    { y, w2, random_tensor({ 2 }, seed++) }, go);
                }
}
