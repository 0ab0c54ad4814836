// A 2-layer MLP trained with an explicit GradientTape loop and plain SGD: the smallest
// complete use of the engine, without layers, models or optimizers.
//
// Data: points in the plane, labelled by which of three rings they lie in.
#include "framework/ops.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/tape.hpp"

#include <cmath>
#include <cstdio>
#include <random>

using namespace xtape;

int main()
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    const std::size_t n = 600, hidden = 32, classes = 3;
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    array_t<float> xs = array_t<float>::from_shape({ n, 2 });
    array_t<float> ys = array_t<float>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i) {
        const float a = u(gen) * 3.1416f, r = 0.5f * static_cast<float>(i % classes) + 0.3f + 0.1f * u(gen);
        xs(i, 0) = r * std::cos(a);
        xs(i, 1) = r * std::sin(a);
        ys(i) = static_cast<float>(i % classes);
    }
    Tensor<float> x(xs), y(ys);

    std::normal_distribution<float> g(0.f, 0.5f);
    auto randn = [&](shape_t s) {
        array_t<float> a = array_t<float>::from_shape(s);
        for (auto& v : a)
            v = g(gen);
        return a;
    };
    Variable<float> w1("w1", randn({ 2, hidden })), b1("b1", xt::zeros<float>({ hidden }));
    Variable<float> w2("w2", randn({ hidden, classes })), b2("b2", xt::zeros<float>({ classes }));
    std::vector<Variable<float>> params{ w1, b1, w2, b2 };

    const float lr = 0.5f;
    float first = 0, last = 0;
    for (int step = 0; step <= 300; ++step) {
        GradientTape<float> tape;
        Tensor<float> h = relu(linear<float>(x, w1, b1));
        Tensor<float> logits = linear<float>(h, w2, b2);
        Tensor<float> loss = mean(sparse_categorical_crossentropy(y, logits, /*from_logits=*/true));
        std::vector<Tensor<float>> grads = tape.gradient(loss, params);
        for (std::size_t i = 0; i < params.size(); ++i)
            params[i].mutable_value() -= lr * grads[i].value();
        if (step == 0)
            first = loss.item();
        last = loss.item();
        if (step % 50 == 0)
            std::printf("step %3d  loss %.4f\n", step, static_cast<double>(loss.item()));
    }
    std::printf("loss fell from %.4f to %.4f\n", static_cast<double>(first), static_cast<double>(last));
    return last < first ? 0 : 1;
}
