// The memory floor of a normalization op (bench_batch_norm, bench_layer_norm): the byte model's
// traffic with no normalization work - flat loops over the same buffers, split over the threads
// as the kernels split rows, second pass in reversed blocks, output streamed from 8 MB.
// Forward: sum x, then y = a x + b; backward: sum dy and dy x in one pass, then dx = a x + b dy + c.
// What this machine's memory gives for that traffic at that moment.
#pragma once

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cstddef>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace bench {

// ---- the "floor" path: the byte model's traffic, nothing else ------------------------------------

/// The 2 passes of the byte model over [0, n) split in contiguous thread ranges (as the kernels
/// split rows): first `read(b, e)` over the whole range, then `write(b, e)` over it in 8192-element
/// blocks, last block first (the kernels' order, so the same data is still cached).
template <class R, class W>
void floor_passes(std::size_t n, R&& read, W&& write)
{
#pragma omp parallel
    {
#ifdef _OPENMP
        const std::size_t t = static_cast<std::size_t>(omp_get_thread_num()), nt = static_cast<std::size_t>(omp_get_num_threads());
#else
        const std::size_t t = 0, nt = 1;
#endif
        // Ranges on 64-byte boundaries, so the streaming stores stay aligned.
        const std::size_t b = n * t / nt / 16 * 16, e = t + 1 == nt ? n : n * (t + 1) / nt / 16 * 16;
        read(b, e);
        constexpr std::size_t block = 8192;
        for (std::size_t k = (e - b + block - 1) / block; k-- > 0;)
            write(b + k * block, std::min(e, b + (k + 1) * block));
    }
#if defined(__AVX512F__) || defined(__AVX__)
    _mm_sfence();
#endif
}

using fvec = xsimd::batch<float>;

/// p[i] as a float or as a vector, by the type of the tag.
inline float load(const float* p, std::size_t i, float) { return p[i]; }
inline fvec load(const float* p, std::size_t i, fvec) { return fvec::load_unaligned(p + i); }

/// out[i] = f(i) for i in [s, e); non-temporal stores when `stream` (out 64-byte aligned, s a
/// multiple of 16), as the kernels stream outputs of 8 MB and more. f is called on floats and on
/// vectors (the same expression), so one loop serves every vector width.
template <class F>
void floor_store(float* out, std::size_t s, std::size_t e, bool stream, F&& f)
{
    constexpr std::size_t L = fvec::size;
    std::size_t i = s;
    for (; i + L <= e; i += L) {
        const fvec v = f(i, fvec());
#if defined(__AVX512F__)
        if (stream && L == 16) {
            _mm512_stream_ps(out + i, v);
            continue;
        }
#elif defined(__AVX__)
        if (stream && L == 8) {
            _mm256_stream_ps(out + i, v);
            continue;
        }
#endif
        v.store_unaligned(out + i);
    }
    for (; i < e; ++i)
        out[i] = f(i, 0.0f);
}

inline volatile float floor_sink; // keeps the read pass's sums alive


// The read passes keep four vector accumulators: `#pragma omp simd reduction` kept GCC 12's
// partial sums on the stack here and ran at a tenth of the memory speed.
inline void floor_forward(const float* x, float* y, std::size_t n)
{
    const bool stream = n * sizeof(float) >= (std::size_t(8) << 20);
    floor_passes(
        n,
        [&](std::size_t b, std::size_t e) {
            constexpr std::size_t L = fvec::size;
            fvec s0(0.f), s1(0.f), s2(0.f), s3(0.f);
            std::size_t i = b;
            for (; i + 4 * L <= e; i += 4 * L) {
                s0 += fvec::load_unaligned(x + i);
                s1 += fvec::load_unaligned(x + i + L);
                s2 += fvec::load_unaligned(x + i + 2 * L);
                s3 += fvec::load_unaligned(x + i + 3 * L);
            }
            float s = xsimd::hadd((s0 + s1) + (s2 + s3));
            for (; i < e; ++i)
                s += x[i];
            floor_sink = s;
        },
        [&](std::size_t b, std::size_t e) {
            floor_store(y, b, e, stream, [&](std::size_t i, auto v) { return load(x, i, v) * 1.01f + 0.5f; });
        });
}

inline void floor_backward(const float* x, const float* dy, float* dx, std::size_t n)
{
    const bool stream = n * sizeof(float) >= (std::size_t(8) << 20);
    floor_passes(
        n,
        [&](std::size_t b, std::size_t e) {
            constexpr std::size_t L = fvec::size;
            fvec s0(0.f), s1(0.f), q0(0.f), q1(0.f);
            std::size_t i = b;
            for (; i + 2 * L <= e; i += 2 * L) {
                const fvec d0 = fvec::load_unaligned(dy + i), d1 = fvec::load_unaligned(dy + i + L);
                s0 += d0;
                s1 += d1;
                q0 = xsimd::fma(d0, fvec::load_unaligned(x + i), q0);
                q1 = xsimd::fma(d1, fvec::load_unaligned(x + i + L), q1);
            }
            float s = xsimd::hadd(s0 + s1) + xsimd::hadd(q0 + q1);
            for (; i < e; ++i)
                s += dy[i] + dy[i] * x[i];
            floor_sink = s;
        },
        [&](std::size_t b, std::size_t e) {
            floor_store(dx, b, e, stream,
                        [&](std::size_t i, auto v) { return load(x, i, v) * 0.3f + load(dy, i, v) * 1.01f - 0.5f; });
        });
}

} // namespace bench
