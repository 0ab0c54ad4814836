// The xtape tool's command-line parser (tools/command_line.cpp, CLI11) on arbitrary arguments:
// the input is split at newlines into argv[1..]. A bad command line must end in a UsageError
// (or --help/--version text), never in another exception, a crash or a hang.
#include "fuzz/fuzz_common.hpp"
#include "tools/command_line.hpp"

#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::vector<std::string> args{ "xtape" };
    std::string current;
    for (std::size_t i = 0; i < size; ++i) {
        const char c = static_cast<char>(data[i]);
        if (c == '\n') {
            args.push_back(current);
            current.clear();
        } else {
            current += c;
        }
    }
    if (size && data[size - 1] != '\n')
        args.push_back(current);
    if (args.size() > 64)
        return 0;
    std::vector<const char*> argv;
    for (const auto& a : args)
        argv.push_back(a.c_str()); // an embedded '\0' ends the argument early, as in a real argv
    argv.push_back(nullptr);
    xtape::fuzz::expect_clean(
      [&] { xtape::cli::parse_command_line(static_cast<int>(args.size()), argv.data()); });
    return 0;
}
