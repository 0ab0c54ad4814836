// Trains one step of a tiny model through the installed headers and library.
#include "framework/sequential.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"

#include <iostream>

int main()
{
    using namespace xtape;
    Sequential<float> model({ Input<float>({ 3 }), std::make_shared<Dense<float>>(2) });
    model.compile("sgd", "mse");
    array_t<float> x = xt::ones<float>({ 4, 3 });
    array_t<float> y = xt::zeros<float>({ 4, 2 });
    Logs logs = model.train_on_batch(x, y);
    std::cout << "loss " << logs.at("loss") << "\n";
    return logs.at("loss") >= 0 ? 0 : 1;
}
