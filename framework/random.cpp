#include "framework/random.hpp"

#include "framework/errors.hpp"

#include <sstream>

namespace xtape {

rng_t& global_rng()
{
    static rng_t rng(1337);
    return rng;
}

void set_random_seed(std::uint64_t seed) { global_rng().seed(seed); }

std::uint64_t next_seed() { return global_rng()(); }

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
