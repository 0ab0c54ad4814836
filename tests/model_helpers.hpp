// Small layers, an initializer, a regularizer and plain SGD for the model, callback and
// training-loop tests. They use only framework/, so the tests of the training loop do not
// depend on layers/ or optim/.
#pragma once

#include "framework/initializer.hpp"
#include "framework/layer.hpp"
#include "framework/ops.hpp"
#include "framework/optimizer.hpp"
#include "framework/random.hpp"

#include <random>

namespace xtape::testing {

/// Uniform in [-limit, limit) from a seed fixed at construction (drawn from the global seed).
template <class T>
class SeededUniform : public Initializer<T> {
public:
    explicit SeededUniform(double limit = 0.3)
        : m_limit(limit)
        , m_seed(next_seed())
    {
    }
    array_t<T> operator()(const shape_t& shape) const override
    {
        std::mt19937_64 gen(m_seed);
        std::uniform_real_distribution<double> u(-m_limit, m_limit);
        array_t<T> a = array_t<T>::from_shape(shape);
        for (auto& v : a)
            v = static_cast<T>(u(gen));
        return a;
    }
    std::string class_name() const override { return "SeededUniform"; }
    json get_config() const override { return json{ { "limit", m_limit } }; }

private:
    double m_limit;
    std::uint64_t m_seed;
};

template <class T>
class Zeros : public Initializer<T> {
public:
    array_t<T> operator()(const shape_t& shape) const override { return xt::zeros<T>(shape); }
    std::string class_name() const override { return "Zeros"; }
    json get_config() const override { return json::object(); }
};

/// l * sum(w^2), as Keras's L2.
template <class T>
class L2 : public Regularizer<T> {
public:
    explicit L2(double l)
        : m_l(l)
    {
    }
    Tensor<T> operator()(const Tensor<T>& w) const override { return mul_scalar(sum(square(w)), static_cast<T>(m_l)); }
    std::string class_name() const override { return "L2"; }
    json get_config() const override { return json{ { "l2", m_l } }; }

private:
    double m_l;
};

/// A Dense-like layer: activation(x @ kernel + bias), class name "Dense".
template <class T>
class TDense : public Layer<T> {
public:
    explicit TDense(long units, std::string activation = "linear", RegularizerPtr<T> kernel_regularizer = nullptr,
                    std::string name = "")
        : Layer<T>("Dense", std::move(name))
        , m_units(units)
        , m_activation(std::move(activation))
        , m_reg(std::move(kernel_regularizer))
        , m_init(std::make_shared<SeededUniform<T>>())
    {
    }
    dims_t compute_output_shape(const dims_t& s) const override
    {
        dims_t o = s;
        o.back() = m_units;
        return o;
    }
    json get_config() const override
    {
        json c = Layer<T>::get_config();
        c["units"] = m_units;
        c["activation"] = m_activation;
        return c;
    }
    const Variable<T>& kernel() const { return m_kernel; }

protected:
    void build(const dims_t& s) override
    {
        m_kernel = this->add_weight("kernel", { static_cast<std::size_t>(s.back()), static_cast<std::size_t>(m_units) },
                                    m_init, m_reg);
        m_bias = this->add_weight("bias", { static_cast<std::size_t>(m_units) }, std::make_shared<Zeros<T>>());
    }
    Tensor<T> call(const Tensor<T>& x, bool, const Tensor<T>&) override
    {
        Tensor<T> y = linear(x, m_kernel.tensor(), m_bias.tensor());
        return m_activation == "linear" ? y : activation<T>(m_activation, y);
    }

private:
    long m_units;
    std::string m_activation;
    RegularizerPtr<T> m_reg;
    InitializerPtr<T> m_init;
    Variable<T> m_kernel, m_bias;
};

/// A layer with a non-trainable counter (how many training calls it saw), as BN's moving stats.
template <class T>
class CountCalls : public Layer<T> {
public:
    CountCalls()
        : Layer<T>("CountCalls")
    {
    }
    const Variable<T>& count() const { return m_count; }

protected:
    void build(const dims_t&) override { m_count = this->add_weight("count", { 1 }, std::make_shared<Zeros<T>>(), nullptr, nullptr, false); }
    Tensor<T> call(const Tensor<T>& x, bool training, const Tensor<T>&) override
    {
        if (training)
            m_count.mutable_value()(0) += 1;
        return x;
    }
    void check_input(const shape_t&) const override {}

private:
    Variable<T> m_count;
};

/// Stands in for layers/'s InputLayer: class name "InputLayer" and a batch_shape config.
template <class T>
class FakeInputLayer : public Layer<T> {
public:
    explicit FakeInputLayer(dims_t batch_shape, std::string name = "")
        : Layer<T>("InputLayer", std::move(name))
        , m_shape(std::move(batch_shape))
    {
    }
    json get_config() const override
    {
        json s = json::array();
        for (long d : m_shape)
            s.push_back(d < 0 ? json() : json(d));
        return json{ { "batch_shape", s }, { "dtype", "float32" }, { "sparse", false }, { "name", this->name() } };
    }

protected:
    Tensor<T> call(const Tensor<T>& x, bool, const Tensor<T>&) override { return x; }

private:
    dims_t m_shape;
};

/// Plain SGD: w -= lr * g.
template <class T>
class PlainSGD : public Optimizer<T> {
public:
    explicit PlainSGD(double lr = 0.1)
        : m_lr(lr)
    {
    }
    void apply_gradients(const std::vector<Tensor<T>>& grads, const std::vector<Variable<T>>& vars) override
    {
        for (std::size_t i = 0; i < vars.size(); ++i) {
            Variable<T> v = vars[i];
            T* w = v.mutable_value().data();
            const T* g = grads[i].data();
            for (std::size_t k = 0; k < v.size(); ++k)
                w[k] -= static_cast<T>(m_lr) * g[k];
            v.apply_constraint();
        }
        ++m_iterations;
    }
    double learning_rate() const override { return m_lr; }
    void set_learning_rate(double lr) override { m_lr = lr; }
    std::int64_t iterations() const override { return m_iterations; }
    std::string class_name() const override { return "SGD"; }
    json get_config() const override { return json{ { "learning_rate", m_lr } }; }
    std::vector<Variable<T>> variables() const override { return {}; }
    void set_state(const std::vector<Variable<T>>&, const std::vector<array_t<T>>&) override {}

private:
    double m_lr;
    std::int64_t m_iterations = 0;
};

/// A fixed classification problem: n points in `features` dimensions, `classes` Gaussian blobs.
template <class T>
void blobs(std::size_t n, std::size_t features, std::size_t classes, unsigned seed, array_t<T>& x, array_t<T>& y)
{
    std::mt19937 gen(seed);
    std::normal_distribution<double> g(0.0, 0.5);
    x = array_t<T>::from_shape({ n, features });
    y = array_t<T>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = i % classes;
        y(i) = static_cast<T>(c);
        for (std::size_t j = 0; j < features; ++j)
            x(i, j) = static_cast<T>(g(gen) + (j % classes == c ? 1.5 : 0.0));
    }
}

} // namespace xtape::testing
