#include "framework/random.hpp"

namespace xtape {

rng_t& global_rng()
{
    static rng_t rng(1337);
    return rng;
}

void set_random_seed(std::uint64_t seed) { global_rng().seed(seed); }

std::uint64_t next_seed() { return global_rng()(); }

} // namespace xtape
