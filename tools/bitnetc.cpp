// bitnetc: the compiler's command line (compile, dump-ir, inspect, tokenize, synth, import).
#include "ir/error.h"
#include "tools/commands.h"

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  CLI::App app{"bitnetc: compile BitNet b1.58 GGUF models into bundles"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, bitnet::tools::Command>> commands;
  auto add = [&](bitnet::tools::Command (*adder)(CLI::App&)) {
    size_t before = app.get_subcommands({}).size();
    auto command = adder(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(command));
  };
  add(bitnet::tools::add_compile_command);
  add(bitnet::tools::add_dump_ir_command);
  add(bitnet::tools::add_opt_command);
  add(bitnet::tools::add_inspect_command);
  add(bitnet::tools::add_tokenize_command);
  add(bitnet::tools::add_synth_command);
  add(bitnet::tools::add_import_command);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : commands) {
      if (sub->parsed()) return run();
    }
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "bitnetc: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnetc: internal error: %s\n", e.what());
    return 2;
  }
  return 1;
}
