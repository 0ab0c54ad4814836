// Seeds for fuzz_model_config: writes the model_config attribute of each Keras HDF5 file given
// to OUTDIR/<n>.json (files without one are skipped). Run by scripts/fuzz.sh.
#include "framework/io/hdf5.hpp"

#include <fstream>
#include <iostream>

int main(int argc, char** argv)
{
    if (argc < 3) {
        std::cerr << "usage: extract_configs OUTDIR FILE.h5...\n";
        return 2;
    }
    int written = 0;
    for (int i = 2; i < argc; ++i) {
        try {
            auto root = xtape::io::H5File::open_read(argv[i]).root();
            if (!root.has_attribute("model_config"))
                continue;
            std::ofstream(std::string(argv[1]) + "/" + std::to_string(written++) + ".json")
              << root.read_string_attribute("model_config");
        } catch (const std::exception& e) {
            std::cerr << "extract_configs: skipped " << e.what() << "\n";
        }
    }
    std::cout << "extract_configs: " << written << " configs\n";
    return 0;
}
