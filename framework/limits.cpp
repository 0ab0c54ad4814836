#include "framework/limits.hpp"

#include "framework/errors.hpp"

#include <atomic>
#include <cstdint>

namespace xtape {

namespace {
std::atomic<std::size_t> g_max_elements{ std::size_t(1) << 32 };
}

std::size_t max_array_elements() { return g_max_elements.load(std::memory_order_relaxed); }

void set_max_array_elements(std::size_t n)
{
    if (n == 0)
        throw ValueError("set_max_array_elements: the limit must be at least 1 element, got 0");
    g_max_elements.store(n, std::memory_order_relaxed);
}

std::size_t checked_size(const shape_t& shape, const std::string& what)
{
    std::size_t n = 1;
    for (std::size_t d : shape) {
        if (d != 0 && n > SIZE_MAX / d)
            throw ValueError(what + ": shape " + shape_str(shape) + " overflows the element count");
        n *= d;
    }
    if (n > max_array_elements())
        throw ValueError(what + ": shape " + shape_str(shape) + " has " + std::to_string(n) +
                         " elements, above the limit of " + std::to_string(max_array_elements()) +
                         " elements (raise it with xtape::set_max_array_elements)");
    return n;
}

} // namespace xtape
