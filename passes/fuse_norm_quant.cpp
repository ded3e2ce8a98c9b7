// fuse-norm-quant: an RMSNorm whose only readers are BitLinears with int8_token activations quantizes its
// own output, so the BitLinears receive int8 rows (q8) instead of floats they would quantize themselves.
//
//   %h = rmsnorm(%x, @w) {eps}                      %h = rmsnorm_quant(%x, @w) {eps} : q8[T, K]
//   %y = bitlinear(%h, @m) {int8_token}     ->      %y = bitlinear(%h, @m) {int8_token}
//
// Applies to the pre-attention and pre-FFN norms (read by qkv_rope_cache and bitlinear_glu) and to the two
// sub-norms before the output and down projections. Legal because quantization is per row and the same for
// every reader; the arithmetic is unchanged (the same floats are rounded the same way). It pays by writing
// a quarter of the bytes and by quantizing once per row rather than once per reader. The final norm, read by
// the float LM head, is left alone. Run after the matmul fusions so their readers are final.
#include "passes/pass_manager.h"

#include <fmt/format.h>

#include <algorithm>

namespace bitnet::passes {
namespace {

bool takes_quantized_input(const ir::Module& m, const ir::Node& n, int value) {
  bool bitlinear_family = n.op == ir::Op::BitLinear || n.op == ir::Op::BitLinearGlu || n.op == ir::Op::QkvRopeCache;
  if (!bitlinear_family || m.attr_string(n, "act_quant") != "int8_token") return false;
  for (size_t i = 1; i < n.operands.size(); ++i) {
    if (n.operands[i] == value) return false;  // read as something other than the matmul input
  }
  return n.operands[0] == value;
}

}  // namespace

bool run_fuse_norm_quant(ir::Module& m, PassContext& context) {
  size_t fused = 0;
  for (auto& norm : m.nodes) {
    if (norm.op != ir::Op::RmsNorm || norm.result == m.output) continue;
    bool all_quantized = true, any = false;
    for (auto& user : m.nodes) {
      bool reads = std::find(user.operands.begin(), user.operands.end(), norm.result) != user.operands.end();
      if (!reads) continue;
      any = true;
      all_quantized = all_quantized && takes_quantized_input(m, user, norm.result);
    }
    if (!any || !all_quantized) continue;
    norm.op = ir::Op::RmsNormQuant;
    m.values[norm.result].type.dtype = ir::DType::Q8;
    ++fused;
  }
  if (fused) context.remarks.push_back(fmt::format("fuse-norm-quant: {} norms now hand int8 rows to their BitLinears", fused));
  return fused > 0;
}

}  // namespace bitnet::passes
