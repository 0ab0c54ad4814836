// sum, mean and max over axes. The reduced result is computed in keepdims form, which
// broadcasts against the input, so forward and backward share the broadcast walker.
// Sums accumulate in double and walk the input in a fixed order (deterministic).
#include "framework/kernels/axes.hpp"
#include "framework/kernels/broadcast.hpp"
#include "framework/ops.hpp"

#include <limits>

namespace xtape {
namespace {

template <class T>
Tensor<T> sum_scaled(const char* name, const Tensor<T>& x, const axes_t& axes_in, bool keepdims, bool average)
{
    const shape_t sx = x.shape();
    const auto axes = kernels::normalize_axes(axes_in, sx.size(), name);
    const shape_t sk = kernels::keep_shape(sx, axes);
    const std::size_t nout = shape_size(sk);
    const std::size_t group = nout ? x.size() / nout : 0;
    const double scale = average ? (group ? 1.0 / static_cast<double>(group) : std::numeric_limits<double>::quiet_NaN())
                                 : 1.0;
    array_t<T> out = array_t<T>::from_shape(keepdims ? sk : kernels::drop_axes(sx, axes));
    const T* xp = x.data();
    if (nout == 1) {
        out.data()[0] = static_cast<T>(deterministic_sum(x.size(), [xp](std::size_t i) { return xp[i]; }) * scale);
    } else {
        std::vector<double> acc(nout, 0.0);
        kernels::for_each_broadcast_serial(sx, sx, sk,
                                           [&](std::size_t, std::size_t ia, std::size_t ib) { acc[ib] += xp[ia]; });
        for (std::size_t i = 0; i < nout; ++i)
            out.data()[i] = static_cast<T>(acc[i] * scale);
    }
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>(name, { x }, y, [sx, sk, scale](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
        if (!dx[0])
            return;
        // d(sum)/dx_i = 1 for every x_i of the group; mean divides by the group size.
        T* d = dx[0]->data();
        const T* g = dy.data();
        const T s = static_cast<T>(scale);
        kernels::for_each_broadcast(sx, sx, sk, [&](std::size_t, std::size_t ia, std::size_t ib) { d[ia] += g[ib] * s; });
    });
    return y;
}

} // namespace

template <class T>
Tensor<T> sum(const Tensor<T>& x, const axes_t& axes, bool keepdims)
{
    return sum_scaled("sum", x, axes, keepdims, false);
}

template <class T>
Tensor<T> mean(const Tensor<T>& x, const axes_t& axes, bool keepdims)
{
    return sum_scaled("mean", x, axes, keepdims, true);
}

template <class T>
Tensor<T> max(const Tensor<T>& x, const axes_t& axes_in, bool keepdims)
{
    const shape_t sx = x.shape();
    const auto axes = kernels::normalize_axes(axes_in, sx.size(), "max");
    const shape_t sk = kernels::keep_shape(sx, axes);
    const std::size_t nout = shape_size(sk);
    if (x.size() == 0)
        throw ValueError("max: cannot reduce an empty tensor of shape " + shape_str(sx));
    std::vector<std::size_t> arg(nout, std::numeric_limits<std::size_t>::max());
    array_t<T> out = array_t<T>::from_shape(keepdims ? sk : kernels::drop_axes(sx, axes));
    T* op = out.data();
    const T* xp = x.data();
    kernels::for_each_broadcast_serial(sx, sx, sk, [&](std::size_t, std::size_t ia, std::size_t ib) {
        if (arg[ib] == std::numeric_limits<std::size_t>::max() || xp[ia] > op[ib]) {
            op[ib] = xp[ia];
            arg[ib] = ia;
        }
    });
    Tensor<T> y(std::move(out));
    if (!should_record<T>({ &x }))
        return y;
    record_op<T>("max", { x }, y, [arg = std::move(arg)](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
        if (!dx[0])
            return;
        for (std::size_t i = 0; i < arg.size(); ++i)
            dx[0]->data()[arg[i]] += dy.data()[i];
    });
    return y;
}

#define XTAPE_INSTANTIATE(T)                                                                                 \
    template Tensor<T> sum(const Tensor<T>&, const axes_t&, bool);                                           \
    template Tensor<T> mean(const Tensor<T>&, const axes_t&, bool);                                          \
    template Tensor<T> max(const Tensor<T>&, const axes_t&, bool);
XTAPE_INSTANTIATE(float)
XTAPE_INSTANTIATE(double)
#undef XTAPE_INSTANTIATE

} // namespace xtape
