// What the libtorch comparison benches share. Included only by the *_torch.cpp benches, which
// CMake builds only when Debian's libtorch-dev is found (bench/CMakeLists.txt).
#pragma once

#include <torch/torch.h>

#include <sstream>
#include <string>

namespace bench {

/// The "CPU capability usage: AVX2" line of at::show_config(): which of libtorch's vectorized
/// kernel sets ran, so that a comparison says what it compared against.
inline std::string torch_cpu_capability()
{
    std::istringstream config(at::show_config());
    for (std::string line; std::getline(config, line);)
        if (line.find("CPU capability") != std::string::npos)
            return line.substr(line.find_first_not_of(" -"));
    return "CPU capability usage: unknown";
}

} // namespace bench
