// Data-parallel training and synchronized batch normalization across MPI ranks (issue 14).
// ctest runs this program under `mpirun -np 2` and `-np 3` (tests/mpi/CMakeLists.txt); every rank
// runs the same cases in the same order, so their collective calls match. References that one
// process computes run on every rank with the single-process collective installed for a moment.
#define DOCTEST_CONFIG_IMPLEMENT
#include "distributed/mpi.hpp"
#include "framework/batch_norm.hpp"
#include "framework/data_parallel.hpp"
#include "framework/io/hdf5.hpp"
#include "framework/io/hdf5_batches.hpp"
#include "framework/ops.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "optim/sgd.hpp"
#include "saving/keras_h5.hpp"
#include "saving/model_checkpoint.hpp"
#include "tests/helpers.hpp"
#include "tests/keras_files.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <unistd.h>

using namespace xtape;
using xtape::testing::contains;
using xtape::testing::expect_error;
using xtape::testing::message_of;
using xtape::testing::random_tensor;

namespace test_data_parallel {

/// Runs f with the single-process collective (a reference computed by one process).
template <class F>
auto one_process(F&& f)
{
    auto saved = collective_ptr();
    set_collective(nullptr);
    struct Restore {
        std::shared_ptr<const Collective> c;
        ~Restore() { set_collective(c); }
    } restore{ saved };
    return f();
}

/// Rows [s.begin, s.end) of a (N, ...) array.
template <class T>
array_t<T> rows(const array_t<T>& a, Shard s)
{
    shape_t shape(a.shape().begin(), a.shape().end());
    const std::size_t row = shape[0] ? a.size() / shape[0] : 0;
    shape[0] = s.size();
    array_t<T> out = array_t<T>::from_shape(shape);
    std::copy(a.data() + s.begin * row, a.data() + s.end * row, out.data());
    return out;
}

/// Largest |a - b| / max(|b|, floor, 1e-2 max|b|) over the elements: relative, except for
/// elements far below the array's scale (a dx that nearly cancels).
template <class T>
double max_rel(const array_t<T>& a, const array_t<T>& b, double floor = 1e-3)
{
    REQUIRE(a.size() == b.size());
    double scale = 0, m = 0;
    for (std::size_t i = 0; i < b.size(); ++i)
        scale = std::max(scale, std::abs(double(b.data()[i])));
    floor = std::max(floor, 1e-2 * scale);
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(double(a.data()[i]) - double(b.data()[i])) / std::max(std::abs(double(b.data()[i])), floor));
    return m;
}

/// The same 64-bit hash of every weight's bytes on every rank?
template <class T>
bool same_bits_on_every_rank(const std::vector<Variable<T>>& vars)
{
    std::uint64_t h = 1469598103934665603ull;
    for (const auto& v : vars) {
        const auto* p = reinterpret_cast<const unsigned char*>(v.value().data());
        for (std::size_t i = 0; i < v.value().size() * sizeof(T); ++i)
            h = (h ^ p[i]) * 1099511628211ull;
    }
    const Collective& c = collective();
    // Three 22-bit pieces sum exactly in double; equal everywhere iff each sum is size * own.
    double piece[3] = { double(h & 0x3fffff), double((h >> 22) & 0x3fffff), double(h >> 44) };
    double sum[3] = { piece[0], piece[1], piece[2] };
    c.allreduce_sum(sum, 3);
    double ok = 1;
    for (int k = 0; k < 3; ++k)
        if (sum[k] != piece[k] * c.size())
            ok = 0;
    c.allreduce_sum(&ok, 1); // every rank answers the same
    return ok == c.size();
}

} // namespace test_data_parallel
using namespace test_data_parallel;

TEST_CASE("collective: sums and broadcasts across the ranks")
{
    const Collective& c = collective();
    REQUIRE(c.size() >= 2);
    std::vector<double> v{ double(c.rank()), 1.0 };
    c.allreduce_sum(v.data(), v.size());
    CHECK(v[0] == c.size() * (c.size() - 1) / 2.0);
    CHECK(v[1] == c.size());
    float f[2] = { float(c.rank() + 7), 2.5f };
    c.broadcast(f, 2);
    CHECK(f[0] == 7.0f);
    // Shares differ by at most one and cover the batch in rank order.
    for (std::size_t n : { 0, 1, 2, 5, 7, 8 }) {
        const Shard s = shard_of(n, c);
        double lo = double(s.begin), size = double(s.size());
        double all[2] = { size, 0 };
        c.allreduce_sum(all, 2);
        CHECK(all[0] == double(n));
        CHECK(size >= std::floor(double(n) / c.size()));
        CHECK(size <= std::ceil(double(n) / c.size()));
        (void)lo;
    }
}

// The synchronized op on each rank's share equals the unsynchronized op on the whole batch: the
// output, the statistics, dx, and the sum over ranks of dgamma and dbeta.
TEST_CASE_TEMPLATE("synchronized batch_norm: the shares give one process's result", T, float, double)
{
    const Collective& comm = collective();
    const double tol = std::is_same_v<T, double> ? 1e-12 : 2e-5;
    struct Case {
        shape_t shape;
        std::vector<int> axes;
        double offset;
        bool masked;
        bool renorm;
        std::size_t vbs = 0; // virtual_batch_size (Note [Synchronized ghost batches])
    };
    const std::vector<Case> cases = {
        { { 7, 5 }, { -1 }, 0.0, false, false },    // channel-last, 7 rows over 2 or 3 ranks
        { { 2, 5 }, { -1 }, 0.0, false, false },    // fewer rows than ranks at -np 3
        { { 7, 5 }, { -1 }, 1e3, false, false },    // a large mean (Note [Synchronized batch norm])
        { { 5, 3, 4, 4 }, { 1 }, 0.0, false, false }, // channel-first
        { { 6, 4, 3 }, { -1 }, 0.0, true, false },  // masked sequences
        { { 7, 5 }, { -1 }, 0.5, false, true },     // renorm with the global statistics
        { { 6, 2, 3, 2 }, { 1, 3 }, 0.0, false, false }, // non-adjacent axes: the gathered path
        // Ghost batches counted in the global batch: shares that start inside a ghost cycle
        // (8 rows as 4 + 4 or 2 + 3 + 3), a permuted layout, masks, renorm, a rank without rows.
        // (Ghost batches of 2 make dx cancel too much for the float bound: 4 rows each here.)
        { { 8, 5 }, { -1 }, 0.0, false, false, 4 },
        { { 6, 3, 2, 2 }, { 1 }, 0.0, false, false, 3 },
        { { 6, 4, 3 }, { -1 }, 0.0, true, false, 2 },
        { { 9, 3 }, { -1 }, 0.5, false, true, 3 },
        { { 2, 3 }, { -1 }, 0.0, false, false, 1 },
    };
    for (std::size_t k = 0; k < cases.size(); ++k) {
        const Case& cs = cases[k];
        CAPTURE(k);
        const std::size_t N = cs.shape[0];
        array_t<T> xg = random_tensor<T>(cs.shape, 11 + unsigned(k), -1.0, 1.0).value();
        xg += static_cast<T>(cs.offset);
        const array_t<T> wg = random_tensor<T>(cs.shape, 23 + unsigned(k)).value();
        shape_t mshape(cs.shape.begin(), cs.shape.end() - 1);
        array_t<T> maskg = array_t<T>::from_shape(mshape);
        for (std::size_t i = 0; i < maskg.size(); ++i)
            maskg.data()[i] = (i * 7 + 3) % 5 != 0 ? T(1) : T(0);
        BatchNormSpec spec;
        spec.axes = cs.axes;
        spec.epsilon = 1e-3;
        spec.virtual_batch_size = cs.vbs;
        const std::size_t C = batch_norm_channels(shape_t(cs.shape.begin(), cs.shape.end()), cs.axes);
        const Tensor<T> gamma = random_tensor<T>({ C }, 5, 0.5, 1.5), beta = random_tensor<T>({ C }, 6);
        BatchRenorm<T> rn;
        rn.mean = random_tensor<T>({ C }, 7, -0.1, 0.1).value();
        rn.mean += static_cast<T>(cs.offset);
        rn.stddev = random_tensor<T>({ C }, 8, 0.3, 0.6).value();
        rn.rmax = 1.3;
        rn.rmin = 0.8;
        rn.dmax = 0.2;
        // y, the statistics, dx, dgamma and dbeta of loss = sum(w * y).
        auto run = [&](const array_t<T>& xa, const array_t<T>& wa, const array_t<T>& ma, bool sync) {
            BatchNormSpec sp = spec;
            sp.synchronized = sync;
            Tensor<T> x(xa), g(gamma.value()), b(beta.value());
            BatchNormStats<T> st;
            GradientTape<T> tape;
            tape.watch(x);
            tape.watch(g);
            tape.watch(b);
            Tensor<T> y = batch_norm_train(x, g, b, sp, &st, cs.masked ? Tensor<T>(ma) : Tensor<T>(),
                                           cs.renorm ? &rn : nullptr);
            Tensor<T> loss = sum(mul(y, Tensor<T>(wa)));
            auto grads = tape.gradient(loss, { x, g, b });
            return std::vector<array_t<T>>{ y.value(), st.mean, st.variance, grads[0].value(), grads[1].value(),
                                            grads[2].value() };
        };
        const auto ref = one_process([&] { return run(xg, wg, maskg, false); });
        const Shard s = shard_of(N, comm);
        auto got = run(rows(xg, s), rows(wg, s), rows(maskg, s), true);
        // dgamma and dbeta are this rank's share: the gradient sum adds them up.
        for (int j : { 4, 5 }) {
            std::vector<double> v(got[j].begin(), got[j].end());
            comm.allreduce_sum(v.data(), v.size());
            std::copy(v.begin(), v.end(), got[j].begin());
        }
        const std::string what[] = { "y", "mean", "variance", "dx", "dgamma", "dbeta" };
        for (int j = 0; j < 6; ++j) {
            CAPTURE(what[j]);
            const array_t<T> want = (j == 0 || j == 3) ? rows(ref[j], s) : ref[j];
            CHECK(max_rel(got[j], want, cs.offset > 100 ? 1.0 : 1e-3) <= tol);
        }
    }
}

// d(global loss)/d(x on rank q) and d/d gamma by central differences, each rank's x perturbed in
// turn (all ranks compute every loss, since it is a sum over ranks).
TEST_CASE("synchronized batch_norm: gradient check across ranks in double")
{
    const Collective& comm = collective();
    for (bool masked : { false, true }) {
        CAPTURE(masked);
        const shape_t shape = masked ? shape_t{ 5, 2, 3 } : shape_t{ 5, 3 };
        const array_t<double> xg = random_tensor<double>(shape, 31).value();
        const array_t<double> wg = random_tensor<double>(shape, 32).value();
        shape_t ms(shape.begin(), shape.end() - 1);
        array_t<double> mg = array_t<double>::from_shape(ms);
        for (std::size_t i = 0; i < mg.size(); ++i)
            mg.data()[i] = i % 3 == 1 ? 0.0 : 1.0;
        const Shard s = shard_of(shape[0], comm);
        Tensor<double> x(rows(xg, s)), gamma = random_tensor<double>({ 3 }, 33, 0.5, 1.5),
            beta = random_tensor<double>({ 3 }, 34);
        const Tensor<double> w(rows(wg, s)), mask = masked ? Tensor<double>(rows(mg, s)) : Tensor<double>();
        BatchNormSpec spec;
        spec.synchronized = true;
        // A nonlinear loss, so that dy depends on y.
        auto local_loss = [&] {
            Tensor<double> y = batch_norm_train(x, gamma, beta, spec, nullptr, mask);
            return sum(add(mul(y, w), square(y)));
        };
        auto global_loss = [&] {
            double v = local_loss().item();
            comm.allreduce_sum(&v, 1);
            return v;
        };
        GradientTape<double> tape;
        tape.watch(x);
        tape.watch(gamma);
        auto g = tape.gradient(local_loss(), { x, gamma });
        std::vector<double> dgamma(g[1].value().begin(), g[1].value().end());
        comm.allreduce_sum(dgamma.data(), dgamma.size());
        const double eps = 1e-6;
        double worst = 0;
        for (int q = 0; q < comm.size(); ++q) {
            // Every rank loops over the largest share, so the calls match.
            const std::size_t per_sample = xg.size() / shape[0];
            const std::size_t most = (shape[0] + comm.size() - 1) / comm.size() * per_sample;
            for (std::size_t i = 0; i < most; ++i) {
                const bool mine = q == comm.rank() && i < x.size();
                double* p = mine ? x.mutable_value().data() + i : nullptr;
                const double keep = p ? *p : 0;
                if (p)
                    *p = keep + eps;
                const double up = global_loss();
                if (p)
                    *p = keep - eps;
                const double down = global_loss();
                if (p) {
                    *p = keep;
                    const double num = (up - down) / (2 * eps), ana = g[0].value().data()[i];
                    worst = std::max(worst, std::abs(num - ana) / std::max(std::abs(ana), 1e-2));
                }
            }
        }
        for (std::size_t c = 0; c < 3; ++c) {
            double* p = gamma.mutable_value().data() + c;
            const double keep = *p;
            *p = keep + eps;
            const double up = global_loss();
            *p = keep - eps;
            const double down = global_loss();
            *p = keep;
            worst = std::max(worst, std::abs((up - down) / (2 * eps) - dgamma[c]) / std::max(std::abs(dgamma[c]), 1e-2));
        }
        CHECK(worst < 1e-6);
    }
}

namespace test_data_parallel {

/// Dense(6) -> BatchNormalization(synchronized) -> Dense(3, softmax), weights from a fixed seed.
template <class T>
std::shared_ptr<Sequential<T>> small_model(bool synchronized, std::optional<long> virtual_batch_size = std::nullopt)
{
    auto m = std::make_shared<Sequential<T>>("dp");
    m->add(std::make_shared<Dense<T>>(6, "linear", true, "d1"));
    BatchNormalizationOptions<T> o;
    o.synchronized = synchronized;
    o.momentum = 0.8;
    o.virtual_batch_size = virtual_batch_size;
    o.name = "bn";
    m->add(std::make_shared<BatchNormalization<T>>(o));
    m->add(std::make_shared<Dense<T>>(3, "softmax", true, "d2"));
    m->build({ -1, 4 });
    std::vector<array_t<T>> w = m->get_weights();
    unsigned seed = 100;
    for (auto& a : w)
        a = random_tensor<T>(shape_t(a.shape().begin(), a.shape().end()), seed++, -0.7, 0.7).value();
    w[4] = xt::abs(w[4]) + T(0.5); // a moving variance
    m->set_weights(w);
    m->compile(std::make_shared<SGD<T>>(0.1, 0.5), "sparse_categorical_crossentropy", { "accuracy" });
    return m;
}

/// Checks after every epoch that each rank holds the same bits.
template <class T>
class SameWeights : public Callback<T> {
public:
    int checked = 0, failed = 0;
    void on_epoch_end(int, Logs&) override
    {
        ++checked;
        if (!same_bits_on_every_rank(this->model()->weights()))
            ++failed;
    }
};

} // namespace test_data_parallel

// fit with shuffle=false on N ranks gives one process's weights, moving statistics and logs on
// the same global batches: 22 samples in batches of 8 (last 6) and of 5 (shares of 2 and 3 at -np
// 2; a last batch of 2, fewer samples than ranks, at -np 3), with sample weights in the second.
TEST_CASE_TEMPLATE("fit on every rank equals one process (synchronized batch norm)", T, float, double)
{
    const array_t<T> x = random_tensor<T>({ 22, 4 }, 41, -2.0, 2.0).value();
    array_t<T> y = array_t<T>::from_shape({ 22 });
    array_t<T> sw = array_t<T>::from_shape({ 22 });
    for (std::size_t i = 0; i < 22; ++i) {
        y(i) = static_cast<T>((i * 5 + 1) % 3);
        sw(i) = static_cast<T>(0.5 + double(i % 4) / 4);
    }
    double worst = 0;
    for (std::size_t batch : { 8, 5 }) {
        CAPTURE(batch);
        FitOptions<T> fo;
        fo.batch_size = batch;
        fo.epochs = 3;
        fo.shuffle = false;
        fo.verbose = 0;
        if (batch == 5)
            fo.sample_weight = sw;
        auto ref_model = small_model<T>(true);
        auto ref = one_process([&] { return ref_model->fit(x, y, fo); });
        auto model = small_model<T>(true);
        auto same = std::make_shared<SameWeights<T>>();
        fo.callbacks = { same };
        auto hist = model->fit(x, y, fo);
        CHECK(same->checked == 3);
        CHECK(same->failed == 0);
        const auto wr = ref_model->get_weights(), wg = model->get_weights();
        REQUIRE(wr.size() == wg.size());
        for (std::size_t k = 0; k < wr.size(); ++k) {
            CAPTURE(k);
            const double e = max_rel(wg[k], wr[k]);
            worst = std::max(worst, e);
            CHECK(e <= (std::is_same_v<T, double> ? 1e-12 : 1e-5));
        }
        for (const char* key : { "loss", "accuracy" }) {
            CAPTURE(key);
            REQUIRE(hist->history[key].size() == 3);
            for (std::size_t e = 0; e < 3; ++e) {
                const double a = hist->history[key][e], b = ref->history[key][e];
                worst = std::max(worst, std::abs(a - b) / std::max(std::abs(b), 1e-3));
                CHECK(a == doctest::Approx(b).epsilon(std::is_same_v<T, double> ? 1e-12 : 1e-5));
            }
        }
        // evaluate and predict split their batches too, and give one process's results.
        EvaluateOptions<T> eo;
        eo.batch_size = batch;
        eo.verbose = 0;
        const Logs er = one_process([&] { return ref_model->evaluate(x, y, eo); });
        const Logs eg = model->evaluate(x, y, eo);
        CHECK(eg.at("loss") == doctest::Approx(er.at("loss")).epsilon(std::is_same_v<T, double> ? 1e-12 : 1e-5));
        CHECK(eg.at("accuracy") == er.at("accuracy"));
        PredictOptions<T> po;
        po.batch_size = batch;
        po.verbose = 0;
        const array_t<T> pr = one_process([&] { return ref_model->predict(x, po); });
        CHECK(max_rel(model->predict(x, po), pr) <= (std::is_same_v<T, double> ? 1e-12 : 1e-5));
    }
    if (collective().rank() == 0)
        MESSAGE("largest relative difference to one process (", sizeof(T) == 4 ? "float32" : "float64", ", ",
                collective().size(), " ranks): ", worst);
}

// A batch source under MPI: every rank reads the same batch of an HDF5 file (the shuffled order
// drawn from rank 0's seed, whatever each rank's global generator holds) and trains on its share,
// as one process does on the whole batch (Note [Batch sources and data-parallel training]).
TEST_CASE("fit on an HDF5 batch source: the same shuffled batches on every rank, one process's weights")
{
    using T = float;
    const Collective& comm = collective();
    const array_t<T> x = random_tensor<T>({ 23, 4 }, 43, -2.0, 2.0).value();
    array_t<T> y = array_t<T>::from_shape({ 23 });
    for (std::size_t i = 0; i < 23; ++i)
        y(i) = static_cast<T>((i * 7 + 2) % 3);
    double id = static_cast<double>(::getpid());
    comm.broadcast(&id, 1); // rank 0's file
    const std::string path = "/tmp/xtape_mpi_batches_" + std::to_string(static_cast<long>(id)) + ".h5";
    if (comm.rank() == 0) {
        io::H5File f = io::H5File::create(path);
        f.root().write_dataset<T>("x", x);
        f.root().write_dataset<T>("y", y);
        f.close();
    }
    double barrier = 0;
    comm.allreduce_sum(&barrier, 1); // the file is complete
    io::H5BatchOptions o;
    o.batch_size = 5;
    o.shuffle = true;
    set_random_seed(1000 + static_cast<std::uint64_t>(comm.rank())); // a different generator on each rank
    {
        io::H5Batches<T> unseeded({ { path, "x" } }, { { path, "y" } }, {}, o);
        unseeded.on_epoch_begin();
        std::vector<double> order(unseeded.order().begin(), unseeded.order().end()), sum = order;
        comm.allreduce_sum(sum.data(), sum.size());
        for (std::size_t i = 0; i < order.size(); ++i)
            CHECK(sum[i] == order[i] * comm.size()); // the same order everywhere
    }
    o.seed = 17;
    FitOptions<T> fo;
    fo.epochs = 3;
    fo.verbose = 0;
    auto ref_model = small_model<T>(true);
    one_process([&] {
        io::H5Batches<T> all({ { path, "x" } }, { { path, "y" } }, {}, o);
        return ref_model->fit(all, fo);
    });
    auto model = small_model<T>(true);
    io::H5Batches<T> mine({ { path, "x" } }, { { path, "y" } }, {}, o);
    auto same = std::make_shared<SameWeights<T>>();
    fo.callbacks = { same };
    model->fit(mine, fo);
    CHECK(same->failed == 0);
    const auto wr = ref_model->get_weights(), wg = model->get_weights();
    REQUIRE(wr.size() == wg.size());
    for (std::size_t k = 0; k < wr.size(); ++k)
        CHECK(max_rel(wg[k], wr[k]) <= 1e-5);
    comm.allreduce_sum(&barrier, 1);
    if (comm.rank() == 0)
        std::remove(path.c_str());
}

// synchronized=False: each rank normalizes with its own share's statistics; the moving statistics
// are averaged over ranks after each update. Reference in double, written out: model = one
// BatchNormalization (scale and center) trained with SGD(lr) on the mean squared error.
TEST_CASE("fit with synchronized=False equals a float64 reference of per-rank statistics")
{
    const Collective& comm = collective();
    const std::size_t N = 12, C = 3, B = 6;
    const double lr = 0.2, momentum = 0.7, eps = 1e-3;
    const array_t<double> x = random_tensor<double>({ N, C }, 51, -1.0, 3.0).value();
    const array_t<double> t = random_tensor<double>({ N, C }, 52).value();
    auto model = std::make_shared<Sequential<double>>("local_bn");
    BatchNormalizationOptions<double> o;
    o.momentum = momentum;
    o.epsilon = eps;
    model->add(std::make_shared<BatchNormalization<double>>(o));
    model->build({ -1, long(C) });
    model->compile(std::make_shared<SGD<double>>(lr), "mse");
    FitOptions<double> fo;
    fo.batch_size = B;
    fo.shuffle = false;
    fo.verbose = 0;
    model->fit(x, t, fo);

    std::vector<double> gamma(C, 1.0), beta(C, 0.0), mm(C, 0.0), mv(C, 1.0);
    for (std::size_t b0 = 0; b0 < N; b0 += B) {
        std::vector<double> dg(C, 0.0), db(C, 0.0), mean_avg(C, 0.0), var_avg(C, 0.0);
        for (int r = 0; r < comm.size(); ++r) {
            const std::size_t lo = b0 + B * r / comm.size(), hi = b0 + B * (r + 1) / comm.size();
            for (std::size_t c = 0; c < C; ++c) {
                double m = 0, v = 0;
                for (std::size_t i = lo; i < hi; ++i)
                    m += x(i, c) / double(hi - lo);
                for (std::size_t i = lo; i < hi; ++i)
                    v += (x(i, c) - m) * (x(i, c) - m) / double(hi - lo);
                for (std::size_t i = lo; i < hi; ++i) {
                    const double xhat = (x(i, c) - m) / std::sqrt(v + eps);
                    const double dy = 2 * (gamma[c] * xhat + beta[c] - t(i, c)) / double(B * C);
                    dg[c] += dy * xhat;
                    db[c] += dy;
                }
                mean_avg[c] += (mm[c] * momentum + m * (1 - momentum)) / comm.size();
                var_avg[c] += (mv[c] * momentum + v * (1 - momentum)) / comm.size();
            }
        }
        for (std::size_t c = 0; c < C; ++c) {
            gamma[c] -= lr * dg[c];
            beta[c] -= lr * db[c];
        }
        mm = mean_avg;
        mv = var_avg;
    }
    const auto w = model->get_weights(); // gamma, beta, moving mean, moving variance
    const std::vector<std::vector<double>> want{ gamma, beta, mm, mv };
    for (std::size_t k = 0; k < 4; ++k)
        for (std::size_t c = 0; c < C; ++c) {
            CAPTURE(k);
            CAPTURE(c);
            CHECK(w[k](c) == doctest::Approx(want[k][c]).epsilon(1e-12));
        }
    CHECK(same_bits_on_every_rank(model->weights()));
}


// Ghost batches count in the global batch (Note [Synchronized ghost batches]): fit with
// virtual_batch_size 2 on batches of 8 (last 6) gives one process's weights and logs; a global
// batch that v does not divide is refused on every rank alike, naming the global size.
TEST_CASE("fit with synchronized virtual batches equals one process")
{
    using T = double;
    const array_t<T> x = random_tensor<T>({ 22, 4 }, 61, -2.0, 2.0).value();
    array_t<T> y = array_t<T>::from_shape({ 22 });
    for (std::size_t i = 0; i < 22; ++i)
        y(i) = static_cast<T>((i * 2 + 1) % 3);
    FitOptions<T> fo;
    fo.batch_size = 8;
    fo.epochs = 2;
    fo.shuffle = false;
    fo.verbose = 0;
    auto ref_model = small_model<T>(true, 2);
    auto ref = one_process([&] { return ref_model->fit(x, y, fo); });
    auto model = small_model<T>(true, 2);
    auto hist = model->fit(x, y, fo);
    const auto wr = ref_model->get_weights(), wg = model->get_weights();
    for (std::size_t k = 0; k < wr.size(); ++k) {
        CAPTURE(k);
        CHECK(max_rel(wg[k], wr[k]) <= 1e-12);
    }
    for (std::size_t e = 0; e < 2; ++e)
        CHECK(hist->history["loss"][e] == doctest::Approx(ref->history["loss"][e]).epsilon(1e-12));
    CHECK(same_bits_on_every_rank(model->weights()));

    const Shard s = shard_of(5, collective());
    BatchNormSpec spec;
    spec.synchronized = true;
    spec.virtual_batch_size = 2;
    Tensor<T> xs(rows(random_tensor<T>({ 5, 3 }, 62).value(), s));
    expect_error<ValueError>([&] { batch_norm_train(xs, Tensor<T>(), Tensor<T>(), spec); },
                             { "virtual_batch_size=2", "global batch of 5 samples over " +
                                                           std::to_string(collective().size()) + " processes" });
}

// train_on_batch / test_on_batch / predict_on_batch take the global batch and split it as fit
// does: with synchronized batch norm they equal one process; a step of train_on_batch equals a
// step of fit (with per-rank statistics too, which would differ if each rank ran the whole batch).
TEST_CASE_TEMPLATE("train_on_batch, test_on_batch and predict_on_batch split the global batch", T, float, double)
{
    const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-5;
    const array_t<T> x = random_tensor<T>({ 14, 4 }, 71, -2.0, 2.0).value();
    array_t<T> y = array_t<T>::from_shape({ 14 });
    array_t<T> sw = array_t<T>::from_shape({ 14 });
    for (std::size_t i = 0; i < 14; ++i) {
        y(i) = static_cast<T>((i * 5 + 2) % 3);
        sw(i) = static_cast<T>(0.5 + double(i % 3) / 3);
    }
    auto ref = small_model<T>(true), model = small_model<T>(true);
    std::size_t lo = 0;
    for (std::size_t n : { 7, 5, 2 }) { // a batch of 2 leaves a rank without samples at -np 3
        CAPTURE(n);
        const Shard b{ lo, lo + n };
        lo += n;
        const array_t<T> xb = rows(x, b), yb = rows(y, b), wb = rows(sw, b);
        const Logs lr = one_process([&] { return ref->train_on_batch(xb, yb, &wb); });
        const Logs lg = model->train_on_batch(xb, yb, &wb);
        CHECK(lg.at("loss") == doctest::Approx(lr.at("loss")).epsilon(tol));
        CHECK(lg.at("accuracy") == doctest::Approx(lr.at("accuracy")).epsilon(tol));
    }
    const auto wr = ref->get_weights(), wg = model->get_weights();
    for (std::size_t k = 0; k < wr.size(); ++k) {
        CAPTURE(k);
        CHECK(max_rel(wg[k], wr[k]) <= tol);
    }
    CHECK(same_bits_on_every_rank(model->weights()));
    // test_on_batch sums the shares' losses and metric states (collective calls: not run whole).
    const std::size_t calls = collective().calls();
    const Logs tr = one_process([&] { return ref->test_on_batch(x, y, &sw); });
    const Logs tg = model->test_on_batch(x, y, &sw);
    CHECK(collective().calls() > calls);
    CHECK(tg.at("loss") == doctest::Approx(tr.at("loss")).epsilon(tol));
    CHECK(tg.at("accuracy") == doctest::Approx(tr.at("accuracy")).epsilon(tol));
    const array_t<T> pr = one_process([&] { return ref->predict_on_batch(x); });
    CHECK(max_rel(model->predict_on_batch(x), pr) <= tol);

    // synchronized=False: each rank normalizes its share, so the whole batch on every rank would
    // not give fit's step.
    auto a = small_model<T>(false), f = small_model<T>(false);
    const Shard first{ 0, 8 };
    a->train_on_batch(rows(x, first), rows(y, first));
    FitOptions<T> fo;
    fo.batch_size = 8;
    fo.shuffle = false;
    fo.verbose = 0;
    f->fit(rows(x, first), rows(y, first), fo);
    const auto wa = a->get_weights(), wf = f->get_weights();
    for (std::size_t k = 0; k < wa.size(); ++k) {
        CAPTURE(k);
        CHECK(max_rel(wa[k], wf[k]) <= tol);
    }
}

namespace test_data_parallel {

/// A folder every rank sees (rank 0's, named after its process id), removed at the end.
struct SharedDir {
    std::filesystem::path dir;
    SharedDir()
    {
        double pid = collective().rank() == 0 ? double(::getpid()) : 0.0;
        if (collective().rank() == 0) {
            dir = std::filesystem::temp_directory_path() / ("xtape_dp_" + std::to_string(long(pid)));
            std::filesystem::remove_all(dir);
            std::filesystem::create_directories(dir);
        }
        collective().broadcast(&pid, 1); // after rank 0 made the folder
        dir = std::filesystem::temp_directory_path() / ("xtape_dp_" + std::to_string(long(pid)));
    }
    ~SharedDir()
    {
        double done = 0;
        collective().allreduce_sum(&done, 1); // every rank has finished with the folder
        std::error_code ec;
        if (collective().rank() == 0)
            std::filesystem::remove_all(dir, ec);
    }
    std::string file(const std::string& name) const { return (dir / name).string(); }
};

} // namespace test_data_parallel

// Note [Saving on rank 0]: every rank calls the savers; rank 0 alone writes and every rank returns
// once the file is complete. Each rank names its own file here, so a file from another rank shows.
TEST_CASE("save_model and save_weights: rank 0 writes, every rank returns with the file there")
{
    const Collective& comm = collective();
    const SharedDir d;
    auto model = small_model<float>(true);
    const array_t<float> x = random_tensor<float>({ 6, 4 }, 81).value(), y = xt::zeros<float>({ 6 });
    FitOptions<float> fo;
    fo.verbose = 0;
    for (const std::string ext : { ".h5", ".keras" }) {
        CAPTURE(ext);
        const std::string mine = d.file("model_rank" + std::to_string(comm.rank()) + ext);
        save_model(*model, mine);
        CHECK(std::filesystem::exists(d.file("model_rank0" + ext))); // complete when the call returns
        CHECK(std::filesystem::exists(mine) == (comm.rank() == 0));
    }
    for (const std::string ext : { ".h5", ".weights.h5" }) {
        CAPTURE(ext);
        const std::string mine = d.file("weights_rank" + std::to_string(comm.rank()) + ext);
        save_weights(*model, mine);
        CHECK(std::filesystem::exists(d.file("weights_rank0" + ext)));
        CHECK(std::filesystem::exists(mine) == (comm.rank() == 0));
    }
    // One path for all: every rank loads rank 0's file right after the call.
    model->fit(x, y, fo);
    save_model(*model, d.file("shared.h5"));
    auto back = load_model<float>(d.file("shared.h5"));
    const auto wa = model->get_weights(), wb = back->get_weights();
    for (std::size_t k = 0; k < wa.size(); ++k)
        CHECK(xt::all(xt::equal(wa[k], wb[k])));
    // A failed write: rank 0 throws its IOError, the others one naming rank 0; nobody hangs.
    const std::string msg = message_of<IOError>([&] { save_model(*model, d.file("missing/folder/m.h5")); });
    CHECK(contains(msg, comm.rank() == 0 ? "m.h5" : "rank 0"));
    // ModelCheckpoint runs on every rank and calls the savers together (no rank waits alone).
    auto ckpt = std::make_shared<ModelCheckpoint<float>>(d.file("ckpt-{epoch}.h5"));
    fo.epochs = 2;
    fo.callbacks = { ckpt };
    model->fit(x, y, fo);
    CHECK(std::filesystem::exists(d.file("ckpt-1.h5")));
    CHECK(ckpt->last_saved() == d.file("ckpt-2.h5"));
}

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    distributed::MpiGuard mpi(argc, argv);
    doctest::Context context(argc, argv);
    if (mpi.rank() != 0)
        context.setOption("minimal", true); // one report, rank 0's; failures still print
    return context.run();
}
