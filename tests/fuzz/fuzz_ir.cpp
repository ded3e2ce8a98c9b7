// Fuzz target: the IR text parser and verifier; whatever parses must print, reparse to the same text, and
// survive the default pass pipeline with the verifier after each pass.
#include "ir/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "ir/ir.h"
#include "passes/pass_manager.h"

#include <cstdint>
#include <cstdlib>
#include <string_view>

FUZZ_ENTRY(ir) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    bitnet::ir::Module m = bitnet::ir::parse(text, "fuzz.ir");
    std::string printed = bitnet::ir::print(m);
    if (bitnet::ir::print(bitnet::ir::parse(printed, "printed.ir")) != printed) std::abort();  // round trip is the identity
    bitnet::passes::PassContext context;
    bitnet::passes::run_pipeline(m, bitnet::passes::default_pipeline("ref"), {}, context);
  } catch (const bitnet::Error&) {
  }
  return 0;
}
