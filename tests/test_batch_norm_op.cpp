// ctest-labels: sanitize
// The fused batch-norm op: values against a naive double reference written from the formulas,
// float64 gradient checks over the combinations that change the code path, numerics and
// determinism across thread counts.
#include "framework/batch_norm.hpp"
#include "framework/gradcheck.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "tests/helpers.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;
using V = std::vector<Tensor<double>>;

namespace {

// ---- a naive reference: per element, its channel and its statistics group ---------------------

struct RefSpec {
    std::vector<int> axes{ -1 };
    double eps = 1e-3;
    std::size_t vbs = 0;
    const std::vector<double>* mask = nullptr; ///< per element of shape[:-1]
    bool renorm = false;
    std::vector<double> rn_mean, rn_std;
    double rmin = 0, rmax = 1e300, dmax = 1e300;
};

struct RefOut {
    std::vector<double> y, mean, var, r, d; // mean/var per channel (averaged over ghost batches)
};

struct Indexer {
    shape_t shape;
    std::vector<bool> normalized;
    std::size_t channels = 1, groups = 1;
    Indexer(const shape_t& s, const std::vector<int>& axes, std::size_t vbs)
        : shape(s)
        , normalized(s.size(), false)
    {
        for (int a : axes)
            normalized[a < 0 ? a + static_cast<int>(s.size()) : a] = true;
        for (std::size_t k = 0; k < s.size(); ++k)
            if (normalized[k])
                channels *= s[k];
        if (vbs)
            groups = s[0] / vbs;
    }
    void locate(std::size_t f, std::size_t& c, std::size_t& g) const
    {
        std::vector<std::size_t> idx(shape.size());
        for (std::size_t k = shape.size(); k-- > 0;) {
            idx[k] = f % shape[k];
            f /= shape[k];
        }
        c = 0;
        for (std::size_t k = 0; k < shape.size(); ++k)
            if (normalized[k])
                c = c * shape[k] + idx[k];
        g = groups > 1 ? idx[0] % groups : 0;
    }
};

RefOut reference(const std::vector<double>& x, const shape_t& shape, const std::vector<double>& gamma,
                 const std::vector<double>& beta, const RefSpec& s)
{
    Indexer ix(shape, s.axes, s.vbs);
    const std::size_t C = ix.channels, G = ix.groups, n = x.size(), last = shape.back();
    std::vector<double> sw(G * C, 0), swx(G * C, 0), m(G * C), v(G * C, 0);
    auto w = [&](std::size_t f) { return s.mask ? (*s.mask)[f / last] : 1.0; };
    for (std::size_t f = 0; f < n; ++f) {
        std::size_t c, g;
        ix.locate(f, c, g);
        sw[g * C + c] += w(f);
        swx[g * C + c] += w(f) * x[f];
    }
    const double e = s.mask ? 1e-7 : 0.0;
    for (std::size_t k = 0; k < G * C; ++k)
        m[k] = swx[k] / (sw[k] + e);
    for (std::size_t f = 0; f < n; ++f) {
        std::size_t c, g;
        ix.locate(f, c, g);
        const double dv = (s.mask ? w(f) * x[f] : x[f]) - m[g * C + c];
        v[g * C + c] += w(f) * dv * dv;
    }
    for (std::size_t k = 0; k < G * C; ++k)
        v[k] /= sw[k] + e;
    RefOut out;
    out.mean.assign(C, 0);
    out.var.assign(C, 0);
    for (std::size_t c = 0; c < C; ++c) {
        for (std::size_t g = 0; g < G; ++g) {
            out.mean[c] += m[g * C + c] / G;
            out.var[c] += v[g * C + c] / G;
        }
    }
    out.r.assign(C, 1.0);
    out.d.assign(C, 0.0);
    if (s.renorm)
        for (std::size_t c = 0; c < C; ++c) {
            const double sd = std::max(s.rn_std[c], std::sqrt(s.eps));
            out.r[c] = std::clamp(std::sqrt(out.var[c] + s.eps) / sd, s.rmin, s.rmax);
            out.d[c] = std::clamp((out.mean[c] - s.rn_mean[c]) / sd, -s.dmax, s.dmax);
        }
    out.y.resize(n);
    for (std::size_t f = 0; f < n; ++f) {
        std::size_t c, g;
        ix.locate(f, c, g);
        const double xhat = (x[f] - m[g * C + c]) / std::sqrt(v[g * C + c] + s.eps);
        const double ga = gamma.empty() ? 1.0 : gamma[c];
        const double be = beta.empty() ? 0.0 : beta[c];
        out.y[f] = (xhat * out.r[c] + out.d[c]) * ga + be;
    }
    return out;
}

template <class T>
std::vector<double> as_vector(const array_t<T>& a)
{
    return std::vector<double>(a.begin(), a.end());
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b)
{
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

template <class T>
std::vector<double> to_vec(const Tensor<T>& t)
{
    return t.defined() ? as_vector(t.value()) : std::vector<double>{};
}

/// Shapes and axes that reach every layout: channel-last, channel-first, a middle axis, adjacent
/// and non-adjacent axis lists.
struct Case {
    shape_t shape;
    std::vector<int> axes;
};

const std::vector<Case>& layout_cases()
{
    static const std::vector<Case> cases = {
        { { 6, 3 }, { -1 } },          { { 5, 4 }, { 1 } },          { { 4, 3 }, { 0 } },
        { { 4, 5, 3 }, { -1 } },       { { 4, 3, 5 }, { 1 } },       { { 3, 4, 2, 3 }, { -1 } },
        { { 3, 3, 4, 2 }, { 1 } },     { { 3, 2, 3, 4 }, { 2 } },    { { 2, 3, 2, 2, 3 }, { -1 } },
        { { 2, 3, 2, 2, 2 }, { 1 } },  { { 2, 2, 3, 2, 2 }, { -3 } }, { { 3, 2, 3, 2 }, { 1, 2 } },
        { { 3, 2, 3, 2 }, { 1, 3 } },  { { 2, 3, 2, 3 }, { 3 } },
    };
    return cases;
}

} // namespace

TEST_CASE("batch_norm_train: values and statistics match the reference in every layout")
{
    for (const auto& cs : layout_cases()) {
        for (bool scale : { true, false })
            for (bool center : { true, false }) {
                CAPTURE(shape_str(cs.shape));
                CAPTURE(cs.axes.front());
                CAPTURE(cs.axes.size());
                const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
                Tensor<double> x = random_tensor(cs.shape, 1, -2.0, 3.0);
                Tensor<double> gamma = scale ? random_tensor({ C }, 2, 0.5, 1.5) : Tensor<double>();
                Tensor<double> beta = center ? random_tensor({ C }, 3) : Tensor<double>();
                BatchNormSpec spec;
                spec.axes = cs.axes;
                BatchNormStats<double> st;
                Tensor<double> y = batch_norm_train(x, gamma, beta, spec, &st);
                RefSpec rs;
                rs.axes = cs.axes;
                RefOut ref = reference(to_vec(x), cs.shape, to_vec(gamma), to_vec(beta), rs);
                CHECK(y.shape() == cs.shape);
                CHECK(max_abs_diff(to_vec(y), ref.y) < 1e-12);
                CHECK(max_abs_diff(as_vector(st.mean), ref.mean) < 1e-12);
                CHECK(max_abs_diff(as_vector(st.variance), ref.var) < 1e-12);
            }
    }
}

TEST_CASE("batch_norm: SIMD bodies and tails in float and double (channels 19, 70, runs of 37)")
{
    const std::vector<Case> cases = { { { 40, 19 }, { -1 } },
                                      { { 33, 70 }, { -1 } },
                                      { { 5, 7, 37 }, { 1 } },
                                      { { 3, 5, 1100 }, { 1 } },
                                      { { 4, 64, 3 }, { 1 } } };
    for (const auto& cs : cases) {
        CAPTURE(shape_str(cs.shape));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        Tensor<double> xd = random_tensor(cs.shape, 4, -1.0, 2.0);
        Tensor<double> gd = random_tensor({ C }, 5, 0.5, 1.5), bd = random_tensor({ C }, 6);
        RefSpec rs;
        rs.axes = cs.axes;
        RefOut ref = reference(to_vec(xd), cs.shape, to_vec(gd), to_vec(bd), rs);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        BatchNormStats<double> sd;
        CHECK(max_abs_diff(to_vec(batch_norm_train(xd, gd, bd, spec, &sd)), ref.y) < 1e-12);
        CHECK(max_abs_diff(as_vector(sd.variance), ref.var) < 1e-12);
        Tensor<float> xf = random_tensor<float>(cs.shape, 4, -1.0, 2.0);
        Tensor<float> gf = random_tensor<float>({ C }, 5, 0.5, 1.5), bf = random_tensor<float>({ C }, 6);
        BatchNormStats<float> sf;
        RefOut reff = reference(to_vec(xf), cs.shape, to_vec(gf), to_vec(bf), rs);
        CHECK(max_abs_diff(to_vec(batch_norm_train(xf, gf, bf, spec, &sf)), reff.y) < 2e-5);
        CHECK(max_abs_diff(as_vector(sf.mean), reff.mean) < 1e-6);
        CHECK(max_abs_diff(as_vector(sf.variance), reff.var) < 1e-6);
    }
}

TEST_CASE("batch_norm_inference: values match gamma (x - mean) / sqrt(var + eps) + beta")
{
    for (const auto& cs : layout_cases()) {
        CAPTURE(shape_str(cs.shape));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        Tensor<double> x = random_tensor(cs.shape, 7);
        Tensor<double> gamma = random_tensor({ C }, 8), beta = random_tensor({ C }, 9);
        Tensor<double> mean = random_tensor({ C }, 10), var = random_tensor({ C }, 11, 0.1, 2.0);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        spec.epsilon = 0.01;
        Tensor<double> y = batch_norm_inference(x, gamma, beta, mean.value(), var.value(), spec);
        Indexer ix(cs.shape, cs.axes, 0);
        double err = 0;
        for (std::size_t f = 0; f < x.size(); ++f) {
            std::size_t c, g;
            ix.locate(f, c, g);
            const double want = gamma.data()[c] * (x.data()[f] - mean.data()[c]) / std::sqrt(var.data()[c] + 0.01) +
                                beta.data()[c];
            err = std::max(err, std::abs(y.data()[f] - want));
        }
        CHECK(err < 1e-12);
    }
}

TEST_CASE("gradcheck: batch_norm_train over ranks 2-5, every layout, scale and center on and off")
{
    for (const auto& cs : layout_cases()) {
        for (int flags = 0; flags < 4; ++flags) {
            const bool scale = flags & 1, center = flags & 2;
            CAPTURE(shape_str(cs.shape));
            CAPTURE(cs.axes.front());
            CAPTURE(flags);
            const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
            BatchNormSpec spec;
            spec.axes = cs.axes;
            V in{ random_tensor(cs.shape, 20 + flags, -1.0, 2.0) };
            if (scale)
                in.push_back(random_tensor({ C }, 30, 0.5, 1.5));
            if (center)
                in.push_back(random_tensor({ C }, 31));
            check_gradients(
                [&](const V& v) {
                    const Tensor<double> g = scale ? v[1] : Tensor<double>();
                    const Tensor<double> b = center ? v[scale ? 2 : 1] : Tensor<double>();
                    return batch_norm_train(v[0], g, b, spec);
                },
                in);
        }
    }
}

TEST_CASE("gradcheck: batch_norm_inference (trainable=false and training=false use it)")
{
    for (const auto& cs : layout_cases()) {
        CAPTURE(shape_str(cs.shape));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        const array_t<double> mean = random_tensor({ C }, 40).value();
        const array_t<double> var = random_tensor({ C }, 41, 0.2, 2.0).value();
        check_gradients([&](const V& v) { return batch_norm_inference(v[0], v[1], v[2], mean, var, spec); },
                        V{ random_tensor(cs.shape, 42), random_tensor({ C }, 43), random_tensor({ C }, 44) });
        check_gradients(
            [&](const V& v) { return batch_norm_inference(v[0], Tensor<double>(), Tensor<double>(), mean, var, spec); },
            V{ random_tensor(cs.shape, 45) });
    }
}

TEST_CASE("gradcheck: backward accumulates into gradients already present (x used twice)")
{
    BatchNormSpec spec;
    check_gradients(
        [&](const V& v) {
            Tensor<double> y = batch_norm_train(v[0], v[1], v[2], spec);
            return add(mul(y, v[0]), batch_norm_train(v[0], v[1], v[2], spec));
        },
        V{ random_tensor({ 5, 3 }, 50), random_tensor({ 3 }, 51), random_tensor({ 3 }, 52) });
    spec.axes = { 1 };
    check_gradients(
        [&](const V& v) { return add(batch_norm_train(v[0], v[1], v[2], spec), mul(v[0], v[0])); },
        V{ random_tensor({ 2, 3, 4, 2 }, 53), random_tensor({ 3 }, 54), random_tensor({ 3 }, 55) });
}

TEST_CASE("gradcheck: x used twice on every backward path (first contribution written, later ones added)")
{
    // Each case: the op's backward is walked both first (dx fresh: written) and after another
    // use (dx accumulated), and gamma/beta are shared by two calls.
    struct PathCase {
        const char* name;
        shape_t shape;
        std::vector<int> axes;
        std::size_t vbs;
        bool masked;
    };
    const PathCase cases[] = { { "direct channel-last", { 4, 3 }, { -1 }, 0, false },
                               { "direct channel-first", { 2, 3, 4 }, { 1 }, 0, false },
                               { "gathered (middle axis list)", { 2, 3, 2, 2 }, { 1, 3 }, 0, false },
                               { "ghost batches", { 4, 2, 3 }, { -1 }, 2, false },
                               { "masked", { 3, 2, 3 }, { -1 }, 0, true } };
    for (const auto& cs : cases) {
        CAPTURE(cs.name);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        spec.virtual_batch_size = cs.vbs;
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        Tensor<double> mask;
        if (cs.masked) {
            const shape_t ms(cs.shape.begin(), cs.shape.end() - 1);
            array_t<double> m = array_t<double>::from_shape(ms);
            for (std::size_t i = 0; i < m.size(); ++i)
                m.data()[i] = i % 3 == 1 ? 0.0 : 1.0;
            mask = Tensor<double>(m);
        }
        auto ws = std::make_shared<bn::Workspace<double>>(); // one workspace for both calls, as a layer
        check_gradients(
            [&](const V& v) {
                Tensor<double> a = batch_norm_train(v[0], v[1], v[2], spec, nullptr, mask, nullptr, ws);
                Tensor<double> b = mul(v[0], v[0]);
                Tensor<double> c = batch_norm_train(v[0], v[1], v[2], spec, nullptr, mask, nullptr, ws);
                return add(add(mul(a, b), c), a);
            },
            V{ random_tensor(cs.shape, 60, -1.0, 2.0), random_tensor({ C }, 61, 0.5, 1.5), random_tensor({ C }, 62) });
        const array_t<double> mean = random_tensor({ C }, 63).value();
        const array_t<double> var = random_tensor({ C }, 64, 0.2, 2.0).value();
        check_gradients(
            [&](const V& v) {
                Tensor<double> a = batch_norm_inference(v[0], v[1], v[2], mean, var, spec, ws);
                return add(mul(a, v[0]), batch_norm_inference(v[0], v[1], v[2], mean, var, spec, ws));
            },
            V{ random_tensor(cs.shape, 65), random_tensor({ C }, 66), random_tensor({ C }, 67) });
    }
}

TEST_CASE("batch_norm op: per-call state is recycled once no tape holds it")
{
    BatchNormSpec spec;
    auto ws = std::make_shared<bn::Workspace<double>>();
    const Tensor<double> x = random_tensor({ 6, 4 }, 70);
    Variable<double> gamma("gamma", random_tensor({ 4 }, 71).value());
    for (int step = 0; step < 3; ++step) {
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> y = batch_norm_train(x, gamma.tensor(), Tensor<double>(), spec, nullptr, {}, nullptr, ws);
        tape.gradient(sum(mul(y, y)), { x });
    }
    CHECK(ws->op_states.size() == 1); // one step at a time: the same state every step
    {
        GradientTape<double> tape(true);
        tape.watch(x);
        Tensor<double> y1 = batch_norm_train(x, gamma.tensor(), Tensor<double>(), spec, nullptr, {}, nullptr, ws);
        Tensor<double> y2 = batch_norm_train(mul(x, x), gamma.tensor(), Tensor<double>(), spec, nullptr, {}, nullptr, ws);
        CHECK(ws->op_states.size() == 2); // the first call's state is still held by the tape
        // Each backward uses its own call's statistics: compare with separate workspaces.
        auto g = tape.gradient(sum(add(mul(y1, y1), y2)), { x });
        GradientTape<double> ref;
        ref.watch(x);
        Tensor<double> r1 = batch_norm_train(x, gamma.tensor(), Tensor<double>(), spec);
        Tensor<double> r2 = batch_norm_train(mul(x, x), gamma.tensor(), Tensor<double>(), spec);
        auto gr = ref.gradient(sum(add(mul(r1, r1), r2)), { x });
        CHECK(xt::amax(xt::abs(g[0].value() - gr[0].value()))() < 1e-12);
    }
    GradientTape<double> tape;
    tape.watch(x);
    batch_norm_train(x, gamma.tensor(), Tensor<double>(), spec, nullptr, {}, nullptr, ws);
    CHECK(ws->op_states.size() == 2); // freed states are taken again
}

TEST_CASE("batch_norm_train: batch size 1")
{
    BatchNormSpec spec;
    // A (1, C) batch has variance 0: the output equals beta and the gradients are finite.
    Tensor<double> x = random_tensor({ 1, 4 }, 60);
    Tensor<double> beta = random_tensor({ 4 }, 61);
    Tensor<double> gamma = random_tensor({ 4 }, 62);
    Tensor<double> y = batch_norm_train(x, gamma, beta, spec);
    CHECK(max_abs_diff(to_vec(y), to_vec(beta)) < 1e-12);
    {
        GradientTape<double> tape;
        tape.watch(x);
        tape.watch(gamma);
        tape.watch(beta);
        Tensor<double> loss = sum(mul(batch_norm_train(x, gamma, beta, spec), random_tensor({ 1, 4 }, 63)));
        auto g = tape.gradient(loss, { x, gamma, beta });
        for (const auto& t : g)
            for (double v : t.value())
                CHECK(std::isfinite(v));
        for (double v : g[0].value())
            CHECK(v == doctest::Approx(0.0));
    }
    check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec); },
                    V{ random_tensor({ 1, 4 }, 64), random_tensor({ 4 }, 65), random_tensor({ 4 }, 66) });
    // A single image still has spatial positions to average over.
    check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec); },
                    V{ random_tensor({ 1, 3, 2, 3 }, 67), random_tensor({ 3 }, 68), random_tensor({ 3 }, 69) });
    spec.axes = { 1 };
    check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec); },
                    V{ random_tensor({ 1, 3, 2, 3 }, 70), random_tensor({ 3 }, 71), random_tensor({ 3 }, 72) });
}

// ---- masks --------------------------------------------------------------------------------------

TEST_CASE("batch_norm_train with a mask: Keras 3's weighted moments and its broadcasting")
{
    struct MCase {
        shape_t shape, mask;
        std::vector<int> axes;
    };
    const std::vector<MCase> cases = { { { 4, 5, 3 }, { 4, 5 }, { -1 } },
                                       { { 4, 5, 3 }, { 4, 1 }, { -1 } },
                                       { { 3, 4, 2, 3 }, { 3, 4, 2 }, { -1 } },
                                       { { 3, 4, 2, 3 }, { 3, 1, 2 }, { 1 } },
                                       { { 3, 2, 4, 2 }, { 3, 2, 4 }, { 1, 3 } },
                                       { { 6, 3 }, { 6 }, { -1 } } };
    for (const auto& cs : cases) {
        CAPTURE(shape_str(cs.shape));
        CAPTURE(shape_str(cs.mask));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        Tensor<double> x = random_tensor(cs.shape, 80, -1.0, 3.0);
        Tensor<double> mask = random_tensor(cs.mask, 81, 0.0, 1.0);
        for (auto& v : mask.mutable_value())
            v = v < 0.3 ? 0.0 : 1.0;
        Tensor<double> gamma = random_tensor({ C }, 82, 0.5, 1.5), beta = random_tensor({ C }, 83);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        BatchNormStats<double> st;
        Tensor<double> y = batch_norm_train(x, gamma, beta, spec, &st, mask);
        // The reference wants the mask broadcast to shape[:-1].
        shape_t full(cs.shape.begin(), cs.shape.end() - 1);
        array_t<double> mb = xt::broadcast(mask.value(), full);
        std::vector<double> w(mb.begin(), mb.end());
        RefSpec rs;
        rs.axes = cs.axes;
        rs.mask = &w;
        RefOut ref = reference(to_vec(x), cs.shape, to_vec(gamma), to_vec(beta), rs);
        CHECK(max_abs_diff(to_vec(y), ref.y) < 1e-12);
        CHECK(max_abs_diff(as_vector(st.mean), ref.mean) < 1e-12);
        CHECK(max_abs_diff(as_vector(st.variance), ref.var) < 1e-12);
        check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, mask); },
                        V{ x, gamma, beta });
        // Fractional weights: Keras's formula weights x before subtracting the mean.
        Tensor<double> soft = random_tensor(cs.mask, 84, 0.2, 1.0);
        check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, soft); },
                        V{ x, gamma, beta });
    }
}

TEST_CASE("batch_norm_train with a mask: Keras 3's broadcast case and a fully masked batch")
{
    // Keras 3 test_masked_broadcast_normalization: ones (1,2,3,4), mask ones (1,2,1).
    BatchNormStats<double> st;
    Tensor<double> y = batch_norm_train(Tensor<double>::full({ 1, 2, 3, 4 }, 1.0), Tensor<double>::full({ 4 }, 1.0),
                                        Tensor<double>::full({ 4 }, 0.0), BatchNormSpec{}, &st,
                                        Tensor<double>::full({ 1, 2, 1 }, 1.0));
    for (double v : y.value())
        CHECK(std::abs(v) < 1e-6);
    for (std::size_t c = 0; c < 4; ++c) {
        CHECK(st.mean(c) == doctest::Approx(1.0).epsilon(1e-6));
        CHECK(std::abs(st.variance(c)) < 1e-6);
    }
    // Keras 3 test_input_fully_masked: zeros, mask zeros -> zeros; statistics stay finite.
    Tensor<float> yz = batch_norm_train(Tensor<float>::zeros({ 4, 5 }), Tensor<float>(), Tensor<float>(),
                                        BatchNormSpec{}, nullptr, Tensor<float>::zeros({ 4 }));
    for (float v : yz.value())
        CHECK(v == 0.0f);
    BatchNormStats<float> sf;
    Tensor<float> xr = random_tensor<float>({ 4, 5 }, 85);
    Tensor<float> yr = batch_norm_train(xr, Tensor<float>(), Tensor<float>(), BatchNormSpec{}, &sf,
                                        Tensor<float>::zeros({ 4 }));
    for (float v : yr.value())
        CHECK(std::isfinite(v));
    for (std::size_t c = 0; c < 5; ++c) {
        CHECK(sf.mean(c) == 0.0f);
        CHECK(sf.variance(c) == 0.0f);
    }
    CHECK_THROWS_WITH_AS(batch_norm_train(xr, Tensor<float>(), Tensor<float>(), BatchNormSpec{}, nullptr,
                                          Tensor<float>::zeros({ 4, 5 })),
                         doctest::Contains("The mask provided should be one dimension less than the inputs"),
                         ValueError);
    CHECK_THROWS_AS(batch_norm_train(xr, Tensor<float>(), Tensor<float>(), BatchNormSpec{}, nullptr,
                                     Tensor<float>::zeros({ 3 })),
                    ShapeError);
}

// ---- renorm -------------------------------------------------------------------------------------

TEST_CASE("batch_norm_train with renorm: Keras 3's test_renorm_correctness formula")
{
    const double eps = 1e-3;
    BatchRenorm<double> rn;
    rn.mean = array_t<double>{ 0.3, -0.5, 1.2 };
    rn.stddev = array_t<double>{ 1.1, 0.7, 1.6 };
    array_t<double> xv = { { 4.0, 6.0, 2.0 }, { 8.0, -2.0, 5.0 }, { 6.0, 4.0, 3.0 } };
    Tensor<double> x(xv);
    Tensor<double> gamma(array_t<double>{ 1.05, 0.9, 1.1 }), beta(array_t<double>{ 0.1, -0.05, 0.02 });
    BatchNormSpec spec;
    spec.epsilon = eps;
    BatchNormStats<double> st;
    Tensor<double> y = batch_norm_train(x, gamma, beta, spec, &st, Tensor<double>(), &rn);
    for (std::size_t c = 0; c < 3; ++c) {
        const double m = (xv(0, c) + xv(1, c) + xv(2, c)) / 3;
        double v = 0;
        for (std::size_t i = 0; i < 3; ++i)
            v += (xv(i, c) - m) * (xv(i, c) - m) / 3;
        const double sd = std::sqrt(v + eps);
        const double r = sd / rn.stddev(c), d = (m - rn.mean(c)) / rn.stddev(c);
        CHECK(st.r(c) == doctest::Approx(r));
        CHECK(st.d(c) == doctest::Approx(d));
        for (std::size_t i = 0; i < 3; ++i)
            CHECK(y.value()(i, c) == doctest::Approx(((xv(i, c) - m) / sd * r + d) * gamma.data()[c] + beta.data()[c]));
    }
    // Clipping, and the guard renorm_stddev >= sqrt(eps).
    rn.stddev = array_t<double>{ 0.0, 0.7, 1.6 };
    rn.rmax = 1.5;
    rn.rmin = 0.8;
    rn.dmax = 0.25;
    batch_norm_train(x, gamma, beta, spec, &st, Tensor<double>(), &rn);
    RefSpec rs;
    rs.renorm = true;
    rs.rn_mean = { 0.3, -0.5, 1.2 };
    rs.rn_std = { 0.0, 0.7, 1.6 };
    rs.rmax = 1.5;
    rs.rmin = 0.8;
    rs.dmax = 0.25;
    RefOut ref = reference(to_vec(x), { 3, 3 }, to_vec(gamma), to_vec(beta), rs);
    CHECK(max_abs_diff(as_vector(st.r), ref.r) < 1e-12);
    CHECK(max_abs_diff(as_vector(st.d), ref.d) < 1e-12);
    CHECK(st.r(0) == 1.5);
}

TEST_CASE("batch_norm_train with renorm: r and d are constants in the backward")
{
    // With r and d clipped to constants the numeric gradient sees constants too.
    BatchRenorm<double> rn;
    rn.mean = array_t<double>{ 50.0, -50.0, 50.0 };
    rn.stddev = array_t<double>{ 1e-3, 1e-3, 1e-3 };
    rn.rmax = 2.0;
    rn.dmax = 0.5;
    for (const auto& cs : { Case{ { 6, 3 }, { -1 } }, Case{ { 2, 3, 4 }, { 1 } }, Case{ { 2, 2, 2, 3 }, { -1 } } }) {
        BatchNormSpec spec;
        spec.axes = cs.axes;
        BatchNormStats<double> st;
        Tensor<double> x = random_tensor(cs.shape, 90);
        batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec, &st, Tensor<double>(), &rn);
        CHECK(st.r(0) == 2.0);
        CHECK(st.d(0) == -0.5);
        CHECK(st.d(1) == 0.5);
        check_gradients(
            [&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, Tensor<double>(), &rn); },
            V{ x, random_tensor({ 3 }, 91), random_tensor({ 3 }, 92) });
        check_gradients(
            [&](const V& v) {
                return batch_norm_train(v[0], v[1], Tensor<double>(), spec, nullptr, random_tensor(shape_t(cs.shape.begin(), cs.shape.end() - 1), 93, 0.0, 1.0), &rn);
            },
            V{ x, random_tensor({ 3 }, 94) });
    }
    // Unclipped: the input gradient is plain batch norm's with gamma * r held constant.
    BatchRenorm<double> free;
    free.mean = array_t<double>{ 0.1, 0.2, -0.3 };
    free.stddev = array_t<double>{ 0.8, 1.3, 0.6 };
    Tensor<double> x = random_tensor({ 7, 3 }, 95), gamma = random_tensor({ 3 }, 96), beta = random_tensor({ 3 }, 97);
    Tensor<double> w = random_tensor({ 7, 3 }, 98);
    BatchNormStats<double> st;
    std::vector<Tensor<double>> g_renorm, g_plain;
    {
        GradientTape<double> tape;
        tape.watch(x);
        tape.watch(gamma);
        tape.watch(beta);
        Tensor<double> y = batch_norm_train(x, gamma, beta, BatchNormSpec{}, &st, Tensor<double>(), &free);
        g_renorm = tape.gradient(sum(mul(y, w)), { x, gamma, beta });
    }
    Tensor<double> gr(array_t<double>(gamma.value() * st.r));
    {
        GradientTape<double> tape;
        tape.watch(x);
        Tensor<double> y = batch_norm_train(x, gr, beta, BatchNormSpec{});
        g_plain = tape.gradient(sum(mul(y, w)), { x });
    }
    CHECK(max_abs_diff(to_vec(g_renorm[0]), to_vec(g_plain[0])) < 1e-12);
    // dgamma = sum(w * (xhat r + d)), dbeta = sum(w).
    RefSpec rs;
    RefOut plain = reference(to_vec(x), { 7, 3 }, {}, {}, rs);
    for (std::size_t c = 0; c < 3; ++c) {
        double dg = 0, db = 0;
        for (std::size_t i = 0; i < 7; ++i) {
            dg += w.value()(i, c) * (plain.y[i * 3 + c] * st.r(c) + st.d(c));
            db += w.value()(i, c);
        }
        CHECK(g_renorm[1].value()(c) == doctest::Approx(dg));
        CHECK(g_renorm[2].value()(c) == doctest::Approx(db));
    }
}

// ---- the remaining combinations -----------------------------------------------------------------

TEST_CASE("gradcheck: center only and scale only, in inference and with masks, renorm and ghost batches")
{
    // flags: 1 scale (gamma), 2 center (beta); 1 and 2 are the combinations other cases miss.
    auto params = [](int flags, const V& v, Tensor<double>& g, Tensor<double>& b) {
        g = flags & 1 ? v[1] : Tensor<double>();
        b = flags & 2 ? v[(flags & 1) ? 2 : 1] : Tensor<double>();
    };
    auto inputs = [](int flags, const shape_t& shape, std::size_t C, unsigned seed) {
        V in{ random_tensor(shape, seed, -1.0, 2.0) };
        if (flags & 1)
            in.push_back(random_tensor({ C }, seed + 1, 0.5, 1.5));
        if (flags & 2)
            in.push_back(random_tensor({ C }, seed + 2));
        return in;
    };
    for (int flags : { 1, 2 }) {
        CAPTURE(flags);
        // Inference (training=false and trainable=false both use it), direct and gathered layouts.
        for (const Case& cs : { Case{ { 5, 3 }, { -1 } }, Case{ { 2, 3, 4 }, { 1 } }, Case{ { 3, 2, 3, 2 }, { 1, 3 } } }) {
            CAPTURE(shape_str(cs.shape));
            const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
            BatchNormSpec spec;
            spec.axes = cs.axes;
            const array_t<double> mean = random_tensor({ C }, 200).value();
            const array_t<double> var = random_tensor({ C }, 201, 0.2, 2.0).value();
            check_gradients(
                [&](const V& v) {
                    Tensor<double> g, b;
                    params(flags, v, g, b);
                    return batch_norm_inference(v[0], g, b, mean, var, spec);
                },
                inputs(flags, cs.shape, C, 202));
        }
        // Training with a mask, in a direct and a gathered layout.
        for (const Case& cs : { Case{ { 4, 3, 2 }, { -1 } }, Case{ { 3, 2, 2, 3 }, { 1, 3 } } }) {
            CAPTURE(shape_str(cs.shape));
            const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
            BatchNormSpec spec;
            spec.axes = cs.axes;
            Tensor<double> mask = random_tensor(shape_t(cs.shape.begin(), cs.shape.end() - 1), 203, 0.0, 1.0);
            for (auto& m : mask.mutable_value())
                m = m < 0.35 ? 0.0 : 1.0;
            mask.mutable_value().data()[0] = 1.0;
            check_gradients(
                [&](const V& v) {
                    Tensor<double> g, b;
                    params(flags, v, g, b);
                    return batch_norm_train(v[0], g, b, spec, nullptr, mask);
                },
                inputs(flags, cs.shape, C, 204));
        }
        // Renorm (r, d clipped to constants) with ghost batches, with and without a mask.
        BatchRenorm<double> rn;
        rn.mean = array_t<double>{ 9.0, -9.0, 9.0 };
        rn.stddev = array_t<double>{ 0.01, 0.01, 0.01 };
        rn.rmax = 3.0;
        rn.dmax = 1.0;
        BatchNormSpec spec;
        spec.virtual_batch_size = 2;
        const Tensor<double> mask(array_t<double>{ { 1, 1 }, { 0, 1 }, { 1, 1 }, { 1, 0 }, { 1, 1 }, { 1, 1 } });
        for (bool masked : { false, true }) {
            CAPTURE(masked);
            BatchNormStats<double> st;
            const V in = inputs(flags, { 6, 2, 3 }, 3, 205);
            batch_norm_train(in[0], Tensor<double>(), Tensor<double>(), spec, &st, masked ? mask : Tensor<double>(), &rn);
            CHECK(st.r(0) == 3.0); // clipped: constants for the numeric gradient too
            CHECK(std::abs(st.d(1)) == 1.0);
            check_gradients(
                [&](const V& v) {
                    Tensor<double> g, b;
                    params(flags, v, g, b);
                    return batch_norm_train(v[0], g, b, spec, nullptr, masked ? mask : Tensor<double>(), &rn);
                },
                in);
        }
    }
}

TEST_CASE("gradcheck: a fully masked batch (statistics 0, dx = dy gamma / sqrt(eps))")
{
    for (const Case& cs : { Case{ { 4, 3 }, { -1 } }, Case{ { 3, 2, 3 }, { -1 } }, Case{ { 2, 3, 2, 2 }, { 1 } } }) {
        CAPTURE(shape_str(cs.shape));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        spec.epsilon = 0.5; // keeps 1/sqrt(eps) moderate for the central differences
        const Tensor<double> mask = Tensor<double>::zeros(shape_t(cs.shape.begin(), cs.shape.end() - 1));
        const Tensor<double> x = random_tensor(cs.shape, 210), gamma = random_tensor({ C }, 211, 0.5, 1.5);
        const Tensor<double> beta = random_tensor({ C }, 212), dy = random_tensor(cs.shape, 213);
        GradientTape<double> tape;
        tape.watch(x);
        tape.watch(gamma);
        tape.watch(beta);
        Tensor<double> y = batch_norm_train(x, gamma, beta, spec, nullptr, mask);
        auto g = tape.gradient(sum(mul(y, dy)), { x, gamma, beta });
        // Mean 0 and variance 0 (no weight anywhere), and they do not depend on x.
        Indexer ix(cs.shape, cs.axes, 0);
        double err = 0;
        for (std::size_t f = 0; f < x.size(); ++f) {
            std::size_t c, grp;
            ix.locate(f, c, grp);
            err = std::max(err, std::abs(g[0].data()[f] - dy.data()[f] * gamma.data()[c] / std::sqrt(0.5)));
            err = std::max(err, std::abs(y.data()[f] - (x.data()[f] * gamma.data()[c] / std::sqrt(0.5) + beta.data()[c])));
        }
        CHECK(err < 1e-12);
        check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, mask); },
                        V{ x, gamma, beta });
    }
}

// ---- virtual batch size -------------------------------------------------------------------------

TEST_CASE("batch_norm_train with virtual batches: tf.keras's ghost batches (sample i in batch i mod G)")
{
    const std::vector<Case> cases = { { { 6, 3 }, { -1 } },
                                      { { 8, 2, 3 }, { -1 } },
                                      { { 6, 3, 2, 2 }, { 1 } },
                                      { { 4, 2, 3, 2 }, { 1, 3 } } };
    for (std::size_t vbs : { std::size_t(2), std::size_t(1) }) {
        for (const auto& cs : cases) {
            CAPTURE(shape_str(cs.shape));
            CAPTURE(vbs);
            const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
            BatchNormSpec spec;
            spec.axes = cs.axes;
            spec.virtual_batch_size = vbs;
            Tensor<double> x = random_tensor(cs.shape, 100, -1.0, 2.0);
            Tensor<double> gamma = random_tensor({ C }, 101, 0.5, 1.5), beta = random_tensor({ C }, 102);
            BatchNormStats<double> st;
            Tensor<double> y = batch_norm_train(x, gamma, beta, spec, &st);
            RefSpec rs;
            rs.axes = cs.axes;
            rs.vbs = vbs;
            RefOut ref = reference(to_vec(x), cs.shape, to_vec(gamma), to_vec(beta), rs);
            CHECK(max_abs_diff(to_vec(y), ref.y) < 1e-12);
            CHECK(max_abs_diff(as_vector(st.mean), ref.mean) < 1e-12);
            CHECK(max_abs_diff(as_vector(st.variance), ref.var) < 1e-12);
            check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec); }, V{ x, gamma, beta });
        }
    }
    // With a mask and with renorm (r, d from the averaged statistics, clipped to constants here).
    BatchNormSpec spec;
    spec.virtual_batch_size = 2;
    Tensor<double> x = random_tensor({ 6, 2, 3 }, 103);
    Tensor<double> mask = Tensor<double>(array_t<double>{ { 1, 0 }, { 1, 1 }, { 0, 1 }, { 1, 1 }, { 1, 1 }, { 1, 0 } });
    check_gradients([&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, mask); },
                    V{ x, random_tensor({ 3 }, 104), random_tensor({ 3 }, 105) });
    BatchRenorm<double> rn;
    rn.mean = array_t<double>{ 9.0, 9.0, 9.0 };
    rn.stddev = array_t<double>{ 0.01, 0.01, 0.01 };
    rn.rmax = 3.0;
    rn.dmax = 1.0;
    BatchNormStats<double> st;
    batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec, &st, Tensor<double>(), &rn);
    CHECK(st.r(1) == 3.0);
    CHECK(st.d(2) == -1.0);
    check_gradients(
        [&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, Tensor<double>(), &rn); },
        V{ x, random_tensor({ 3 }, 106), random_tensor({ 3 }, 107) });
    // Errors as tf.keras words them.
    spec.virtual_batch_size = 4;
    CHECK_THROWS_WITH_AS(batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec),
                         doctest::Contains("`virtual_batch_size` must divide"), ValueError);
    spec.virtual_batch_size = 2;
    spec.axes = { 0 };
    CHECK_THROWS_WITH_AS(batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec),
                         doctest::Contains("axis cannot include 0"), ValueError);
}

// ---- errors -------------------------------------------------------------------------------------

TEST_CASE("batch_norm: clear errors for axes and parameter shapes")
{
    Tensor<double> x = random_tensor({ 2, 3, 4 }, 110);
    BatchNormSpec spec;
    spec.axes = { 3 };
    CHECK_THROWS_WITH_AS(batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec),
                         doctest::Contains("Expected 0 <= axis < inputs.rank (with inputs.rank=3)"), ValueError);
    spec.axes = { -4 };
    CHECK_THROWS_AS(batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec), ValueError);
    spec.axes = { 1, -2 };
    CHECK_THROWS_WITH_AS(batch_norm_train(x, Tensor<double>(), Tensor<double>(), spec),
                         doctest::Contains("Duplicate axis"), ValueError);
    spec.axes = { -1 };
    CHECK_THROWS_WITH_AS(batch_norm_train(x, random_tensor({ 3 }, 1), Tensor<double>(), spec),
                         doctest::Contains("gamma has shape (3,)"), ShapeError);
    CHECK_THROWS_AS(batch_norm_inference(x, Tensor<double>(), Tensor<double>(), array_t<double>(xt::zeros<double>({ 3 })),
                                         array_t<double>(xt::ones<double>({ 4 })), spec),
                    ShapeError);
    // tf.keras's parameter shape (1, 1, C) is accepted: only the element count matters.
    CHECK_NOTHROW(batch_norm_train(x, random_tensor({ 1, 1, 4 }, 2), random_tensor({ 1, 1, 4 }, 3), spec));
}

// ---- numerics and determinism -------------------------------------------------------------------

TEST_CASE("batch_norm: a large offset (mean 1e3, spread 1e-2) stays within float32's own rounding")
{
    // Channel-first tiles span several rows when runs are short (300: 3 rows, 14x14: 5, 14: 73
    // rows of partial vectors).
    for (const auto& cs : { Case{ { 512, 24 }, { -1 } }, Case{ { 8, 6, 300 }, { 1 } }, Case{ { 16, 8, 14, 14 }, { 1 } },
                            Case{ { 200, 6, 14 }, { 1 } } }) {
        CAPTURE(shape_str(cs.shape));
        Tensor<float> x = random_tensor<float>(cs.shape, 120, 1000.0 - 0.01 * std::sqrt(3.0), 1000.0 + 0.01 * std::sqrt(3.0));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        spec.epsilon = 1e-8; // so the normalized output has spread 1, the hardest case
        BatchNormStats<float> st;
        Tensor<float> y = batch_norm_train(x, Tensor<float>(), Tensor<float>(), spec, &st);
        RefSpec rs;
        rs.axes = cs.axes;
        rs.eps = 1e-8;
        RefOut ref = reference(to_vec(x), cs.shape, {}, {}, rs); // in double from the same float inputs
        // The input itself is known to half an ulp of 1000 (3.05e-5); scaled by 1/std (~100) that
        // is 3e-3: float32 cannot say more about the output than that.
        const double input_rounding = 0.5 * (std::nextafter(1000.0f, 2000.0f) - 1000.0f);
        double inv_std = 0;
        for (double v : ref.var)
            inv_std = std::max(inv_std, 1.0 / std::sqrt(v + 1e-8));
        CHECK(max_abs_diff(to_vec(y), ref.y) < 2 * input_rounding * inv_std);
        // Tighter: the mean's rounding to float is folded into the offset (Note [Batch norm
        // numerics]), so only the output's own float rounding remains (|y| < 2 here).
        CHECK(max_abs_diff(to_vec(y), ref.y) < 1e-6);
        for (std::size_t c = 0; c < C; ++c) {
            CHECK(std::abs(st.mean(c) - ref.mean[c]) <= input_rounding);
            CHECK(std::abs(st.variance(c) - ref.var[c]) < 1e-3 * ref.var[c]);
        }
        // The backward in float against the same op in double on the same (float) values: the
        // xhat term sees x - mean without the mean's rounding (that alone would be 3e-3 relative).
        const Tensor<float> w = random_tensor<float>(cs.shape, 121);
        auto grads = [&](auto tag) {
            using U = decltype(tag);
            array_t<U> xv(x.value()), wv(w.value());
            Tensor<U> xu(xv), wu(wv);
            Tensor<U> g(array_t<U>(xt::ones<U>({ C }))), b(array_t<U>(xt::zeros<U>({ C })));
            GradientTape<U> tape;
            tape.watch(xu);
            tape.watch(g);
            Tensor<U> yu = batch_norm_train(xu, g, b, spec);
            auto gr = tape.gradient(sum(mul(yu, wu)), { xu, g });
            return std::vector<std::vector<double>>{ std::vector<double>(gr[0].value().begin(), gr[0].value().end()),
                                                     std::vector<double>(gr[1].value().begin(), gr[1].value().end()) };
        };
        const auto gf = grads(float{}), gd = grads(double{});
        for (std::size_t k = 0; k < 2; ++k) {
            double scale = 0;
            for (double v : gd[k])
                scale = std::max(scale, std::abs(v));
            CAPTURE(k);
            CHECK(max_abs_diff(gf[k], gd[k]) < 1e-4 * scale);
        }
    }
}

namespace {

template <class T>
struct Run {
    array_t<T> y, mean, var, dx, dgamma, dbeta;
};

template <class T>
Run<T> run_once(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, const Tensor<T>& w,
                const BatchNormSpec& spec, const Tensor<T>& mask, int threads)
{
    set_num_threads(threads);
    Run<T> r;
    BatchNormStats<T> st;
    GradientTape<T> tape;
    tape.watch(x);
    tape.watch(gamma);
    tape.watch(beta);
    Tensor<T> y = batch_norm_train(x, gamma, beta, spec, &st, mask);
    auto g = tape.gradient(sum(mul(y, w)), { x, gamma, beta });
    r.y = y.value();
    r.mean = st.mean;
    r.var = st.variance;
    r.dx = g[0].value();
    r.dgamma = g[1].value();
    r.dbeta = g[2].value();
    return r;
}

template <class T>
bool bit_identical(const array_t<T>& a, const array_t<T>& b)
{
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

} // namespace

TEST_CASE("batch_norm: results are bit-identical for 1 and 2 threads")
{
    const int saved = max_threads();
    struct DCase {
        shape_t shape;
        std::vector<int> axes;
        bool masked;
    };
    const std::vector<DCase> cases = { { { 256, 1024 }, { -1 }, false },
                                       { { 16, 14, 14, 64 }, { -1 }, false },
                                       { { 16, 64, 14, 14 }, { 1 }, false },
                                       { { 160, 16, 32, 32 }, { 1 }, false },
                                       { { 32, 32, 4096 }, { 1 }, false }, // channel-major backward
                                       { { 64, 40, 24 }, { -1 }, true },
                                       { { 8, 40, 14, 14 }, { 1, 3 }, false } };
    for (const auto& cs : cases) {
        CAPTURE(shape_str(cs.shape));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        Tensor<float> x = random_tensor<float>(cs.shape, 130, -3.0, 5.0);
        Tensor<float> gamma = random_tensor<float>({ C }, 131), beta = random_tensor<float>({ C }, 132);
        Tensor<float> w = random_tensor<float>(cs.shape, 133);
        Tensor<float> mask;
        if (cs.masked) {
            mask = random_tensor<float>(shape_t(cs.shape.begin(), cs.shape.end() - 1), 134, 0.0, 1.0);
            for (auto& v : mask.mutable_value())
                v = v < 0.25f ? 0.0f : 1.0f;
        }
        BatchNormSpec spec;
        spec.axes = cs.axes;
        Run<float> a = run_once(x, gamma, beta, w, spec, mask, 1);
        Run<float> b = run_once(x, gamma, beta, w, spec, mask, 2);
        CHECK(bit_identical(a.y, b.y));
        CHECK(bit_identical(a.mean, b.mean));
        CHECK(bit_identical(a.var, b.var));
        CHECK(bit_identical(a.dx, b.dx));
        CHECK(bit_identical(a.dgamma, b.dgamma));
        CHECK(bit_identical(a.dbeta, b.dbeta));
    }
    set_num_threads(saved);
}

TEST_CASE("batch_norm: the parallel kernels agree with the closed form on large double tensors")
{
    // Gradient checks use small tensors, which run serially; these sizes run on every thread.
    // 16x32x4096 takes the channel-major backward (Note [Channel-major backward]).
    for (const auto& cs : { Case{ { 300, 130 }, { -1 } }, Case{ { 12, 30, 97 }, { 1 } }, Case{ { 16, 32, 4096 }, { 1 } } }) {
        CAPTURE(shape_str(cs.shape));
        const std::size_t C = batch_norm_channels(cs.shape, cs.axes);
        Tensor<double> x = random_tensor(cs.shape, 140, -1.0, 4.0);
        Tensor<double> gamma = random_tensor({ C }, 141), beta = random_tensor({ C }, 142);
        Tensor<double> w = random_tensor(cs.shape, 143);
        Run<double> r = run_once(x, gamma, beta, w, BatchNormSpec{ cs.axes, 1e-3, 0 }, Tensor<double>(), max_threads());
        RefSpec rs;
        rs.axes = cs.axes;
        RefOut ref = reference(to_vec(x), cs.shape, to_vec(gamma), to_vec(beta), rs);
        CHECK(max_abs_diff(as_vector(r.y), ref.y) < 1e-11);
        // dx = gamma inv (w - mean(w) - xhat mean(w xhat)) per channel.
        RefOut xhat = reference(to_vec(x), cs.shape, {}, {}, rs);
        Indexer ix(cs.shape, cs.axes, 0);
        const double n = static_cast<double>(x.size() / C);
        std::vector<double> sw(C, 0), swx(C, 0);
        for (std::size_t f = 0; f < x.size(); ++f) {
            std::size_t c, g;
            ix.locate(f, c, g);
            sw[c] += w.data()[f];
            swx[c] += w.data()[f] * xhat.y[f];
        }
        double err = 0;
        for (std::size_t f = 0; f < x.size(); ++f) {
            std::size_t c, g;
            ix.locate(f, c, g);
            const double inv = 1.0 / std::sqrt(ref.var[c] + 1e-3);
            const double want = gamma.data()[c] * inv * (w.data()[f] - sw[c] / n - xhat.y[f] * swx[c] / n);
            err = std::max(err, std::abs(r.dx.data()[f] - want));
        }
        CHECK(err < 1e-11);
        CHECK(max_abs_diff(as_vector(r.dgamma), swx) < 1e-9);
        CHECK(max_abs_diff(as_vector(r.dbeta), sw) < 1e-9);
    }
}

TEST_CASE("gradcheck: the channel-major backward (long runs, few rows; Note [Channel-major backward])")
{
    // 16x32x4096 doubles: 16 MB, runs of 32 KB, 1 MB of x and dy per channel - the layouts that
    // take one channel at a time (the closed-form test above checks every element of it). Checked
    // here on a seeded subset of elements, since each check runs the whole forward, plain and with
    // renorm's r and d clipped to constants. eps 1e-3: the loss sums 2.1e6 terms, whose rounding
    // (1e-10) over eps 1e-6 would swamp an input gradient of 0.03; y is smooth in x.
    const shape_t shape{ 16, 32, 4096 };
    BatchNormSpec spec;
    spec.axes = { 1 };
    GradcheckOptions opt;
    opt.max_elements = 6;
    opt.eps = 1e-3;
    const Tensor<double> x = random_tensor(shape, 150, -1.0, 3.0);
    BatchRenorm<double> rn;
    rn.mean = array_t<double>::from_shape({ 32 });
    rn.stddev = array_t<double>::from_shape({ 32 });
    for (std::size_t c = 0; c < 32; ++c) {
        rn.mean(c) = c % 2 ? 50.0 : -50.0;
        rn.stddev(c) = 1e-3;
    }
    rn.rmax = 2.0;
    rn.dmax = 0.5;
    for (const BatchRenorm<double>* renorm : { static_cast<const BatchRenorm<double>*>(nullptr), static_cast<const BatchRenorm<double>*>(&rn) }) {
        CAPTURE(renorm != nullptr);
        const GradcheckResult r = gradcheck(
            [&](const V& v) { return batch_norm_train(v[0], v[1], v[2], spec, nullptr, Tensor<double>(), renorm); },
            V{ x, random_tensor({ 32 }, 151, 0.5, 1.5), random_tensor({ 32 }, 152) }, opt);
        INFO(r.report());
        CHECK(r.passed);
    }
}

TEST_CASE("batch_norm kernels: the workspace is reused (no growth in steady state)")
{
    bn::Workspace<float> ws;
    const bn::Layout l{ 4096, 256, 1 };
    std::vector<float> x(l.size(), 1.0f), y(l.size()), dy(l.size(), 0.5f), dx(l.size());
    for (std::size_t i = 0; i < x.size(); ++i)
        x[i] = static_cast<float>(i % 97) * 0.01f;
    std::vector<double> mean(256), var(256), inv(256);
    std::vector<float> dg(256, 0.0f), db(256, 0.0f);
    bn::ChannelStats out{ mean.data(), var.data(), inv.data(), nullptr, nullptr };
    bn::forward_training<float>(l, x.data(), nullptr, nullptr, 1e-3, nullptr, y.data(), out, ws);
    bn::backward<float>(l, x.data(), dy.data(), nullptr, mean.data(), inv.data(), nullptr, nullptr, true, dx.data(),
                        false, dg.data(), db.data(), ws);
    const auto* pa = ws.part_a.data();
    const auto* cm = ws.coef_m.data();
    for (int i = 0; i < 3; ++i) {
        bn::forward_training<float>(l, x.data(), nullptr, nullptr, 1e-3, nullptr, y.data(), out, ws);
        bn::backward<float>(l, x.data(), dy.data(), nullptr, mean.data(), inv.data(), nullptr, nullptr, true,
                            dx.data(), false, dg.data(), db.data(), ws);
    }
    CHECK(ws.part_a.data() == pa);
    CHECK(ws.coef_m.data() == cm);
    // dy constant: the input gradient vanishes (dy - mean(dy) = 0, sum(dy xhat) = 0).
    float worst = 0;
    for (float v : dx)
        worst = std::max(worst, std::abs(v));
    CHECK(worst < 1e-4f);
}

TEST_CASE("batch_norm kernels: outputs over 8 MB (streaming stores) match the normal-store results")
{
    // Note [Streaming stores] in batch_norm.cpp: large outputs bypass the cache; the values must
    // not change. Channel-last rows, and channel-first runs of 1056 and 1057 (not a multiple of the
    // vector), below and above the channel-first forward's 16 MB.
    for (const bn::Layout l : { bn::Layout{ 8448, 256, 1 }, bn::Layout{ 32, 64, 1056 }, bn::Layout{ 64, 64, 1057 } }) {
        CAPTURE(l.inner);
        bn::Workspace<float> ws;
        std::vector<float> x(l.size()), dy(l.size()), y(l.size()), dx(l.size()), dx_acc(l.size(), 0.0f);
        for (std::size_t i = 0; i < x.size(); ++i) {
            x[i] = static_cast<float>((i * 7919) % 1000) * 0.003f - 1.0f;
            dy[i] = static_cast<float>((i * 104729) % 997) * 0.002f - 1.0f;
        }
        const std::size_t C = l.channels;
        std::vector<double> mean(C), var(C), inv(C);
        std::vector<float> gamma(C, 1.5f), beta(C, 0.25f), dg(C, 0.0f), db(C, 0.0f);
        bn::ChannelStats out{ mean.data(), var.data(), inv.data(), nullptr, nullptr };
        bn::forward_training<float>(l, x.data(), gamma.data(), beta.data(), 1e-3, nullptr, y.data(), out, ws);
        double err = 0;
        for (std::size_t f = 0; f < x.size(); ++f) {
            const std::size_t c = (f / l.inner) % C;
            const float m = static_cast<float>(mean[c]);
            const float a = static_cast<float>(1.5 * inv[c]);
            err = std::max(err, static_cast<double>(std::abs(y[f] - ((x[f] - m) * a + 0.25f))));
        }
        CHECK(err < 1e-5);
        bn::backward<float>(l, x.data(), dy.data(), gamma.data(), mean.data(), inv.data(), nullptr, nullptr, true,
                            dx.data(), false, dg.data(), db.data(), ws);
        bn::backward<float>(l, x.data(), dy.data(), gamma.data(), mean.data(), inv.data(), nullptr, nullptr, true,
                            dx_acc.data(), true, dg.data(), db.data(), ws);
        CHECK(std::memcmp(dx.data(), dx_acc.data(), dx.size() * sizeof(float)) == 0);
    }
}
