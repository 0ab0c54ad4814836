// Convolution kernels (im2col / col2im + OpenBLAS gemm) and the taped ops conv, depthwise_conv and
// conv_transpose. Notes [Convolution as gemm] and [Convolution determinism] are in conv.hpp.
#include "framework/conv.hpp"

#include "framework/kernels/gemm.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"

#include <algorithm>
#include <cstring>

namespace xtape {
namespace convolution {

namespace {

std::string list_str(const std::vector<std::size_t>& v)
{
    return shape_str(v);
}

/// One value per spatial dimension from a Keras-style list (empty: `fallback`; one value: all).
std::vector<std::size_t> per_dim(const std::vector<std::size_t>& v, std::size_t rank, std::size_t fallback,
                                 const std::string& op, const char* what)
{
    if (v.empty())
        return std::vector<std::size_t>(rank, fallback);
    if (v.size() == 1)
        return std::vector<std::size_t>(rank, v[0]);
    if (v.size() != rank)
        throw ValueError(op + ": `" + what + "` must have " + std::to_string(rank) + " values, received " +
                         what + "=" + list_str(v));
    return v;
}

void check_ranks(const shape_t& x, const shape_t& k, const std::string& op)
{
    if (x.size() < 3 || x.size() > 5)
        throw ShapeError(op + ": expected an input of rank 3, 4 or 5 (batch, 1 to 3 spatial dimensions, "
                              "channels), received input shape " +
                         shape_str(x));
    if (k.size() != x.size())
        throw ShapeError(op + ": the kernel must have the input's rank (" + std::to_string(x.size()) +
                         "), received kernel shape " + shape_str(k) + " for input shape " + shape_str(x));
}

/// Spatial extents, channels of x for a layout.
void split_x(const shape_t& x, bool channels_first, std::size_t rank, std::array<std::size_t, 3>& spatial,
             std::size_t& channels)
{
    channels = channels_first ? x[1] : x.back();
    for (std::size_t d = 0; d < rank; ++d)
        spatial[3 - rank + d] = x[channels_first ? 2 + d : 1 + d];
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

} // namespace

bool Geometry::pointwise() const
{
    for (std::size_t d = 0; d < 3; ++d)
        if (kernel[d] != 1 || stride[d] != 1 || pad[d] != 0)
            return false;
    return true;
}

shape_t Geometry::x_shape() const
{
    shape_t s{ batch };
    if (channels_first)
        s.push_back(in_channels);
    for (std::size_t d = 3 - rank; d < 3; ++d)
        s.push_back(in[d]);
    if (!channels_first)
        s.push_back(in_channels);
    return s;
}

shape_t Geometry::y_shape() const
{
    shape_t s{ batch };
    if (channels_first)
        s.push_back(out_channels);
    for (std::size_t d = 3 - rank; d < 3; ++d)
        s.push_back(out[d]);
    if (!channels_first)
        s.push_back(out_channels);
    return s;
}

shape_t Geometry::kernel_shape() const
{
    shape_t s(kernel.begin() + (3 - rank), kernel.end());
    s.push_back(in_per_group());
    s.push_back(out_channels);
    return s;
}

Geometry conv_geometry(const shape_t& x, const shape_t& k, const ConvOptions& o, const std::string& op)
{
    check_ranks(x, k, op);
    Geometry g;
    g.rank = x.size() - 2;
    g.batch = x[0];
    g.channels_first = o.channels_first;
    split_x(x, o.channels_first, g.rank, g.in, g.in_channels);
    if (o.groups == 0)
        throw ValueError(op + ": `groups` must be a positive integer, received groups=0");
    g.groups = o.groups;
    g.out_channels = k.back();
    const std::size_t k_in = k[k.size() - 2];
    if (g.in_channels % g.groups != 0 || g.out_channels % g.groups != 0)
        throw ValueError(op + ": the number of input channels (" + std::to_string(g.in_channels) +
                         ") and of filters (" + std::to_string(g.out_channels) +
                         ") must be divisible by groups, received groups=" + std::to_string(g.groups));
    if (k_in * g.groups != g.in_channels)
        throw ShapeError(op + ": the kernel's input-channel dimension must be " +
                         std::to_string(g.in_channels / g.groups) + " (input channels / groups), received kernel shape " +
                         shape_str(k) + " for input shape " + shape_str(x) + " and groups=" + std::to_string(g.groups));
    const auto strides = per_dim(o.strides, g.rank, 1, op, "strides");
    const auto dil = per_dim(o.dilation_rate, g.rank, 1, op, "dilation_rate");
    if (o.padding != "valid" && o.padding != "same" && o.padding != "causal")
        throw ValueError(op + ": `padding` must be 'valid', 'same' or 'causal', received padding=" + o.padding);
    if (o.padding == "causal" && g.rank != 1)
        throw ValueError(op + ": padding 'causal' is only allowed for 1-D convolutions, received an input of " +
                         std::to_string(g.rank) + " spatial dimensions");
    for (std::size_t d = 0; d < g.rank; ++d) {
        const std::size_t a = 3 - g.rank + d; // spatial dimensions sit last in Geometry's arrays
        if (strides[d] == 0 || dil[d] == 0 || k[d] == 0)
            throw ValueError(op + ": kernel sizes, strides and dilation rates must be positive, received kernel " +
                             shape_str(k) + ", strides " + list_str(strides) + ", dilation_rate " + list_str(dil));
        g.kernel[a] = k[d];
        g.stride[a] = strides[d];
        g.dilation[a] = dil[d];
        const std::size_t span = (k[d] - 1) * dil[d] + 1, n = g.in[a], s = strides[d];
        if (o.padding == "valid") {
            g.out[a] = n >= span ? (n - span) / s + 1 : 0;
            g.pad[a] = 0;
        } else if (o.padding == "same") {
            // TensorFlow's rule, which Keras files were trained with: out = ceil(n / s), the
            // padding split with the odd element after.
            g.out[a] = ceil_div(n, s);
            const long total = std::max<long>(long((g.out[a] - 1) * s + span) - long(n), 0);
            g.pad[a] = total / 2;
        } else { // causal: pad (span - 1) zeros in front, then valid
            g.out[a] = n == 0 ? 0 : (n - 1) / s + 1;
            g.pad[a] = long(span) - 1;
        }
        if (g.out[a] == 0)
            throw ValueError(op + ": the output would be empty: spatial dimension " + std::to_string(d) + " of size " +
                             std::to_string(n) + " is smaller than the dilated kernel (" + std::to_string(span) +
                             ") with padding '" + o.padding + "'; input shape " + shape_str(x) + ", kernel shape " +
                             shape_str(k));
    }
    return g;
}

Geometry conv_transpose_geometry(const shape_t& x, const shape_t& k, const ConvOptions& o, const std::string& op)
{
    check_ranks(x, k, op);
    if (o.groups != 1)
        throw ValueError(op + ": transposed convolutions take no groups, received groups=" + std::to_string(o.groups));
    if (o.padding != "valid" && o.padding != "same")
        throw ValueError(op + ": `padding` must be 'valid' or 'same', received padding=" + o.padding);
    Geometry g;
    g.rank = x.size() - 2;
    g.batch = x[0];
    g.channels_first = o.channels_first;
    // The forward convolution runs from the transposed output (filters channels) to x.
    split_x(x, o.channels_first, g.rank, g.out, g.out_channels);
    g.in_channels = k[k.size() - 2];
    if (k.back() != g.out_channels)
        throw ShapeError(op + ": the kernel's last dimension must be the input's channels (" +
                         std::to_string(g.out_channels) + "), received kernel shape " + shape_str(k) +
                         " for input shape " + shape_str(x));
    const auto strides = per_dim(o.strides, g.rank, 1, op, "strides");
    const auto dil = per_dim(o.dilation_rate, g.rank, 1, op, "dilation_rate");
    std::vector<long> opad = o.output_padding;
    if (opad.size() == 1)
        opad.assign(g.rank, opad[0]);
    if (!opad.empty() && opad.size() != g.rank)
        throw ValueError(op + ": `output_padding` must have " + std::to_string(g.rank) + " values, received " +
                         std::to_string(opad.size()));
    for (std::size_t d = 0; d < g.rank; ++d) {
        const std::size_t a = 3 - g.rank + d; // spatial dimensions sit last in Geometry's arrays
        if (strides[d] == 0 || dil[d] == 0 || k[d] == 0)
            throw ValueError(op + ": kernel sizes, strides and dilation rates must be positive, received kernel " +
                             shape_str(k) + ", strides " + list_str(strides) + ", dilation_rate " + list_str(dil));
        g.kernel[a] = k[d];
        g.stride[a] = strides[d];
        g.dilation[a] = dil[d];
        const long span = long((k[d] - 1) * dil[d] + 1), s = long(strides[d]), n = long(g.out[a]);
        if (!opad.empty() && (opad[d] < 0 || opad[d] >= s))
            throw ValueError(op + ": Strides must be greater than output padding. Received strides " +
                             list_str(strides) + " and output_padding value " + std::to_string(opad[d]) +
                             " in dimension " + std::to_string(d));
        // Keras's compute_conv_transpose_output_length, and the padding in front from Keras's
        // conversion to a dilated-input convolution (left_pad = span - 1 - pad_before).
        long length = 0, left = 0;
        if (opad.empty()) {
            if (o.padding == "valid") {
                length = n * s + std::max(span - s, 0L);
                left = span - 1;
            } else {
                length = n * s;
                const long pad_len = s + span - 2;
                left = std::min(pad_len / 2 + pad_len % 2, span - 1);
            }
        } else {
            const long p = o.padding == "same" ? span / 2 : 0;
            length = (n - 1) * s + span - 2 * p + opad[d];
            if (o.padding == "valid") {
                left = span - 1;
            } else {
                const long pad_len = span + span % 2 - 2 + opad[d];
                left = std::min(pad_len / 2 + pad_len % 2, span - 1);
            }
        }
        if (length <= 0)
            throw ValueError(op + ": the output would be empty in spatial dimension " + std::to_string(d));
        g.in[a] = std::size_t(length);
        g.pad[a] = span - 1 - left;
    }
    return g;
}

// ---- im2col / col2im ------------------------------------------------------------------------------

namespace {

/// Output positions ow in [lo, hi) read input positions ow * s + off inside [0, n).
inline void inside_range(long off, std::size_t s, std::size_t n, std::size_t out, std::size_t& lo, std::size_t& hi)
{
    const long sl = long(s);
    lo = off < 0 ? std::size_t((-off + sl - 1) / sl) : 0;
    const long room = long(n) - off; // ow * s < room
    hi = room <= 0 ? 0 : std::min(out, std::size_t((room + sl - 1) / sl));
    if (hi < lo)
        hi = lo;
}

/// channels_last: col (P, taps * cin_g) for one sample and group; Add = true adds col into x instead.
template <class T, bool Add>
void im2col_cl(const Geometry& g, const T* x, std::size_t group, T* col)
{
    const std::size_t cg = g.in_per_group(), cin = g.in_channels, depth = g.col_depth();
    const std::size_t coff = group * cg;
    std::size_t p = 0;
    for (std::size_t od = 0; od < g.out[0]; ++od)
        for (std::size_t oh = 0; oh < g.out[1]; ++oh)
            for (std::size_t ow = 0; ow < g.out[2]; ++ow, ++p) {
                T* row = col + p * depth;
                std::size_t t = 0;
                for (std::size_t kd = 0; kd < g.kernel[0]; ++kd) {
                    const long id = long(od * g.stride[0] + kd * g.dilation[0]) - g.pad[0];
                    const bool din = id >= 0 && id < long(g.in[0]);
                    for (std::size_t kh = 0; kh < g.kernel[1]; ++kh) {
                        const long ih = long(oh * g.stride[1] + kh * g.dilation[1]) - g.pad[1];
                        const bool hin = din && ih >= 0 && ih < long(g.in[1]);
                        for (std::size_t kw = 0; kw < g.kernel[2]; ++kw, ++t) {
                            const long iw = long(ow * g.stride[2] + kw * g.dilation[2]) - g.pad[2];
                            T* dst = row + t * cg;
                            if (hin && iw >= 0 && iw < long(g.in[2])) {
                                T* src = const_cast<T*>(x) +
                                         ((std::size_t(id) * g.in[1] + std::size_t(ih)) * g.in[2] + std::size_t(iw)) * cin +
                                         coff;
                                if (Add)
                                    for (std::size_t c = 0; c < cg; ++c)
                                        src[c] += dst[c];
                                else if (cg < 16) // a call to memcpy costs more than a few elements
                                    for (std::size_t c = 0; c < cg; ++c)
                                        dst[c] = src[c];
                                else
                                    std::memcpy(dst, src, cg * sizeof(T));
                            } else if (!Add) {
                                std::fill(dst, dst + cg, T(0));
                            }
                        }
                    }
                }
            }
}

/// channels_first: col (taps * cin_g, P) for one sample and group; Add = true adds col into x.
template <class T, bool Add>
void im2col_cf(const Geometry& g, const T* x, std::size_t group, T* col)
{
    const std::size_t cg = g.in_per_group(), P = g.out_points(), inP = g.in_points();
    const std::size_t plane_out = g.out[1] * g.out[2];
    std::size_t row_index = 0;
    for (std::size_t kd = 0; kd < g.kernel[0]; ++kd)
        for (std::size_t kh = 0; kh < g.kernel[1]; ++kh)
            for (std::size_t kw = 0; kw < g.kernel[2]; ++kw) {
                const long offw = long(kw * g.dilation[2]) - g.pad[2];
                std::size_t wlo, whi;
                inside_range(offw, g.stride[2], g.in[2], g.out[2], wlo, whi);
                for (std::size_t c = 0; c < cg; ++c, ++row_index) {
                    T* row = col + row_index * P;
                    T* xc = const_cast<T*>(x) + (group * cg + c) * inP;
                    for (std::size_t od = 0; od < g.out[0]; ++od) {
                        const long id = long(od * g.stride[0] + kd * g.dilation[0]) - g.pad[0];
                        T* rd = row + od * plane_out;
                        if (id < 0 || id >= long(g.in[0])) {
                            if (!Add)
                                std::fill(rd, rd + plane_out, T(0));
                            continue;
                        }
                        for (std::size_t oh = 0; oh < g.out[1]; ++oh) {
                            const long ih = long(oh * g.stride[1] + kh * g.dilation[1]) - g.pad[1];
                            T* dst = rd + oh * g.out[2];
                            if (ih < 0 || ih >= long(g.in[1])) {
                                if (!Add)
                                    std::fill(dst, dst + g.out[2], T(0));
                                continue;
                            }
                            T* src = xc + (std::size_t(id) * g.in[1] + std::size_t(ih)) * g.in[2] + offw;
                            if (!Add) {
                                std::fill(dst, dst + wlo, T(0));
                                std::fill(dst + whi, dst + g.out[2], T(0));
                            }
                            const std::size_t s = g.stride[2];
                            if (Add) {
                                for (std::size_t ow = wlo; ow < whi; ++ow)
                                    src[ow * s] += dst[ow];
                            } else if (s == 1) {
                                std::memcpy(dst + wlo, src + wlo, (whi - wlo) * sizeof(T));
                            } else {
                                for (std::size_t ow = wlo; ow < whi; ++ow)
                                    dst[ow] = src[ow * s];
                            }
                        }
                    }
                }
            }
}

/// A per-thread buffer that only grows (one per tag), so steady-state calls allocate nothing.
template <class T, int Tag>
T* scratch(std::size_t n)
{
    thread_local std::vector<T> buf;
    if (buf.size() < n)
        buf.resize(n);
    return buf.data();
}

/// Samples per block (Note [Convolution as gemm]): channels_last aims at about 2048 rows of the
/// product per block, spread evenly; channels_first takes one sample per block.
struct Blocks {
    std::size_t count = 0, per_block = 1, batch = 0;
    std::size_t begin(std::size_t b) const { return std::min(batch, b * per_block); }
    std::size_t end(std::size_t b) const { return std::min(batch, (b + 1) * per_block); }
};

Blocks blocks_of(const Geometry& g)
{
    Blocks bl;
    bl.batch = g.batch;
    if (g.batch == 0)
        return bl;
    std::size_t per = 1;
    if (!g.channels_first) {
        const std::size_t target = std::max<std::size_t>(1, 2048 / std::max<std::size_t>(1, g.out_points()));
        const std::size_t n_blocks = ceil_div(g.batch, std::min(target, g.batch));
        per = ceil_div(g.batch, n_blocks);
    }
    bl.per_block = per;
    bl.count = ceil_div(g.batch, per);
    return bl;
}

/// Runs f(b) for every block, on the OpenMP team when the work is large enough and OpenBLAS is
/// single-threaded (otherwise in order, leaving the threads to OpenBLAS).
template <class F>
void for_blocks(std::size_t count, double work, F&& f)
{
    const bool parallel = count > 1 && work >= double(1 << 18) && blas_threads() == 1 && max_threads() > 1 &&
                          !omp_in_parallel();
    if (!parallel) {
        for (std::size_t b = 0; b < count; ++b)
            f(b);
        return;
    }
    const int team = std::min<int>(max_threads(), int(count));
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
    for (std::ptrdiff_t b = 0; b < std::ptrdiff_t(count); ++b)
        f(std::size_t(b));
}

template <class T>
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda, const T* b,
          std::size_t ldb, T beta, T* c, std::size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        if (beta == T(0))
            for (std::size_t i = 0; i < m; ++i)
                std::fill(c + i * ldc, c + i * ldc + n, T(0));
        return;
    }
    kernels::detail::gemm_call<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, beta, c, ldc);
}

// ---- depthwise: one input channel per group ---------------------------------------------------
// Note [Direct depthwise]: with one input channel per group the product of a group is a dot product
// of length taps, which gemm runs at a few percent of its rate, and im2col would copy single
// elements. So these problems loop directly: over the rows of output positions a tap reaches
// (for_each_row), then over the positions of the row and the channels (channels_last: contiguous
// channels, channel c feeding outputs c * m .. c * m + m - 1) or over the row alone (channels_first).

/// Calls f(out_row, t, in_row, off, lo, hi) for every row of output positions (od, oh) and tap t
/// whose row lies inside the input: positions ow in [lo, hi) read input point in_row + ow * s + off.
template <class F>
void for_each_row(const Geometry& g, F&& f)
{
    std::size_t t = 0;
    for (std::size_t kd = 0; kd < g.kernel[0]; ++kd)
        for (std::size_t kh = 0; kh < g.kernel[1]; ++kh)
            for (std::size_t kw = 0; kw < g.kernel[2]; ++kw, ++t) {
                const long off = long(kw * g.dilation[2]) - g.pad[2];
                std::size_t lo, hi;
                inside_range(off, g.stride[2], g.in[2], g.out[2], lo, hi);
                if (lo >= hi)
                    continue;
                for (std::size_t od = 0; od < g.out[0]; ++od) {
                    const long id = long(od * g.stride[0] + kd * g.dilation[0]) - g.pad[0];
                    if (id < 0 || id >= long(g.in[0]))
                        continue;
                    for (std::size_t oh = 0; oh < g.out[1]; ++oh) {
                        const long ih = long(oh * g.stride[1] + kh * g.dilation[1]) - g.pad[1];
                        if (ih < 0 || ih >= long(g.in[1]))
                            continue;
                        f((od * g.out[1] + oh) * g.out[2], t, (std::size_t(id) * g.in[1] + std::size_t(ih)) * g.in[2],
                          off, lo, hi);
                    }
                }
            }
}

/// y (one sample) += depthwise conv of x (one sample); dy -> dx when Adjoint.
template <class T, bool Adjoint>
void depthwise_sample(const Geometry& g, const T* x, const T* w, T* y)
{
    const std::size_t cin = g.in_channels, cout = g.out_channels, m = g.out_per_group(), s = g.stride[2];
    const std::size_t P = g.out_points(), inP = g.in_points();
    if (!g.channels_first) {
        for_each_row(g, [&](std::size_t orow, std::size_t t, std::size_t irow, long off, std::size_t lo, std::size_t hi) {
            const T* wt = w + t * cout;
            for (std::size_t ow = lo; ow < hi; ++ow) {
                T* yr = y + (orow + ow) * cout;
                const std::size_t ip = std::size_t(long(irow + ow * s) + off);
                if (!Adjoint) {
                    const T* xr = x + ip * cin;
                    if (m == 1)
                        for (std::size_t c = 0; c < cin; ++c)
                            yr[c] += xr[c] * wt[c];
                    else
                        for (std::size_t c = 0; c < cin; ++c)
                            for (std::size_t j = 0; j < m; ++j)
                                yr[c * m + j] += xr[c] * wt[c * m + j];
                } else {
                    T* xr = const_cast<T*>(x) + ip * cin; // x is dx here, yr dy
                    if (m == 1)
                        for (std::size_t c = 0; c < cin; ++c)
                            xr[c] += yr[c] * wt[c];
                    else
                        for (std::size_t c = 0; c < cin; ++c) {
                            T acc = T(0);
                            for (std::size_t j = 0; j < m; ++j)
                                acc += yr[c * m + j] * wt[c * m + j];
                            xr[c] += acc;
                        }
                }
            }
        });
        return;
    }
    for (std::size_t o = 0; o < cout; ++o) {
        const std::size_t c = o / m;
        T* yo = y + o * P;
        T* xc = const_cast<T*>(x) + c * inP;
        for_each_row(g, [&](std::size_t orow, std::size_t t, std::size_t irow, long off, std::size_t lo, std::size_t hi) {
            const T wv = w[t * cout + o];
            T* yr = yo + orow;
            T* xr = xc + long(irow) + off;
            if (!Adjoint)
                for (std::size_t ow = lo; ow < hi; ++ow)
                    yr[ow] += wv * xr[ow * s];
            else
                for (std::size_t ow = lo; ow < hi; ++ow)
                    xr[ow * s] += wv * yr[ow];
        });
    }
}

/// dw (taps, cout) += the kernel gradient of one sample.
template <class T>
void depthwise_kernel_sample(const Geometry& g, const T* x, const T* dy, T* dw)
{
    const std::size_t cin = g.in_channels, cout = g.out_channels, m = g.out_per_group(), s = g.stride[2];
    const std::size_t P = g.out_points(), inP = g.in_points();
    if (!g.channels_first) {
        for_each_row(g, [&](std::size_t orow, std::size_t t, std::size_t irow, long off, std::size_t lo, std::size_t hi) {
            T* dwt = dw + t * cout;
            for (std::size_t ow = lo; ow < hi; ++ow) {
                const T* dyr = dy + (orow + ow) * cout;
                const T* xr = x + std::size_t(long(irow + ow * s) + off) * cin;
                if (m == 1)
                    for (std::size_t c = 0; c < cin; ++c)
                        dwt[c] += xr[c] * dyr[c];
                else
                    for (std::size_t c = 0; c < cin; ++c)
                        for (std::size_t j = 0; j < m; ++j)
                            dwt[c * m + j] += xr[c] * dyr[c * m + j];
            }
        });
        return;
    }
    for (std::size_t o = 0; o < cout; ++o) {
        const T* dyo = dy + o * P;
        const T* xc = x + (o / m) * inP;
        for_each_row(g, [&](std::size_t orow, std::size_t t, std::size_t irow, long off, std::size_t lo, std::size_t hi) {
            const T* dyr = dyo + orow;
            const T* xr = xc + long(irow) + off;
            // Eight partial sums in a fixed order: the compiler may not reorder one float sum, so a
            // single accumulator would leave the loop unvectorized (2.4 GFLOP/s on 32x64x56x56).
            T acc[8] = {};
            std::size_t ow = lo;
            if (s == 1)
                for (; ow + 8 <= hi; ow += 8)
                    for (std::size_t l = 0; l < 8; ++l)
                        acc[l] += dyr[ow + l] * xr[ow + l];
            for (; ow < hi; ++ow)
                acc[0] += dyr[ow] * xr[ow * s];
            T total = T(0);
            for (std::size_t l = 0; l < 8; ++l)
                total += acc[l];
            dw[t * cout + o] += total;
        });
    }
}

bool direct_depthwise(const Geometry& g) { return g.in_per_group() == 1 && g.groups > 1; }

/// Note [Single-channel channels_last]: with one input channel a channels_last sample is the same
/// memory as a channels_first one, so its column matrix is built row by row (im2col_cf, copies of
/// whole rows) instead of one element per tap and position, and the product is taken transposed,
/// col^T W, which lands in channels_last order. For the first layer of a grayscale network
/// (28x28x1 -> 32, 3x3) that took the forward from 18% to about the sgemm rate of channels_first.
bool single_channel_last(const Geometry& g)
{
    return !g.channels_first && g.in_channels == 1 && g.groups == 1 && !g.pointwise();
}

} // namespace

template <class T>
void forward(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool accumulate)
{
    if (direct_depthwise(g)) { // Note [Direct depthwise]
        const std::size_t yn = g.out_points() * g.out_channels, xn = g.in_points() * g.in_channels;
        for_blocks(g.batch, g.macs(), [&](std::size_t n) {
            T* yp = y + n * yn;
            if (bias && g.channels_first)
                for (std::size_t o = 0; o < g.out_channels; ++o)
                    std::fill(yp + o * g.out_points(), yp + (o + 1) * g.out_points(), bias[o]);
            else if (bias)
                for (std::size_t p = 0; p < g.out_points(); ++p)
                    std::memcpy(yp + p * g.out_channels, bias, g.out_channels * sizeof(T));
            else if (!accumulate)
                std::fill(yp, yp + yn, T(0));
            depthwise_sample<T, false>(g, x + n * xn, w, yp);
        });
        return;
    }
    const Blocks bl = blocks_of(g);
    const std::size_t P = g.out_points(), inP = g.in_points(), cin = g.in_channels, cout = g.out_channels;
    const std::size_t cg = g.in_per_group(), og = g.out_per_group(), depth = g.col_depth();
    const bool pw = g.pointwise();
    const T beta = (bias || accumulate) ? T(1) : T(0);
    for_blocks(bl.count, g.macs(), [&](std::size_t b) {
        const std::size_t n0 = bl.begin(b), n1 = bl.end(b), nb = n1 - n0;
        if (!g.channels_first) {
            const std::size_t rows = nb * P;
            T* yb = y + n0 * P * cout;
            if (bias)
                for (std::size_t r = 0; r < rows; ++r)
                    std::memcpy(yb + r * cout, bias, cout * sizeof(T));
            const T* xb = x + n0 * inP * cin;
            T* col = pw ? nullptr : scratch<T, 0>(rows * depth);
            if (single_channel_last(g)) { // Note [Single-channel channels_last]
                for (std::size_t n = 0; n < nb; ++n) {
                    im2col_cf<T, false>(g, xb + n * inP, 0, col);
                    gemm<T>(true, false, P, cout, depth, col, P, w, cout, beta, yb + n * P * cout, cout);
                }
                return;
            }
            for (std::size_t gr = 0; gr < g.groups; ++gr) {
                if (pw) {
                    gemm<T>(false, false, rows, og, cg, xb + gr * cg, cin, w + gr * og, cout, beta, yb + gr * og, cout);
                    continue;
                }
                for (std::size_t n = 0; n < nb; ++n)
                    im2col_cl<T, false>(g, xb + n * inP * cin, gr, col + n * P * depth);
                gemm<T>(false, false, rows, og, depth, col, depth, w + gr * og, cout, beta, yb + gr * og, cout);
            }
        } else {
            for (std::size_t n = n0; n < n1; ++n) {
                T* yn = y + n * cout * P;
                if (bias)
                    for (std::size_t o = 0; o < cout; ++o)
                        std::fill(yn + o * P, yn + (o + 1) * P, bias[o]);
                const T* xn = x + n * cin * inP;
                T* col = pw ? nullptr : scratch<T, 0>(depth * P);
                for (std::size_t gr = 0; gr < g.groups; ++gr) {
                    const T* bmat = xn + gr * cg * inP;
                    if (!pw) {
                        im2col_cf<T, false>(g, xn, gr, col);
                        bmat = col;
                    }
                    gemm<T>(true, false, og, P, depth, w + gr * og, cout, bmat, P, beta, yn + gr * og * P, P);
                }
            }
        }
    });
}

template <class T>
void backward_input(const Geometry& g, const T* dy, const T* w, T* dx)
{
    if (direct_depthwise(g)) {
        const std::size_t yn = g.out_points() * g.out_channels, xn = g.in_points() * g.in_channels;
        for_blocks(g.batch, g.macs(), [&](std::size_t n) { depthwise_sample<T, true>(g, dx + n * xn, w, const_cast<T*>(dy + n * yn)); });
        return;
    }
    const Blocks bl = blocks_of(g);
    const std::size_t P = g.out_points(), inP = g.in_points(), cin = g.in_channels, cout = g.out_channels;
    const std::size_t cg = g.in_per_group(), og = g.out_per_group(), depth = g.col_depth();
    const bool pw = g.pointwise();
    for_blocks(bl.count, g.macs(), [&](std::size_t b) {
        const std::size_t n0 = bl.begin(b), n1 = bl.end(b), nb = n1 - n0;
        if (!g.channels_first) {
            const std::size_t rows = nb * P;
            const T* dyb = dy + n0 * P * cout;
            T* dxb = dx + n0 * inP * cin;
            T* col = pw ? nullptr : scratch<T, 0>(rows * depth);
            if (single_channel_last(g)) { // dcol (depth, P) = W (depth, cout) dy^T
                for (std::size_t n = 0; n < nb; ++n) {
                    gemm<T>(false, true, depth, P, cout, w, cout, dyb + n * P * cout, cout, T(0), col, P);
                    im2col_cf<T, true>(g, dxb + n * inP, 0, col);
                }
                return;
            }
            for (std::size_t gr = 0; gr < g.groups; ++gr) {
                // dcol (rows, depth) = dy_g (rows, og) W_g^T, W_g (depth, og) with row stride cout.
                if (pw) {
                    gemm<T>(false, true, rows, cg, og, dyb + gr * og, cout, w + gr * og, cout, T(1), dxb + gr * cg, cin);
                    continue;
                }
                gemm<T>(false, true, rows, depth, og, dyb + gr * og, cout, w + gr * og, cout, T(0), col, depth);
                for (std::size_t n = 0; n < nb; ++n)
                    im2col_cl<T, true>(g, dxb + n * inP * cin, gr, col + n * P * depth);
            }
        } else {
            for (std::size_t n = n0; n < n1; ++n) {
                const T* dyn = dy + n * cout * P;
                T* dxn = dx + n * cin * inP;
                T* col = pw ? nullptr : scratch<T, 0>(depth * P);
                for (std::size_t gr = 0; gr < g.groups; ++gr) {
                    // dcol (depth, P) = W_g (depth, og) dy_g (og, P)
                    if (pw) {
                        gemm<T>(false, false, cg, P, og, w + gr * og, cout, dyn + gr * og * P, P, T(1),
                                dxn + gr * cg * inP, P);
                        continue;
                    }
                    gemm<T>(false, false, depth, P, og, w + gr * og, cout, dyn + gr * og * P, P, T(0), col, P);
                    im2col_cf<T, true>(g, dxn, gr, col);
                }
            }
        }
    });
}

template <class T>
void backward_kernel(const Geometry& g, const T* x, const T* dy, T* dw)
{
    const Blocks bl = blocks_of(g);
    if (bl.count == 0)
        return;
    const std::size_t P = g.out_points(), inP = g.in_points(), cin = g.in_channels, cout = g.out_channels;
    const std::size_t cg = g.in_per_group(), og = g.out_per_group(), depth = g.col_depth();
    const std::size_t wsize = depth * cout;
    const bool pw = g.pointwise();
    const std::size_t chunks = std::min<std::size_t>(bl.count, 8);
    T* partial = scratch<T, 1>(chunks * wsize);
    if (direct_depthwise(g)) {
        // Chunks of samples fixed by the batch size (Note [Convolution determinism]).
        const std::size_t dchunks = std::min<std::size_t>(g.batch, 8);
        T* dpart = scratch<T, 1>(dchunks * wsize);
        const std::size_t yn = P * cout, xn = inP * cin;
        for_blocks(dchunks, g.macs(), [&](std::size_t c) {
            T* pc = dpart + c * wsize;
            std::fill(pc, pc + wsize, T(0));
            for (std::size_t n = g.batch * c / dchunks; n < g.batch * (c + 1) / dchunks; ++n)
                depthwise_kernel_sample<T>(g, x + n * xn, dy + n * yn, pc);
        });
        for (std::size_t i = 0; i < wsize; ++i) {
            double sum = 0.0;
            for (std::size_t c = 0; c < dchunks; ++c)
                sum += double(dpart[c * wsize + i]);
            dw[i] += T(sum);
        }
        return;
    }
    for_blocks(chunks, g.macs(), [&](std::size_t c) {
        T* pc = partial + c * wsize;
        const std::size_t b0 = bl.count * c / chunks, b1 = bl.count * (c + 1) / chunks;
        for (std::size_t b = b0; b < b1; ++b) {
            const T beta = b == b0 ? T(0) : T(1);
            const std::size_t n0 = bl.begin(b), n1 = bl.end(b), nb = n1 - n0;
            if (!g.channels_first) {
                const std::size_t rows = nb * P;
                const T* xb = x + n0 * inP * cin;
                const T* dyb = dy + n0 * P * cout;
                T* col = pw ? nullptr : scratch<T, 0>(rows * depth);
                if (single_channel_last(g)) { // dW (depth, cout) += col (depth, P) dy (P, cout)
                    for (std::size_t n = 0; n < nb; ++n) {
                        im2col_cf<T, false>(g, xb + n * inP, 0, col);
                        gemm<T>(false, false, depth, cout, P, col, P, dyb + n * P * cout, cout, n == 0 ? beta : T(1),
                                pc, cout);
                    }
                    continue;
                }
                for (std::size_t gr = 0; gr < g.groups; ++gr) {
                    // dW_g (depth, og) += col^T (depth, rows) dy_g (rows, og)
                    const T* a = xb + gr * cg;
                    std::size_t lda = cin;
                    if (!pw) {
                        for (std::size_t n = 0; n < nb; ++n)
                            im2col_cl<T, false>(g, xb + n * inP * cin, gr, col + n * P * depth);
                        a = col;
                        lda = depth;
                    }
                    gemm<T>(true, false, depth, og, rows, a, lda, dyb + gr * og, cout, beta, pc + gr * og, cout);
                }
            } else {
                for (std::size_t n = n0; n < n1; ++n) {
                    const T bn = n == n0 ? beta : T(1);
                    const T* xn = x + n * cin * inP;
                    const T* dyn = dy + n * cout * P;
                    T* col = pw ? nullptr : scratch<T, 0>(depth * P);
                    for (std::size_t gr = 0; gr < g.groups; ++gr) {
                        // dW_g (depth, og) += col (depth, P) dy_g^T (P, og)
                        const T* a = xn + gr * cg * inP;
                        if (!pw) {
                            im2col_cf<T, false>(g, xn, gr, col);
                            a = col;
                        }
                        gemm<T>(false, true, depth, og, P, a, P, dyn + gr * og * P, P, bn, pc + gr * og, cout);
                    }
                }
            }
        }
    });
    // Partials in chunk order, in double (Note [Convolution determinism]).
    parallel_for(
        wsize,
        [&](std::size_t i0, std::size_t i1) {
            for (std::size_t i = i0; i < i1; ++i) {
                double s = 0.0;
                for (std::size_t c = 0; c < chunks; ++c)
                    s += double(partial[c * wsize + i]);
                dw[i] += T(s);
            }
        },
        chunks);
}

template <class T>
void add_channel_sums(const T* dy, std::size_t n, std::size_t points, std::size_t channels, bool channels_first,
                      T* db)
{
    if (n == 0 || channels == 0)
        return;
    // Chunks of samples fixed by the shape; each sums in double into its own slot.
    const std::size_t chunks = std::min<std::size_t>(n, 16);
    thread_local std::vector<double> partial;
    partial.assign(chunks * channels, 0.0);
    double* pp = partial.data();
    parallel_for(
        chunks,
        [&](std::size_t c0, std::size_t c1) {
            for (std::size_t c = c0; c < c1; ++c) {
                double* acc = pp + c * channels;
                const std::size_t s0 = n * c / chunks, s1 = n * (c + 1) / chunks;
                for (std::size_t s = s0; s < s1; ++s) {
                    const T* d = dy + s * points * channels;
                    if (channels_first) {
                        for (std::size_t o = 0; o < channels; ++o) {
                            double t = 0.0;
                            for (std::size_t p = 0; p < points; ++p)
                                t += double(d[o * points + p]);
                            acc[o] += t;
                        }
                    } else {
                        for (std::size_t p = 0; p < points; ++p)
                            for (std::size_t o = 0; o < channels; ++o)
                                acc[o] += double(d[p * channels + o]);
                    }
                }
            }
        },
        points * channels * std::max<std::size_t>(1, n / chunks));
    for (std::size_t o = 0; o < channels; ++o) {
        double s = 0.0;
        for (std::size_t c = 0; c < chunks; ++c)
            s += pp[c * channels + o];
        db[o] += T(s);
    }
}

} // namespace convolution

// ---- taped ops ----------------------------------------------------------------------------------

namespace {

template <class T>
void check_bias(const Tensor<T>& b, std::size_t channels, const std::string& op)
{
    if (b.defined() && (b.dim() != 1 || b.shape()[0] != channels))
        throw ShapeError(op + ": bias must have shape (" + std::to_string(channels) + ",), received " +
                         shape_str(b.shape()));
}

} // namespace

template <class T>
Tensor<T> conv(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias, const ConvOptions& options)
{
    const convolution::Geometry g = convolution::conv_geometry(x.shape(), kernel.shape(), options, "conv");
    check_bias(bias, g.out_channels, "conv");
    const bool has_bias = bias.defined();
    array_t<T> out = array_t<T>::from_shape(g.y_shape());
    convolution::forward<T>(g, x.data(), kernel.data(), has_bias ? bias.data() : nullptr, out.data());
    Tensor<T> y(std::move(out));
    std::vector<Tensor<T>> inputs{ x, kernel };
    if (has_bias)
        inputs.push_back(bias);
    if (!should_record<T>(inputs))
        return y;
    record_op<T>("conv", inputs, y,
                 BackwardFn<T>([x, kernel, g, has_bias](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     if (dx[0])
                         convolution::backward_input<T>(g, dy.data(), kernel.data(), dx[0]->data());
                     if (dx[1])
                         convolution::backward_kernel<T>(g, x.data(), dy.data(), dx[1]->data());
                     if (has_bias && dx[2])
                         convolution::add_channel_sums<T>(dy.data(), g.batch, g.out_points(), g.out_channels,
                                                   g.channels_first, dx[2]->data());
                 }));
    return y;
}

template <class T>
Tensor<T> depthwise_conv(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias,
                         const ConvOptions& options)
{
    const shape_t k = kernel.shape();
    if (k.size() < 3)
        throw ShapeError("depthwise_conv: expected a kernel (k..., in_channels, depth_multiplier), received " +
                         shape_str(k));
    const std::size_t cin = k[k.size() - 2], m = k.back();
    const std::size_t x_channels = x.dim() ? (options.channels_first ? x.shape().at(1) : x.shape().back()) : 0;
    if (x_channels != cin)
        throw ShapeError("depthwise_conv: the kernel's input channels (" + std::to_string(cin) +
                         ") differ from the input's (" + std::to_string(x_channels) + "); kernel " + shape_str(k) +
                         ", input " + shape_str(x.shape()));
    // Note [Convolution as gemm] in conv.hpp: the same memory as a grouped kernel.
    std::vector<long> grouped(k.begin(), k.end() - 2);
    grouped.push_back(1);
    grouped.push_back(long(cin * m));
    ConvOptions o = options;
    o.groups = cin;
    return conv<T>(x, reshape<T>(kernel, grouped), bias, o);
}

template <class T>
Tensor<T> conv_transpose(const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& bias,
                         const ConvOptions& options)
{
    const convolution::Geometry g = convolution::conv_transpose_geometry(x.shape(), kernel.shape(), options, "conv_transpose");
    check_bias(bias, g.in_channels, "conv_transpose");
    const bool has_bias = bias.defined();
    array_t<T> out = array_t<T>::from_shape(g.x_shape());
    T* op = out.data();
    const std::size_t n = out.size();
    parallel_for(n, [op](std::size_t b, std::size_t e) { std::fill(op + b, op + e, T(0)); });
    convolution::backward_input<T>(g, x.data(), kernel.data(), op);
    if (has_bias) {
        const T* bp = bias.data();
        const std::size_t C = g.in_channels, P = g.in_points();
        parallel_for(
            g.batch,
            [&](std::size_t s0, std::size_t s1) {
                for (std::size_t s = s0; s < s1; ++s) {
                    T* o = op + s * C * P;
                    if (g.channels_first)
                        for (std::size_t c = 0; c < C; ++c)
                            for (std::size_t p = 0; p < P; ++p)
                                o[c * P + p] += bp[c];
                    else
                        for (std::size_t p = 0; p < P; ++p)
                            for (std::size_t c = 0; c < C; ++c)
                                o[p * C + c] += bp[c];
                }
            },
            C * P);
    }
    Tensor<T> y(std::move(out));
    std::vector<Tensor<T>> inputs{ x, kernel };
    if (has_bias)
        inputs.push_back(bias);
    if (!should_record<T>(inputs))
        return y;
    record_op<T>("conv_transpose", inputs, y,
                 BackwardFn<T>([x, kernel, g, has_bias](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
                     // The forward is the adjoint of conv(., W): its input gradient is conv(dy, W),
                     // its kernel gradient the conv kernel gradient with the roles of x and dy swapped.
                     if (dx[0])
                         convolution::forward<T>(g, dy.data(), kernel.data(), nullptr, dx[0]->data(), true);
                     if (dx[1])
                         convolution::backward_kernel<T>(g, dy.data(), x.data(), dx[1]->data());
                     if (has_bias && dx[2])
                         convolution::add_channel_sums<T>(dy.data(), g.batch, g.in_points(), g.in_channels,
                                                   g.channels_first, dx[2]->data());
                 }));
    return y;
}

#define XTAPE_INSTANTIATE(T)                                                                                       \
    template void convolution::forward<T>(const convolution::Geometry&, const T*, const T*, const T*, T*, bool);                  \
    template void convolution::backward_input<T>(const convolution::Geometry&, const T*, const T*, T*);                           \
    template void convolution::backward_kernel<T>(const convolution::Geometry&, const T*, const T*, T*);                          \
    template void convolution::add_channel_sums<T>(const T*, std::size_t, std::size_t, std::size_t, bool, T*);             \
    template Tensor<T> conv<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const ConvOptions&);          \
    template Tensor<T> depthwise_conv<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const ConvOptions&); \
    template Tensor<T> conv_transpose<T>(const Tensor<T>&, const Tensor<T>&, const Tensor<T>&, const ConvOptions&);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
