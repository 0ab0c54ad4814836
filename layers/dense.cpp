#include "layers/dense.hpp"

#include "framework/kernels/gemm.hpp"
#include "framework/ops.hpp"
#include "framework/parallel.hpp"
#include "layers/activation.hpp"
#include "layers/layer_config.hpp"

#include <vector>

namespace xtape {

namespace {

// Note [Dense relu fusion]: relu(x @ W + b) as one recorded op. The relu clamps the gemm's
// output in place (no second (batch, units) array and no second pass over fresh memory), and
// the backward masks dy by y > 0 once, into a reused per-thread buffer, before the same gemms
// as linear's backward. Gradient at y == 0 is 0, as tf.nn.relu's.
template<class T>
Tensor<T> linear_relu(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b)
{
    Tensor<T> y;
    {
        NoGradGuard no_record; // recorded below as one op
        y = linear<T>(x, w, b);
    }
    T* yp = y.mutable_value().data();
    parallel_for(y.size(), [&](std::size_t i0, std::size_t i1) {
        for (std::size_t i = i0; i < i1; ++i)
            yp[i] = yp[i] <= T(0) ? T(0) : yp[i]; // NaN stays NaN, as tf.nn.relu
    });
    std::vector<Tensor<T>> inputs{ x, w };
    if (b.defined())
        inputs.push_back(b);
    if (!should_record<T>(inputs))
        return y;
    const std::size_t k = w.shape()[0], n = w.shape()[1], m = k ? x.size() / k : 0;
    record_op<T>(
      "dense_relu",
      inputs,
      y,
      [x, w, yk = Tensor<T>(y), m, n, k](const array_t<T>& dy, const std::vector<array_t<T>*>& dx) {
          thread_local std::vector<T> masked;
          masked.resize(m * n);
          T* g = masked.data();
          const T* gp = dy.data();
          const T* out = yk.data();
          parallel_for(m * n, [&](std::size_t i0, std::size_t i1) {
              for (std::size_t i = i0; i < i1; ++i)
                  g[i] = out[i] > T(0) ? gp[i] : T(0);
          });
          if (dx[0])
              kernels::gemm<T>(false, true, m, k, n, T(1), g, w.data(), T(1), dx[0]->data());
          if (dx[1])
              kernels::gemm<T>(true, false, k, n, m, T(1), x.data(), g, T(1), dx[1]->data());
          if (dx.size() > 2 && dx[2]) {
              // db = column sums, accumulated in double in row order (thread-count independent).
              std::vector<double> acc(n, 0.0);
              for (std::size_t r = 0; r < m; ++r)
                  for (std::size_t j = 0; j < n; ++j)
                      acc[j] += g[r * n + j];
              T* db = dx[2]->data();
              for (std::size_t j = 0; j < n; ++j)
                  db[j] += static_cast<T>(acc[j]);
          }
      });
    return y;
}

} // namespace

template<class T>
Dense<T>::Dense(const DenseOptions<T>& o)
  : Layer<T>("Dense", o.name, o.trainable)
  , m_units(o.units)
  , m_activation(o.activation.empty() ? "linear" : activation_from_config(json(o.activation)))
  , m_use_bias(o.use_bias)
  , m_kernel_initializer(o.kernel_initializer ? o.kernel_initializer : get_initializer<T>("glorot_uniform"))
  , m_bias_initializer(o.bias_initializer ? o.bias_initializer : get_initializer<T>("zeros"))
  , m_kernel_regularizer(o.kernel_regularizer)
  , m_bias_regularizer(o.bias_regularizer)
  , m_kernel_constraint(o.kernel_constraint)
  , m_bias_constraint(o.bias_constraint)
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
    if (m_units <= 0)
        throw ValueError(
          "Received an invalid value for `units`, expected a positive integer. Received: units=" +
          std::to_string(m_units));
    this->set_activity_regularizer(o.activity_regularizer);
}

template<class T>
Dense<T>::Dense(long units, const std::string& activation, bool use_bias, const std::string& name)
  : Dense([&] {
      DenseOptions<T> o;
      o.units = units;
      o.activation = activation;
      o.use_bias = use_bias;
      o.name = name;
      return o;
  }())
{
    this->set_supports_masking(true); // as Keras's (Note [Masks across layers])
}

template<class T>
std::shared_ptr<Dense<T>> Dense<T>::from_config(const json& config)
{
    const LayerArgs a = layer_args_from_config(config);
    DenseOptions<T> o;
    const json units = config_first(config, { "units", "output_dim" });
    if (!units.is_number_integer())
        throw ValueError(
          "Received an invalid value for `units`, expected a positive integer. Received: units=" +
          units.dump() + " (Dense config " + config.dump() + ")");
    o.units = units.get<long>();
    o.activation = activation_from_config(config.contains("activation") ? config["activation"] : json());
    o.use_bias =
      config.contains("use_bias") ? config_bool(config, "use_bias", true) : config_bool(config, "bias", true);
    const json kinit = config_first(config, { "kernel_initializer", "init" });
    if (!kinit.is_null())
        o.kernel_initializer = get_initializer<T>(kinit);
    const json binit = config_first(config, { "bias_initializer" });
    if (!binit.is_null())
        o.bias_initializer = get_initializer<T>(binit);
    o.kernel_regularizer =
      get_regularizer<T>(config_first(config, { "kernel_regularizer", "W_regularizer" }));
    o.bias_regularizer = get_regularizer<T>(config_first(config, { "bias_regularizer", "b_regularizer" }));
    o.activity_regularizer = get_regularizer<T>(config_first(config, { "activity_regularizer" }));
    o.kernel_constraint = get_constraint<T>(config_first(config, { "kernel_constraint", "W_constraint" }));
    o.bias_constraint = get_constraint<T>(config_first(config, { "bias_constraint", "b_constraint" }));
    o.name = a.name;
    o.trainable = a.trainable;
    return std::make_shared<Dense<T>>(o);
}

template<class T>
json Dense<T>::get_config() const
{
    json c = Layer<T>::get_config();
    c["units"] = m_units;
    c["activation"] = m_activation;
    c["use_bias"] = m_use_bias;
    c["kernel_initializer"] = serialize<T>(m_kernel_initializer);
    c["bias_initializer"] = serialize<T>(m_bias_initializer);
    c["kernel_regularizer"] = serialize<T>(m_kernel_regularizer);
    c["bias_regularizer"] = serialize<T>(m_bias_regularizer);
    c["kernel_constraint"] = serialize<T>(m_kernel_constraint);
    c["bias_constraint"] = serialize<T>(m_bias_constraint);
    if (this->activity_regularizer())
        c["activity_regularizer"] = serialize<T>(this->activity_regularizer());
    return c;
}

template<class T>
dims_t Dense<T>::compute_output_shape(const dims_t& s) const
{
    if (s.empty())
        throw ShapeError(
          "Input 0 of layer \"" + this->name() +
          "\" is incompatible with the layer: expected min_ndim=2, found ndim=0. Full shape received: ()");
    dims_t out = s;
    out.back() = m_units;
    return out;
}

template<class T>
const Variable<T>& Dense<T>::kernel() const
{
    if (!this->built())
        throw RuntimeError("layer \"" + this->name() +
                           "\": You must build the layer before accessing `kernel`.");
    return m_kernel;
}

template<class T>
const Variable<T>& Dense<T>::bias() const
{
    if (!this->built() || !m_use_bias)
        throw RuntimeError("layer \"" + this->name() + "\": " +
                           (m_use_bias ? "You must build the layer before accessing `bias`."
                                       : "the layer has no bias (use_bias=False)."));
    return m_bias;
}

template<class T>
void Dense<T>::build(const dims_t& input_shape)
{
    if (input_shape.size() < 2)
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected "
                         "min_ndim=2, found ndim=" +
                         std::to_string(input_shape.size()) +
                         ". Full shape received: " + dims_str(input_shape));
    const long in = input_shape.back();
    if (in <= 0)
        throw ValueError("layer \"" + this->name() +
                         "\": the last dimension of the inputs to a Dense layer should "
                         "be defined. Found None. Full input shape received: " +
                         dims_str(input_shape));
    const auto n_in = static_cast<std::size_t>(in), n_out = static_cast<std::size_t>(m_units);
    m_kernel = this->add_weight(
      "kernel", { n_in, n_out }, m_kernel_initializer, m_kernel_regularizer, m_kernel_constraint);
    if (m_use_bias)
        m_bias =
          this->add_weight("bias", { n_out }, m_bias_initializer, m_bias_regularizer, m_bias_constraint);
}

template<class T>
void Dense<T>::check_input(const shape_t& x) const
{
    if (x.size() < 2)
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected "
                         "min_ndim=2, found ndim=" +
                         std::to_string(x.size()) + ". Full shape received: " + shape_str(x));
    const std::size_t in = m_kernel.shape()[0];
    if (x.back() != in)
        throw ShapeError("Input 0 of layer \"" + this->name() +
                         "\" is incompatible with the layer: expected axis -1 "
                         "of input shape to have value " +
                         std::to_string(in) + ", but received input with shape " + shape_str(x));
}

template<class T>
Tensor<T> Dense<T>::call(const Tensor<T>& x, bool, const Tensor<T>&)
{
    const Tensor<T> b = m_use_bias ? m_bias.tensor() : Tensor<T>();
    if (m_activation == "relu")
        return linear_relu<T>(x, m_kernel, b);
    Tensor<T> y = linear<T>(x, m_kernel, b);
    return m_activation == "linear" ? y : xtape::activation<T>(m_activation, y);
}

template class Dense<float>;
template class Dense<double>;

} // namespace xtape
