// canonicalize: puts the graph in one normal form so later passes match fewer spellings of the same thing.
//   %c = add(%b, %a)           ->  %c = add(%a, %b)      (commutative operands ordered by definition)
//   %s = slice(%x) {0, all}    ->  uses of %s read %x     (a slice of every column is the value itself)
// Legal because add and mul are commutative in IEEE arithmetic and a full slice copies its input. It pays
// by letting cse see add(a, b) and add(b, a) as one op. Needs nothing before it.
#include "passes/pass_manager.h"

#include <algorithm>

namespace bitnet::passes {

bool run_canonicalize(ir::Module& m, PassContext& context) {
  bool changed = false;
  for (auto& n : m.nodes) {
    if ((n.op == ir::Op::Add || n.op == ir::Op::Mul) && n.operands[0] > n.operands[1]) {
      std::swap(n.operands[0], n.operands[1]);
      changed = true;
    }
  }
  for (auto& n : m.nodes) {
    if (n.op != ir::Op::Slice) continue;
    const auto& input = m.values[n.operands[0]].type;
    if (m.attr_int(n, "begin") == 0 && m.attr_int(n, "size") == input.dims[1] && n.result != m.output) {
      replace_all_uses(m, n.result, n.operands[0]);
      context.remarks.push_back("canonicalize: a full-width slice was replaced by its input");
      changed = true;
    }
  }
  return changed;
}

}  // namespace bitnet::passes
