// The tests run as an application does: configure_process() first (framework/process.hpp), so
// products are split by xtape and results do not depend on the thread count. With
// XTAPE_TEST_NO_CONFIGURE set the process is left as it is (tests/test_process.cpp).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "framework/process.hpp"

#include <cstdlib>

int main(int argc, char** argv)
{
    if (!std::getenv("XTAPE_TEST_NO_CONFIGURE"))
        xtape::configure_process();
    return doctest::Context(argc, argv).run();
}
