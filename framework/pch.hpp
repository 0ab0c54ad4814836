// The precompiled header of the xtape library's own sources: third-party headers that most
// translation units parse (xtensor alone took ~3 s of every file's compile). Only headers that
// do not change with xtape's code belong here, so editing xtape does not rebuild it. Never
// included by hand; CMake prepends it (target_precompile_headers in CMakeLists.txt).
#pragma once

#include <nlohmann/json.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
