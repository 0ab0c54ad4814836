// A table-style helper for elementwise unary ops: an op is its forward formula and its
// local derivative, and this file supplies the loop, the parallel split and the recording.
#pragma once

#include "framework/parallel.hpp"
#include "framework/tape.hpp"

namespace xtape::kernels {

/// y = f(x) elementwise; backward dx += dy * df(x, y), or dx = ... for a first contribution
/// (Note [First gradient contributions] in tape.hpp: no zero fill, no read of dx).
template <class T, class F, class DF>
Tensor<T> unary_op(const char* name, const Tensor<T>& x, F f, DF df)
{
    const array_t<T>& xv = x.value();
    array_t<T> yv = array_t<T>::from_shape(xv.shape());
    const T* xp = xv.data();
    T* yp = yv.data();
    parallel_for(xv.size(), [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i)
            yp[i] = f(xp[i]);
    });
    Tensor<T> y(std::move(yv));
    if (should_record<T>({ &x })) {
        record_op<T>(name, { x }, y,
                     FirstAwareBackwardFn<T>([x, yw = Tensor<T>(y), df](const array_t<T>& dy,
                                                                        const std::vector<array_t<T>*>& dx,
                                                                        const std::vector<bool>& first) {
                         if (!dx[0])
                             return;
                         const T* xp = x.data();
                         const T* yp = yw.data();
                         const T* gp = dy.data();
                         T* out = dx[0]->data();
                         const bool assign = first[0];
                         parallel_for(dy.size(), [&](std::size_t b, std::size_t e) {
                             if (assign)
                                 for (std::size_t i = b; i < e; ++i)
                                     out[i] = gp[i] * df(xp[i], yp[i]);
                             else
                                 for (std::size_t i = b; i < e; ++i)
                                     out[i] += gp[i] * df(xp[i], yp[i]);
                         });
                     }));
    }
    return y;
}

} // namespace xtape::kernels
