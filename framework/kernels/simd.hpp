// SIMD building blocks of the fused normalization kernels (batch norm, layer norm): streaming
// stores, partial loads, lane sums. Internal to framework/.
#pragma once

#include <xsimd/xsimd.hpp>

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace xtape::kernels {

template <class T>
using vec = xsimd::batch<T>;

/// Note [Streaming stores]: outputs larger than this are written with non-temporal stores. A
/// normal store first reads the line it writes (read-for-ownership) and then evicts input that
/// the reversed second pass was about to find in cache; a streaming store does neither. Small
/// outputs stay in cache for the next layer, so they use normal stores.
inline constexpr std::size_t stream_min_bytes = std::size_t(8) << 20;

template <class T>
inline bool is_aligned(const T* p)
{
    return reinterpret_cast<std::uintptr_t>(p) % sizeof(vec<T>) == 0;
}

/// Non-temporal store of a full vector to an address aligned to the vector size.
template <class T>
inline void stream_store(T* p, const vec<T>& v)
{
    using R = typename vec<T>::register_type;
    const R r = v;
#if defined(__AVX512F__)
    if constexpr (sizeof(R) == 64) {
        if constexpr (std::is_same_v<T, float>)
            _mm512_stream_ps(p, r);
        else
            _mm512_stream_pd(p, r);
        return;
    }
#endif
#if defined(__AVX__)
    if constexpr (sizeof(R) == 32) {
        if constexpr (std::is_same_v<T, float>)
            _mm256_stream_ps(p, r);
        else
            _mm256_stream_pd(p, r);
        return;
    }
#endif
    v.store_aligned(p);
}

inline void stream_fence() { _mm_sfence(); }

template <class T>
inline void store(T* p, const vec<T>& v, bool stream)
{
    if (stream)
        stream_store(p, v);
    else
        v.store_unaligned(p);
}

/// Lanes [0, k) of p, the others `fill` (k < lane count); never reads past p + k.
template <class T>
inline vec<T> load_partial(const T* p, std::size_t k, T fill)
{
#if defined(__AVX512F__)
    if constexpr (sizeof(typename vec<T>::register_type) == 64) {
        if constexpr (std::is_same_v<T, float>)
            return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << k) - 1), p);
        else
            return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), static_cast<__mmask8>((1u << k) - 1), p);
    }
#endif
    alignas(64) T b[vec<T>::size];
    for (std::size_t i = 0; i < vec<T>::size; ++i)
        b[i] = i < k ? p[i] : fill;
    return vec<T>::load_aligned(b);
}

/// Lane j is a for j < k, else b.
template <class T>
inline vec<T> blend_lanes(std::size_t k, const vec<T>& a, const vec<T>& b)
{
    alignas(64) static const T iota[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
    static_assert(vec<T>::size <= 16, "lane table too short");
    return xsimd::select(vec<T>::load_aligned(iota) < vec<T>(static_cast<T>(k)), a, b);
}

/// Sum of the lanes: xsimd's shuffles for float; for double a plain loop, because xsimd's double
/// hadd trips GCC 12's -Wmaybe-uninitialized.
template <class T>
inline T hsum(const vec<T>& v)
{
    if constexpr (std::is_same_v<T, float>) {
        return xsimd::hadd(v);
    } else {
        alignas(64) T b[vec<T>::size];
        v.store_aligned(b);
        T s = 0;
        for (std::size_t i = 0; i < vec<T>::size; ++i)
            s += b[i];
        return s;
    }
}

} // namespace xtape::kernels
