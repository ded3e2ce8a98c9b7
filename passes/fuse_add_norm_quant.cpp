// fuse-add-norm-quant: the residual add and the norm that reads it become one op with two results, so the
// residual stream is read once and the quantized activation is produced while the sum is in registers.
//
//   %x1 = add(%x0, %delta)                          %x1, %h = add_rmsnorm_quant(%x0, %delta, @w) {eps}
//   %h  = rmsnorm_quant(%x1, @w) {eps}      ->               : f32[T, D], q8[T, D]
//
// %x1 stays a result because the next residual add reads it too. Legal because the fused op computes the
// same sum and then the same norm and rounding on it. Run after fuse-norm-quant (which makes rmsnorm_quant)
// and before dce.
#include "passes/pass_manager.h"

#include <fmt/format.h>

namespace bitnet::passes {

bool run_fuse_add_norm_quant(ir::Module& m, PassContext& context) {
  std::vector<bool> drop(m.nodes.size(), false);
  size_t fused = 0;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const ir::Node& norm = m.nodes[i];
    if (norm.op != ir::Op::RmsNormQuant) continue;
    int p = m.values[norm.operands[0]].producer;
    if (p < 0 || m.nodes[p].op != ir::Op::Add || drop[p]) continue;
    ir::Node& add = m.nodes[p];
    add = ir::Node{ir::Op::AddRmsNormQuant, add.operands, norm.weights, norm.attrs, add.result, {norm.result}};
    drop[i] = true;
    ++fused;
  }
  if (!fused) return false;
  std::vector<ir::Node> kept;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    if (!drop[i]) kept.push_back(std::move(m.nodes[i]));
  }
  m.nodes = std::move(kept);
  m.renumber_producers();
  context.remarks.push_back(fmt::format("fuse-add-norm-quant: {} residual adds now also normalize and quantize", fused));
  return true;
}

}  // namespace bitnet::passes
