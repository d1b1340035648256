// xgrad-lab: shared declarations of the lab's subcommands (one source file per subcommand family).
#pragma once
#include <string>
#include <vector>

namespace lab {

/// Arguments after the subcommand name.
using Args = std::vector<std::string>;

/// One subcommand: `xgrad-lab <name> <args...>`.
struct Subcommand {
    const char* name;
    const char* usage;  ///< arguments, e.g. "<act,...> [--range a,b] [--out file]"
    const char* help;   ///< one line
    int (*run)(const Args& args);
};

// Subcommands, each in its own file.
int run_list(const Args& args);   // xgrad_lab.cpp
int run_check(const Args& args);  // xgrad_lab.cpp
int run_plot(const Args& args);   // xgrad_lab.cpp
int run_bench(const Args& args);  // lab_bench.cpp

/// Splits "a,b,c" at commas.
std::vector<std::string> split_list(const std::string& s);
/// The value after `--flag` in args, or `fallback` when absent.
std::string option(const Args& args, const std::string& flag, const std::string& fallback = "");
/// True when `--flag` is present.
bool has_flag(const Args& args, const std::string& flag);
/// Positional arguments (not flags or their values).
std::vector<std::string> positional(const Args& args);

}  // namespace lab
