// cse: common-subexpression elimination. Two nodes with the same op, operands, weights and attributes
// compute the same value when the op is pure, so every use of the later one reads the earlier one.
//   %a = rmsnorm(%x, @w) {eps = 1e-05}
//   %b = rmsnorm(%x, @w) {eps = 1e-05}     ->  uses of %b read %a; dce removes %b
// Attention is never merged: it writes the KV cache. Run canonicalize first so commutative ops match.
#include "passes/pass_manager.h"

#include <fmt/format.h>

#include <map>
#include <tuple>

namespace bitnet::passes {

bool run_cse(ir::Module& m, PassContext& context) {
  using Key = std::tuple<ir::Op, std::vector<int>, std::vector<int>, ir::Attrs>;
  std::map<Key, int> seen;
  size_t merged = 0;
  for (auto& n : m.nodes) {
    if (has_side_effects(n.op) || !n.extra_results.empty()) continue;
    Key key{n.op, n.operands, n.weights, n.attrs};
    auto [it, inserted] = seen.emplace(key, n.result);
    if (!inserted && n.result != m.output) {
      replace_all_uses(m, n.result, it->second);
      ++merged;
    }
  }
  if (merged) context.remarks.push_back(fmt::format("cse: {} duplicate ops now reuse an earlier result", merged));
  return merged > 0;
}

}  // namespace bitnet::passes
