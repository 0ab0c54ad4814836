// ctest-labels: sanitize
// Matrix products: the split over OpenMP threads (kernels::gemm) against a double reference,
// bit-identical results for any thread count, and float64 gradient checks of matmul and linear.
#include "framework/blas_setup.hpp"
#include "framework/kernels/gemm.hpp"
#include "framework/parallel.hpp"
#include "framework/tape.hpp"
#include "helpers.hpp"

#include <cmath>
#include <vector>

using namespace xtape;
using xtape::testing::check_gradients;
using xtape::testing::random_tensor;

namespace {

/// C = op(A) op(B) + beta * C0 in double, element by element.
std::vector<double> reference(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const float* a,
                              const float* b, float beta, const std::vector<float>& c0)
{
    std::vector<double> c(m * n);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0;
            for (std::size_t l = 0; l < k; ++l)
                s += double(ta ? a[l * m + i] : a[i * k + l]) * double(tb ? b[j * k + l] : b[l * n + j]);
            c[i * n + j] = s + double(beta) * c0[i * n + j];
        }
    return c;
}

struct Case {
    bool ta, tb;
    std::size_t m, n, k;
};

} // namespace

TEST_CASE("gemm: split products match a double reference and give the same bits for 1, 2 and 3 threads")
{
    REQUIRE(blas_threads() == 1); // xtape's default: OpenBLAS single-threaded, products split by xtape
    // Shapes above the split threshold, wide and tall, with edges that are not multiples of 16.
    const std::vector<Case> cases{ { false, false, 128, 515, 784 }, { true, false, 781, 300, 128 },
                                   { false, true, 129, 517, 256 }, { true, true, 600, 130, 70 },
                                   { false, false, 20, 40, 30 } };
    for (const Case& cs : cases) {
        CAPTURE(cs.ta);
        CAPTURE(cs.tb);
        CAPTURE(cs.m);
        CAPTURE(cs.n);
        const Tensor<float> a = random_tensor<float>({ cs.m * cs.k }, 1);
        const Tensor<float> b = random_tensor<float>({ cs.k * cs.n }, 2);
        const Tensor<float> c0 = random_tensor<float>({ cs.m * cs.n }, 3);
        const std::vector<float> init(c0.data(), c0.data() + cs.m * cs.n);
        const std::vector<double> ref = reference(cs.ta, cs.tb, cs.m, cs.n, cs.k, a.data(), b.data(), 0.5f, init);
        std::vector<std::vector<float>> out;
        for (int threads : { 1, 2, 3 }) {
            set_num_threads(threads);
            std::vector<float> c = init;
            kernels::gemm<float>(cs.ta, cs.tb, cs.m, cs.n, cs.k, 1.0f, a.data(), b.data(), 0.5f, c.data());
            out.push_back(c);
        }
        set_num_threads(2);
        double worst = 0;
        for (std::size_t i = 0; i < ref.size(); ++i)
            worst = std::max(worst, std::abs(double(out[0][i]) - ref[i]) / (1.0 + std::abs(ref[i])));
        // float rounding grows with k; a misplaced block would be off by O(1).
        CHECK(worst < 5e-8 * double(cs.k));
        CHECK(out[0] == out[1]);
        CHECK(out[0] == out[2]);
    }
}

TEST_CASE("gemm: linear's forward and backward do not depend on the thread count")
{
    const Tensor<float> x0 = random_tensor<float>({ 128, 784 }, 4);
    const Tensor<float> w0 = random_tensor<float>({ 784, 512 }, 5, -0.05, 0.05);
    const Tensor<float> b0 = random_tensor<float>({ 512 }, 6);
    std::vector<std::vector<float>> runs;
    for (int threads : { 1, 2 }) {
        set_num_threads(threads);
        Tensor<float> x = x0, w = w0, b = b0;
        GradientTape<float> tape;
        tape.watch(x);
        tape.watch(w);
        tape.watch(b);
        const Tensor<float> y = linear(x, w, b);
        const Tensor<float> loss = sum(square(y));
        const auto g = tape.gradient(loss, { x, w, b });
        std::vector<float> all(y.data(), y.data() + y.size());
        for (const auto& t : g)
            all.insert(all.end(), t.data(), t.data() + t.size());
        runs.push_back(all);
    }
    set_num_threads(2);
    CHECK(runs[0] == runs[1]);
}

TEST_CASE("gemm: gradient checks of matmul (2-D, batched, broadcast kernel) and linear in float64")
{
    check_gradients([](const std::vector<Tensor<double>>& v) { return matmul(v[0], v[1]); },
                    { random_tensor({ 4, 3 }, 7), random_tensor({ 3, 5 }, 8) });
    check_gradients([](const std::vector<Tensor<double>>& v) { return matmul(v[0], v[1]); },
                    { random_tensor({ 2, 4, 3 }, 9), random_tensor({ 2, 3, 2 }, 10) });
    check_gradients([](const std::vector<Tensor<double>>& v) { return matmul(v[0], v[1]); },
                    { random_tensor({ 2, 4, 3 }, 11), random_tensor({ 3, 2 }, 12) });
    check_gradients([](const std::vector<Tensor<double>>& v) { return linear(v[0], v[1], v[2]); },
                    { random_tensor({ 5, 3 }, 13), random_tensor({ 3, 4 }, 14), random_tensor({ 4 }, 15) });
    check_gradients([](const std::vector<Tensor<double>>& v) { return linear(v[0], v[1], Tensor<double>()); },
                    { random_tensor({ 2, 5, 3 }, 16), random_tensor({ 3, 4 }, 17) });
    // First contributions are written with gemm's beta = 0, later ones added: a tensor in both
    // slots of one product, and inputs reached by two products.
    check_gradients([](const std::vector<Tensor<double>>& v) { return matmul(v[0], v[0]); },
                    { random_tensor({ 3, 3 }, 18) });
    check_gradients(
        [](const std::vector<Tensor<double>>& v) {
            return add(linear(v[0], v[1], v[2]), add(matmul(v[0], v[1]), linear(v[0], v[1], v[2])));
        },
        { random_tensor({ 5, 3 }, 19), random_tensor({ 3, 4 }, 20), random_tensor({ 4 }, 21) });
}

TEST_CASE("gemm: a product with no output columns gives zero input gradients")
{
    // dx = dy W^T with dy of shape (m, 0): a gemm over an empty inner dimension, which must still
    // write the zeros of a first contribution.
    for (int pass = 0; pass < 2; ++pass) {
        Tensor<float> x = random_tensor<float>({ 4, 3 }, 22), w = random_tensor<float>({ 3, 0 }, 23);
        const Tensor<float> b = random_tensor<float>({ 0 }, 24);
        GradientTape<float> tape;
        tape.watch(x);
        const Tensor<float> y = pass ? matmul(x, w) : linear(x, w, b);
        CHECK(y.shape() == shape_t{ 4, 0 });
        const Tensor<float> gx = tape.gradient(y, { x })[0];
        REQUIRE(gx.shape() == shape_t{ 4, 3 });
        for (std::size_t i = 0; i < gx.size(); ++i)
            CHECK(gx.data()[i] == 0.0f);
    }
}

TEST_CASE("gemm: shape errors name the op and both shapes")
{
    const Tensor<float> a = random_tensor<float>({ 4, 3 }, 1), b = random_tensor<float>({ 4, 2 }, 2);
    CHECK_THROWS_AS(matmul(a, b), ShapeError);
    try {
        linear(a, b, Tensor<float>());
        FAIL("linear accepted mismatched shapes");
    } catch (const ShapeError& e) {
        const std::string msg = e.what();
        CHECK(msg.find("linear") != std::string::npos);
        CHECK(msg.find("(4, 3)") != std::string::npos);
        CHECK(msg.find("(4, 2)") != std::string::npos);
    }
}
