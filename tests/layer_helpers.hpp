// Shared checks for layer tests: a gradient check through a layer's call and a config round trip
// through the registry. Kept apart from helpers.hpp because they need the layer registry.
#pragma once

#include "framework/layer.hpp"
#include "layers/registry.hpp"
#include "tests/helpers.hpp"

namespace xtape::testing {

/// Gradient check through a layer with respect to its input and every trainable weight. The
/// loss is a fixed weighting of the output (so every output element's gradient is checked, not
/// only their sum) plus, when asked, the layer's losses().
inline void check_layer_gradients(Layer<double>& layer, const Tensor<double>& x, bool with_losses = false,
                                  bool training = false, const Tensor<double>& mask = Tensor<double>(),
                                  GradcheckOptions opt = {})
{
    const Tensor<double> y0 = layer(x, training, mask); // builds
    const Tensor<double> w = random_tensor(y0.shape(), 777, 0.5, 1.5);
    std::vector<Tensor<double>> params{ x };
    std::vector<std::string> names{ "input" };
    for (const auto& v : layer.trainable_weights()) {
        params.push_back(v.tensor());
        names.push_back(v.name());
    }
    auto f = [&]() {
        Tensor<double> loss = sum(mul(layer(x, training, mask), w));
        if (with_losses)
            for (const auto& l : layer.losses())
                loss = add(loss, sum(l));
        return loss;
    };
    GradcheckResult r = gradcheck(f, params, names, opt);
    INFO(layer.name() << "\n" << r.report());
    CHECK(r.passed);
    CHECK(r.entries.size() == params.size());
    for (const auto& e : r.entries)
        CHECK(e.checked == shape_size(e.shape));
}

/// get_config -> from_config (through the registry) -> get_config gives the same config, class
/// and name.
template <class T>
void check_round_trip(const Layer<T>& layer)
{
    const json c1 = layer.get_config();
    LayerPtr<T> copy = layer_from_config<T>(layer.class_name(), c1);
    const json c2 = copy->get_config();
    CAPTURE(c1.dump());
    CAPTURE(c2.dump());
    CHECK(c1 == c2);
    CHECK(copy->class_name() == layer.class_name());
    CHECK(copy->name() == layer.name());
}

} // namespace xtape::testing
