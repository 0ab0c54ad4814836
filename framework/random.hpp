// Seeding. Keras's `keras.utils.set_random_seed` sets one global seed from which every
// unseeded initializer, dropout and shuffle draws; xtape does the same so that a fixed seed
// gives the same run whatever the thread count (random numbers are never drawn in parallel).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>
#include <string>

namespace xtape {

using rng_t = std::mt19937_64;

/// The global generator; set_random_seed() resets it.
rng_t& global_rng();
void set_random_seed(std::uint64_t seed);
/// A fresh seed drawn from the global generator (for objects created without a seed).
std::uint64_t next_seed();
/// A permutation of [0, n) drawn serially from `rng` (Fisher-Yates; the modulo bias of a 64-bit
/// draw is below 2^-40 for any realistic n).
std::vector<std::size_t> random_permutation(std::size_t n, rng_t& rng);

/// A generator's full state as text (the standard's stream form): what a backup saves so that
/// a resumed run draws the numbers the interrupted one would have drawn.
std::string rng_state(const rng_t& rng);
/// Puts back a state rng_state() gave; ValueError naming `what` when `state` is not one.
void set_rng_state(rng_t& rng, const std::string& state, const std::string& what);

} // namespace xtape
