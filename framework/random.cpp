#include "framework/random.hpp"

#include "framework/errors.hpp"

#include <numeric>
#include <sstream>
#include <utility>

namespace xtape {

rng_t& global_rng()
{
    static rng_t rng(1337);
    return rng;
}

void set_random_seed(std::uint64_t seed) { global_rng().seed(seed); }

std::uint64_t next_seed() { return global_rng()(); }

std::vector<std::size_t> random_permutation(std::size_t n, rng_t& rng)
{
    std::vector<std::size_t> p(n);
    std::iota(p.begin(), p.end(), std::size_t(0));
    for (std::size_t i = n; i > 1; --i) {
        const std::size_t j = static_cast<std::size_t>(rng() % i);
        std::swap(p[i - 1], p[j]);
    }
    return p;
}

std::string rng_state(const rng_t& rng)
{
    std::ostringstream os;
    os << rng;
    return os.str();
}

void set_rng_state(rng_t& rng, const std::string& state, const std::string& what)
{
    std::istringstream is(state);
    rng_t r;
    is >> r;
    if (!is)
        throw ValueError(what + ": not a random generator state (" + std::to_string(state.size()) + " characters)");
    rng = r;
}

} // namespace xtape
