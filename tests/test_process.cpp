// Process-wide settings change only when the application asks (framework/process.hpp): a
// process that never calls configure_process keeps OpenBLAS's thread count and glibc's
// allocator settings through training, prediction and saving. Checked in a child run of this
// executable whose main skips configure_process (XTAPE_TEST_NO_CONFIGURE).
#include "framework/blas_setup.hpp"
#include "framework/process.hpp"
#include "framework/random.hpp"
#include "framework/sequential.hpp"
#include "keras_files.hpp"
#include "layers/dense.hpp"
#include "layers/input_layer.hpp"
#include "saving_helpers.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <malloc.h>
#include <spawn.h>
#include <sys/wait.h>

extern char** environ;
extern "C" int openblas_get_num_threads(void); // OpenBLAS's own count, not through xtape

using namespace xtape;

TEST_CASE("process: child without configure_process")
{
    if (!std::getenv("XTAPE_TEST_NO_CONFIGURE"))
        return; // run by the case below only
    const int threads_before = openblas_get_num_threads();
    set_random_seed(1);
    auto m = std::make_shared<Sequential<float>>();
    m->add(std::make_shared<InputLayer<float>>(dims_t{ 512 }));
    m->add(std::make_shared<Dense<float>>(1024, "relu")); // products above kernels::gemm's split threshold
    m->add(std::make_shared<Dense<float>>(3, "softmax"));
    m->compile("adam", "sparse_categorical_crossentropy");
    const auto x = xtape::testing::random_array({ 64, 512 }, 3);
    array_t<float> y = xt::zeros<float>({ 64 });
    m->fit(x, y, xtape::testing::quiet_fit(1));
    m->predict(x, xtape::testing::quiet_predict());
    // OpenBLAS keeps the thread count it started with (the first product did not set it to 1).
    if (openblas_get_num_threads() != threads_before)
        std::_Exit(4);
    // The allocator settings: a 16 MB block is still served by mmap (glibc's threshold: 128 KB,
    // raised by frees up to the largest block freed, here 2 MB), not from the heap as after
    // configure_process's fixed 64 MB threshold.
    const struct mallinfo2 a = mallinfo2();
    void* volatile p = std::malloc(16 << 20); // volatile: the pair is not optimized away
    const struct mallinfo2 b = mallinfo2();
    std::free(p);
    if (b.hblks != a.hblks + 1)
        std::_Exit(5);
    std::_Exit(0);
}

TEST_CASE("process: training, predicting and saving change no process-wide setting unless asked")
{
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "OPENBLAS_NUM_THREADS=", 21) != 0 && std::strncmp(*e, "MALLOC_", 7) != 0 &&
            std::strncmp(*e, "XTAPE_KEEP_MALLOC_DEFAULTS=", 27) != 0)
            env.emplace_back(*e);
    env.emplace_back("XTAPE_TEST_NO_CONFIGURE=1");
    std::vector<char*> envp;
    for (auto& s : env)
        envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe", filter = "--test-case=process: child without configure_process";
    char* argv[] = { exe.data(), filter.data(), nullptr };
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    // And the configured process (this one) has the settings configure_process promises.
    if (!std::getenv("OPENBLAS_NUM_THREADS") && !std::getenv("GOTO_NUM_THREADS"))
        CHECK(blas_threads() == 1);
}
