#include "framework/gradcheck.hpp"

#include "framework/ops.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <random>
#include <sstream>

namespace xtape {
namespace {

/// The scalar that is differentiated: f itself when scalar, else sum(w * f) with fixed w.
struct Contract {
    unsigned seed;
    Tensor<double> weights;
    Tensor<double> operator()(const Tensor<double>& y)
    {
        if (y.size() == 1)
            return y;
        if (!weights.defined() || weights.shape() != y.shape()) {
            std::mt19937 gen(seed);
            std::uniform_real_distribution<double> u(0.5, 1.5);
            array_t<double> w = array_t<double>::from_shape(y.value().shape());
            for (auto& v : w)
                v = u(gen);
            weights = Tensor<double>(std::move(w));
        }
        return sum(mul(y, weights));
    }
};

/// The flat indices to check in a tensor of n elements: all, or k distinct ones in increasing
/// order (a partial Fisher-Yates shuffle, so no index is drawn twice).
std::vector<std::size_t> elements_to_check(std::size_t n, std::size_t k, unsigned seed)
{
    std::vector<std::size_t> idx(n);
    for (std::size_t i = 0; i < n; ++i)
        idx[i] = i;
    if (k == 0 || k >= n)
        return idx;
    std::mt19937_64 gen(seed);
    for (std::size_t i = 0; i < k; ++i) {
        std::uniform_int_distribution<std::size_t> pick(i, n - 1);
        std::swap(idx[i], idx[pick(gen)]);
    }
    idx.resize(k);
    std::sort(idx.begin(), idx.end());
    return idx;
}

} // namespace

std::string GradcheckResult::report() const
{
    std::ostringstream os;
    os << std::setprecision(3);
    for (const auto& e : entries) {
        os << (e.failed ? "FAIL " : "ok   ") << e.name << ' ' << shape_str(e.shape) << ": max rel error "
           << e.max_rel_error << " at " << e.worst_index << " (analytic " << e.analytic << ", numeric " << e.numeric
           << "), " << e.failed << '/' << e.checked << " failed";
        const std::size_t n = shape_size(e.shape);
        if (e.checked < n)
            os << " (" << e.checked << " of " << n << " elements sampled)";
        if (e.ignored)
            os << ", " << e.ignored << " with a difference under the absolute floor";
        os << '\n';
    }
    return os.str();
}

GradcheckResult gradcheck(const std::function<Tensor<double>()>& f, const std::vector<Tensor<double>>& params,
                          const std::vector<std::string>& names, const GradcheckOptions& opt)
{
    Contract contract{ opt.seed, {} };
    std::vector<Tensor<double>> analytic;
    {
        GradientTape<double> tape;
        for (const auto& p : params)
            tape.watch(p);
        Tensor<double> loss = contract(f());
        analytic = tape.gradient(loss, params);
    }
    auto eval = [&]() {
        NoGradGuard guard;
        return contract(f()).item();
    };

    GradcheckResult result;
    for (std::size_t p = 0; p < params.size(); ++p) {
        GradcheckEntry e;
        e.name = p < names.size() ? names[p] : "input " + std::to_string(p);
        e.shape = params[p].shape();
        Tensor<double> param = params[p];
        double* v = param.mutable_value().data();
        const double* a = analytic[p].data();
        // A different subset per tensor, the same one at every run.
        for (const std::size_t i : elements_to_check(param.size(), opt.max_elements, opt.seed + 7919u * (p + 1))) {
            const double orig = v[i];
            v[i] = orig + opt.eps;
            const double up = eval();
            v[i] = orig - opt.eps;
            const double down = eval();
            v[i] = orig;
            const double numeric = (up - down) / (2 * opt.eps);
            const double diff = std::abs(a[i] - numeric);
            ++e.checked;
            if (!(diff >= opt.min_abs_error) && !std::isnan(diff)) {
                ++e.ignored;
                continue;
            }
            const double denom = std::max(std::abs(a[i]), std::abs(numeric));
            const double rel = denom > 0 ? diff / denom : 0.0;
            const bool bad = std::isnan(rel) || rel > opt.max_rel_error;
            if (bad)
                ++e.failed;
            if (std::isnan(rel) || rel > e.max_rel_error || (bad && e.failed == 1)) {
                e.max_rel_error = std::isnan(rel) ? std::numeric_limits<double>::infinity() : rel;
                e.worst_index = i;
                e.analytic = a[i];
                e.numeric = numeric;
            }
        }
        result.passed = result.passed && e.failed == 0;
        result.entries.push_back(e);
    }
    return result;
}

GradcheckResult gradcheck(const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                          const std::vector<Tensor<double>>& inputs, const GradcheckOptions& options)
{
    return gradcheck([&]() { return f(inputs); }, inputs, {}, options);
}

} // namespace xtape
