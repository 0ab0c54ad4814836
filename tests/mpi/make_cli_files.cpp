// Writes MODEL.h5 (Dense -> BatchNormalization(synchronized=True) -> Dense softmax, compiled) and
// DATA.h5 (datasets x, y) for check_cli.cmake, which trains it with `mpirun -np 2 xtape fit`.
#include "framework/io/hdf5.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "layers/batch_normalization.hpp"
#include "layers/dense.hpp"
#include "saving/keras_h5.hpp"

#include <iostream>

using namespace xtape;

int main(int argc, char** argv)
{
    xtape::configure_process(); // framework/process.hpp: allocator and OpenBLAS settings for training
    if (argc != 3) {
        std::cerr << "usage: make_cli_files MODEL.h5 DATA.h5\n";
        return 2;
    }
    set_random_seed(3);
    auto m = std::make_shared<Sequential<float>>("cli_dp");
    m->add(std::make_shared<Dense<float>>(16, "relu", true, "dense"));
    BatchNormalizationOptions<float> bn;
    bn.synchronized = true;
    bn.name = "bn";
    m->add(std::make_shared<BatchNormalization<float>>(bn));
    m->add(std::make_shared<Dense<float>>(3, "softmax", true, "out"));
    m->build({ -1, 8 });
    m->compile("adam", "sparse_categorical_crossentropy", { "accuracy" });
    save_model(*m, argv[1]);
    const std::size_t n = 203; // global batches of 32 with a last one of 11
    array_t<float> x = array_t<float>::from_shape({ n, std::size_t(8) });
    array_t<float> y = array_t<float>::from_shape({ n });
    for (std::size_t i = 0; i < n; ++i) {
        y(i) = static_cast<float>(i % 3);
        for (std::size_t j = 0; j < 8; ++j)
            x(i, j) = static_cast<float>(std::sin(double(i * 8 + j)) + (j == i % 3 ? 1.0 : 0.0));
    }
    io::H5File f = io::H5File::create(argv[2]);
    f.root().write_dataset<float>("x", x);
    f.root().write_dataset<float>("y", y);
    return 0;
}
