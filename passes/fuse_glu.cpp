// fuse-glu: the gated FFN's element-wise tail moves into the gate/up matmul's epilogue.
//
//   %gu = bitlinear(%h, @gate_up)                 (2F columns, from merge-matmuls)
//   %g  = slice(%gu) {begin = 0, size = F}
//   %u  = slice(%gu) {begin = F, size = F}        ->   %m = bitlinear_glu(%h, @gate_up) {act = "relu2"}
//   %a  = relu2(%g)            (or silu)
//   %m  = mul(%a, %u)
//
// Legal when the slices, the activation and the product have no other users: the fused op computes the
// same floats in the same order (act(gate) * up per element). It pays by never writing the [T, 2F] product
// and its two [T, F] intermediates to memory: a backend applies act and the product to each pair of output
// rows while they are in registers. Run after merge-matmuls (which makes %gu) and before dce.
#include "passes/pass_manager.h"

#include <fmt/format.h>

namespace bitnet::passes {
namespace {

std::vector<int> use_counts(const ir::Module& m) {
  std::vector<int> uses(m.values.size(), 0);
  for (auto& n : m.nodes)
    for (int v : n.operands) ++uses[v];
  if (m.output >= 0) ++uses[m.output];
  return uses;
}

const ir::Node* producer(const ir::Module& m, int value) {
  int p = m.values[value].producer;
  return p < 0 ? nullptr : &m.nodes[p];
}

}  // namespace

bool run_fuse_glu(ir::Module& m, PassContext& context) {
  auto uses = use_counts(m);
  size_t fused = 0;
  for (auto& node : m.nodes) {
    if (node.op != ir::Op::Mul) continue;
    for (int side = 0; side < 2; ++side) {
      const ir::Node* act = producer(m, node.operands[side]);
      const ir::Node* up = producer(m, node.operands[1 - side]);
      if (!act || !up || (act->op != ir::Op::Relu2 && act->op != ir::Op::Silu) || up->op != ir::Op::Slice) continue;
      const ir::Node* gate = producer(m, act->operands[0]);
      if (!gate || gate->op != ir::Op::Slice || gate->operands[0] != up->operands[0]) continue;
      const ir::Node* matmul = producer(m, gate->operands[0]);
      if (!matmul || matmul->op != ir::Op::BitLinear) continue;
      const int64_t F = m.values[node.result].type.dims[1];
      bool halves = m.values[matmul->result].type.dims[1] == 2 * F && m.attr_int(*gate, "begin") == 0 &&
                    m.attr_int(*up, "begin") == F && m.attr_int(*gate, "size") == F && m.attr_int(*up, "size") == F;
      bool private_chain = uses[act->result] == 1 && uses[gate->result] == 1 && uses[up->result] == 1 && uses[matmul->result] == 2;
      if (!halves || !private_chain) continue;
      ir::Node fusedNode{ir::Op::BitLinearGlu, matmul->operands, matmul->weights,
                         {{"act_quant", matmul->attrs.at("act_quant")}, {"act", std::string(act->op == ir::Op::Relu2 ? "relu2" : "silu")}},
                         node.result};
      node = std::move(fusedNode);  // takes over the product's value; the old chain is now dead
      ++fused;
      break;
    }
  }
  if (fused) context.remarks.push_back(fmt::format("fuse-glu: {} gated FFN tails moved into their gate/up matmul", fused));
  return fused > 0;
}

}  // namespace bitnet::passes
