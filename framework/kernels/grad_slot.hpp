// The gradient slot of a fused op's parameter (gamma, beta, an embedding table) whose kernel adds
// its contribution. Internal to framework/.
#pragma once

#include "framework/tensor.hpp"

#include <algorithm>
#include <vector>

namespace xtape::kernels {

/// dx[i] ready for kernels that add: null when no gradient is wanted; zero-filled when it is a
/// first contribution (uninitialized memory, Note [First gradient contributions] in tape.hpp).
template <class T>
T* accumulating_slot(const std::vector<array_t<T>*>& dx, const std::vector<bool>& first, std::size_t i)
{
    if (!dx[i])
        return nullptr;
    if (first[i])
        std::fill(dx[i]->begin(), dx[i]->end(), T(0));
    return dx[i]->data();
}

} // namespace xtape::kernels
