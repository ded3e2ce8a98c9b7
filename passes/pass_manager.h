// The pass manager: runs a named pipeline of graph-to-graph passes over a module, verifies the IR after
// every pass, prints it before/after the passes asked for, and times each pass.
#pragma once

#include "ir/ir.h"

#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace bitnet::passes {

struct PassContext {
  std::vector<std::string> remarks;  // what a pass did, for --stats and debugging
};

struct PassInfo {
  const char* name;
  const char* summary;
  bool (*run)(ir::Module&, PassContext&);
};

const std::vector<PassInfo>& all_passes();
// Throws bitnet::Error naming the pass and listing the known ones.
const PassInfo& find_pass(const std::string& name);
// The pipeline `bitnetc compile` runs for a target.
std::vector<std::string> default_pipeline(const std::string& target);
// "a,b,c" → names (each checked); "" → none.
std::vector<std::string> parse_pipeline(const std::string& list);

struct PipelineOptions {
  std::set<std::string> print_before, print_after;  // pass names
  bool print_after_all = false;
  std::ostream* print_to = nullptr;  // where --print-* go (stderr when null)
};

struct PassRun {
  std::string name;
  double ms;
  bool changed;
  size_t ops_before, ops_after;
};

std::vector<PassRun> run_pipeline(ir::Module& module, const std::vector<std::string>& pipeline,
                                  const PipelineOptions& options, PassContext& context);

// Shared rewriting helpers.
void replace_all_uses(ir::Module& m, int from, int to);
bool has_side_effects(ir::Op op);

#define PASS(id, name, summary) bool run_##id(ir::Module& module, PassContext& context);
#include "passes/passes.def"

}  // namespace bitnet::passes
