// Trains a tiny model for a few steps through xtape's public headers and library, saves it as a
// Keras file and loads it back (so HDF5 and JSON come through the package's dependencies).
// argv[1]: where to save the model.
#include "framework/process.hpp"
#include "framework/sequential.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving/keras_h5.hpp"

#include <iostream>

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    using namespace xtape;
    if (argc != 2) {
        std::cerr << "usage: consumer MODEL.h5\n";
        return 2;
    }
    Sequential<float> model({ Input<float>({ 3 }), std::make_shared<Dense<float>>(2) });
    model.compile("sgd", "mse");
    array_t<float> x = xt::ones<float>({ 4, 3 });
    array_t<float> y = xt::zeros<float>({ 4, 2 });
    FitOptions<float> fo;
    fo.epochs = 3;
    fo.verbose = 0;
    model.fit(x, y, fo);
    save_model(model, argv[1]);
    auto back = load_model<float>(argv[1]);
    EvaluateOptions<float> eo;
    eo.verbose = 0;
    const Logs logs = back->evaluate(x, y, eo);
    std::cout << "loss after 3 epochs " << logs.at("loss") << ", reloaded from " << argv[1] << "\n";
    return back->optimizer()->iterations() == 3 && logs.at("loss") >= 0 ? 0 : 1;
}
