#include "passes/pass_manager.h"

#include "ir/error.h"

#include <chrono>
#include <iostream>
#include <sstream>

namespace bitnet::passes {

const std::vector<PassInfo>& all_passes() {
  static const std::vector<PassInfo> table = {
#define PASS(id, name, summary) {name, summary, run_##id},
#include "passes/passes.def"
  };
  return table;
}

const PassInfo& find_pass(const std::string& name) {
  for (auto& p : all_passes()) {
    if (name == p.name) return p;
  }
  std::string known;
  for (auto& p : all_passes()) known += std::string(known.empty() ? "" : ", ") + p.name;
  fail("unknown pass '{}' (known: {})", name, known);
}

std::vector<std::string> default_pipeline(const std::string& target) {
  (void)target;  // every target starts from the same graph-level cleanup and merging
  return {"canonicalize", "cse", "merge-matmuls", "fuse-rope-kv", "fuse-glu", "fuse-norm-quant", "fuse-add-norm-quant", "dce"};
}

std::vector<std::string> parse_pipeline(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    find_pass(item);
    out.push_back(item);
  }
  return out;
}

// Attention and qkv_rope_cache write the KV cache; attend reads it, so it must not move across a write either.
bool has_side_effects(ir::Op op) { return op == ir::Op::Attention || op == ir::Op::QkvRopeCache || op == ir::Op::Attend; }

void replace_all_uses(ir::Module& m, int from, int to) {
  for (auto& n : m.nodes)
    for (int& v : n.operands)
      if (v == from) v = to;
  if (m.output == from) m.output = to;
}

std::vector<PassRun> run_pipeline(ir::Module& module, const std::vector<std::string>& pipeline,
                                  const PipelineOptions& options, PassContext& context) {
  std::ostream& out = options.print_to ? *options.print_to : std::cerr;
  std::vector<PassRun> runs;
  for (const std::string& name : pipeline) {
    const PassInfo& pass = find_pass(name);
    if (options.print_before.count(name)) out << "// -----// IR before " << name << " //----- //\n" << ir::print(module);
    size_t before = module.nodes.size();
    auto start = std::chrono::steady_clock::now();
    bool changed = pass.run(module, context);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    try {
      ir::verify(module);
    } catch (const Error& e) {
      fail("pass '{}' produced invalid IR: {}", name, e.what());
    }
    runs.push_back({name, ms, changed, before, module.nodes.size()});
    if (options.print_after_all || options.print_after.count(name)) out << "// -----// IR after " << name << " //----- //\n" << ir::print(module);
  }
  return runs;
}

}  // namespace bitnet::passes
