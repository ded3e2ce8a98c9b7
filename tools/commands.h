// The subcommands of `bitnetc`. Each file bitnetc_<name>.cpp adds one subcommand to the CLI app and returns
// the function that runs it; main dispatches and turns a bitnet::Error into one line on stderr and exit 1.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace bitnet::tools {

using Command = std::function<int()>;

Command add_inspect_command(CLI::App& app);
Command add_synth_command(CLI::App& app);
Command add_import_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
Command add_compile_command(CLI::App& app);
Command add_dump_ir_command(CLI::App& app);
Command add_opt_command(CLI::App& app);

}  // namespace bitnet::tools
