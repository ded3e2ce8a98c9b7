// dce: dead-code elimination. Walks the nodes backwards from the function's output and keeps a node only if
// its result is read by a kept node or the op has a side effect (attention writes the KV cache that later
// steps read). Then drops values and weights nothing refers to, so the bundle carries no dead bytes.
//   %x = relu2(%a)     (never read)   ->  (removed)
// Legal because pure ops have no effect besides their result. Run it last, after rewrites leave orphans.
#include "passes/pass_manager.h"

#include <fmt/format.h>

namespace bitnet::passes {

bool run_dce(ir::Module& m, PassContext& context) {
  std::vector<bool> live(m.values.size(), false);
  if (m.output >= 0) live[m.output] = true;
  std::vector<bool> keep(m.nodes.size(), false);
  for (size_t i = m.nodes.size(); i-- > 0;) {
    const ir::Node& n = m.nodes[i];
    bool any_live = false;
    n.for_each_result([&](int r) { any_live = any_live || live[r]; });
    if (!any_live && !has_side_effects(n.op)) continue;
    keep[i] = true;
    for (int v : n.operands) live[v] = true;
  }
  std::vector<ir::Node> kept;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(m.nodes[i]));
  }
  size_t removed = m.nodes.size() - kept.size();
  m.nodes = std::move(kept);
  m.compact_values();
  size_t weights_removed = m.prune_weights();
  if (removed || weights_removed) context.remarks.push_back(fmt::format("dce: removed {} ops and {} weights", removed, weights_removed));
  return removed > 0 || weights_removed > 0;
}

}  // namespace bitnet::passes
