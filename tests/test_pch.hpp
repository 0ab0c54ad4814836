// The precompiled header of the test executables (Note [Test executables] in CMakeLists.txt):
// the third-party headers every test file parses. Only headers that do not change with xtape's
// own code belong here, so editing xtape does not rebuild the precompiled header.
#pragma once

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xio.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>
