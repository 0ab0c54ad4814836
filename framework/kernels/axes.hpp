// Axis normalization shared by reductions, softmax and shape ops.
#pragma once

#include "framework/errors.hpp"
#include "framework/tensor.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace xtape::kernels {

/// Maps a possibly negative axis into [0, rank); throws ValueError naming the op otherwise.
inline std::size_t normalize_axis(int axis, std::size_t rank, const char* op)
{
    const long r = static_cast<long>(rank);
    const long a = axis < 0 ? axis + r : axis;
    if (a < 0 || a >= r)
        throw ValueError(std::string(op) + ": axis " + std::to_string(axis) + " is out of bounds for a tensor of rank " +
                         std::to_string(rank));
    return static_cast<std::size_t>(a);
}

/// Sorted, unique, normalized axes; empty input means every axis.
inline std::vector<std::size_t> normalize_axes(const std::vector<int>& axes, std::size_t rank, const char* op)
{
    std::vector<std::size_t> out;
    if (axes.empty()) {
        for (std::size_t i = 0; i < rank; ++i)
            out.push_back(i);
        return out;
    }
    for (int a : axes)
        out.push_back(normalize_axis(a, rank, op));
    std::sort(out.begin(), out.end());
    if (std::adjacent_find(out.begin(), out.end()) != out.end())
        throw ValueError(std::string(op) + ": repeated axis in reduction");
    return out;
}

/// The shape with reduced axes set to 1 (keepdims form).
inline shape_t keep_shape(const shape_t& s, const std::vector<std::size_t>& axes)
{
    shape_t k = s;
    for (auto a : axes)
        k[a] = 1;
    return k;
}

inline shape_t drop_axes(const shape_t& s, const std::vector<std::size_t>& axes)
{
    shape_t k;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!std::binary_search(axes.begin(), axes.end(), i))
            k.push_back(s[i]);
    return k;
}

} // namespace xtape::kernels
