// Temporary: subcommands not yet wired.
#include "ir/error.h"
#include "tools/commands.h"
namespace bitnet::tools {
Command add_tokenize_command(CLI::App& app) { app.add_subcommand("tokenize", "tokenize text (not yet)"); return [] { fail("tokenize: not built yet"); return 1; }; }
Command add_compile_command(CLI::App& app) { app.add_subcommand("compile", "compile (not yet)"); return [] { fail("compile: not built yet"); return 1; }; }
Command add_dump_ir_command(CLI::App& app) { app.add_subcommand("dump-ir", "dump IR (not yet)"); return [] { fail("dump-ir: not built yet"); return 1; }; }
}
