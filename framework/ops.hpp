// Differentiable ops. Each op computes its output and, when a tape tracks an input, records
// its backward (written beside the forward in the .cpp). All ops are templates instantiated
// for float and double: gradient checks in double run through the same kernels as training.
//
// Broadcasting follows NumPy: shapes are aligned on the right; a dimension of 1 (or a
// missing one) stretches. The backward of a broadcast input sums the gradient back to the
// input's shape. Axes may be negative (counted from the end), as in Keras.
#pragma once

#include "framework/tape.hpp"
#include "framework/tensor.hpp"

#include <string>
#include <vector>

namespace xtape {

using axes_t = std::vector<int>;

// ---- elementwise, broadcasting --------------------------------------------------------
template <class T> Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> div(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> maximum(const Tensor<T>& a, const Tensor<T>& b);
template <class T> Tensor<T> minimum(const Tensor<T>& a, const Tensor<T>& b);
/// a ** b elementwise; the gradient with respect to b needs a > 0.
template <class T> Tensor<T> pow(const Tensor<T>& a, const Tensor<T>& b);

// ---- elementwise with a scalar constant -----------------------------------------------
template <class T> Tensor<T> add_scalar(const Tensor<T>& a, T s);
template <class T> Tensor<T> mul_scalar(const Tensor<T>& a, T s);
template <class T> Tensor<T> pow_scalar(const Tensor<T>& a, T p);

// ---- unary --------------------------------------------------------------------------------
template <class T> Tensor<T> neg(const Tensor<T>& x);
template <class T> Tensor<T> exp(const Tensor<T>& x);
template <class T> Tensor<T> log(const Tensor<T>& x);
template <class T> Tensor<T> sqrt(const Tensor<T>& x);
template <class T> Tensor<T> square(const Tensor<T>& x);
template <class T> Tensor<T> abs(const Tensor<T>& x);
/// Clamps to [lo, hi]; the gradient passes only where lo < x < hi (as tf.clip_by_value).
template <class T> Tensor<T> clip(const Tensor<T>& x, T lo, T hi);

// ---- activations (Keras's definitions and defaults) ---------------------------------------
template <class T> Tensor<T> relu(const Tensor<T>& x);
/// Keras's activations.relu with negative_slope, max_value (<0: none) and threshold.
template <class T> Tensor<T> relu(const Tensor<T>& x, T negative_slope, T max_value, T threshold);
template <class T> Tensor<T> leaky_relu(const Tensor<T>& x, T negative_slope = T(0.2));
template <class T> Tensor<T> elu(const Tensor<T>& x, T alpha = T(1));
template <class T> Tensor<T> selu(const Tensor<T>& x);
template <class T> Tensor<T> sigmoid(const Tensor<T>& x);
template <class T> Tensor<T> tanh(const Tensor<T>& x);
template <class T> Tensor<T> softplus(const Tensor<T>& x);
template <class T> Tensor<T> softsign(const Tensor<T>& x);
/// Keras 3 default approximate=false: x * Phi(x) with the exact normal CDF.
template <class T> Tensor<T> gelu(const Tensor<T>& x, bool approximate = false);
template <class T> Tensor<T> swish(const Tensor<T>& x);
/// Keras 3: relu6(x + 3) / 6.
template <class T> Tensor<T> hard_sigmoid(const Tensor<T>& x);
template <class T> Tensor<T> softmax(const Tensor<T>& x, int axis = -1);
template <class T> Tensor<T> log_softmax(const Tensor<T>& x, int axis = -1);
/// An activation by its Keras name ("relu", "softmax", "linear", ...); throws KeyError otherwise.
template <class T> Tensor<T> activation(const std::string& name, const Tensor<T>& x);
/// True when `name` is an activation that activation() knows.
bool is_activation_name(const std::string& name);

// ---- linear algebra -----------------------------------------------------------------------
/// (m,k)@(k,n); batched: (..., m, k)@(..., k, n) with equal batch dims, or (..., m, k)@(k, n).
template <class T> Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b);
/// Fused x@W + b for x (..., in), W (in, out), b (out) or empty: one gemm, bias added in place.
template <class T> Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b);

// ---- shape ----------------------------------------------------------------------------------
template <class T> Tensor<T> transpose(const Tensor<T>& x, const std::vector<std::size_t>& perm = {});
/// One dimension may be -1 (inferred).
template <class T> Tensor<T> reshape(const Tensor<T>& x, const std::vector<long>& shape);
template <class T> Tensor<T> expand_dims(const Tensor<T>& x, int axis);
template <class T> Tensor<T> squeeze(const Tensor<T>& x, int axis);
template <class T> Tensor<T> concatenate(const std::vector<Tensor<T>>& xs, int axis = -1);
/// Elements [begin, end) along `axis`.
template <class T> Tensor<T> slice(const Tensor<T>& x, int axis, std::size_t begin, std::size_t end);

// ---- reductions (axes empty = all axes) -------------------------------------------------------
template <class T> Tensor<T> sum(const Tensor<T>& x, const axes_t& axes = {}, bool keepdims = false);
template <class T> Tensor<T> mean(const Tensor<T>& x, const axes_t& axes = {}, bool keepdims = false);
/// The gradient goes to the first maximal element of each reduced group.
template <class T> Tensor<T> max(const Tensor<T>& x, const axes_t& axes = {}, bool keepdims = false);

// ---- losses: per-sample values, reduced over the last axis as Keras's loss functions do ------
template <class T> Tensor<T> mean_squared_error(const Tensor<T>& y_true, const Tensor<T>& y_pred);
template <class T> Tensor<T> mean_absolute_error(const Tensor<T>& y_true, const Tensor<T>& y_pred);
/// From probabilities: clipped to [eps, 1-eps] with Keras's epsilon 1e-7; from logits: the
/// stable form max(z,0) - z*y + log(1+exp(-|z|)).
template <class T>
Tensor<T> binary_crossentropy(const Tensor<T>& y_true, const Tensor<T>& y_pred, bool from_logits = false);
template <class T>
Tensor<T> categorical_crossentropy(const Tensor<T>& y_true, const Tensor<T>& y_pred, bool from_logits = false,
                                   int axis = -1);
/// y_true holds class indices (stored as T), shape y_pred's without the last axis (or with a 1).
template <class T>
Tensor<T> sparse_categorical_crossentropy(const Tensor<T>& y_true, const Tensor<T>& y_pred,
                                          bool from_logits = false);
template <class T> Tensor<T> huber(const Tensor<T>& y_true, const Tensor<T>& y_pred, T delta = T(1));
template <class T> Tensor<T> kl_divergence(const Tensor<T>& y_true, const Tensor<T>& y_pred);

// ---- operators ------------------------------------------------------------------------------
template <class T> Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }
template <class T> Tensor<T> operator/(const Tensor<T>& a, const Tensor<T>& b) { return div(a, b); }
template <class T> Tensor<T> operator-(const Tensor<T>& a) { return neg(a); }
template <class T> Tensor<T> operator+(const Tensor<T>& a, T s) { return add_scalar(a, s); }
template <class T> Tensor<T> operator*(const Tensor<T>& a, T s) { return mul_scalar(a, s); }
template <class T> Tensor<T> operator*(T s, const Tensor<T>& a) { return mul_scalar(a, s); }

} // namespace xtape
