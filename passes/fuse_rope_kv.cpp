// fuse-rope-kv: RoPE and the KV-cache write move into the Q/K/V matmul's epilogue, and attention reads
// the cache only.
//
//   %qkv = bitlinear(%h, @q_k_v)
//   %q   = slice(%qkv) {0, Nq}      %k = slice(%qkv) {Nq, Nk}      %v = slice(%qkv) {Nq+Nk, Nv}
//   %qr  = rope(%q, %pos)           %kr = rope(%k, %pos)
//   %a   = attention(%qr, %kr, %v, %pos, %seq) {layer}
//                       ->
//   %qr  = qkv_rope_cache(%h, %pos, %seq, @q_k_v) {layer, head_dim, base, ...}   (writes k, v to the cache)
//   %a   = attend(%qr, %pos, %seq) {layer}
//
// Legal when the chain is private (no other users of the slices, ropes or matmul), both ropes share their
// attributes and frequency factors, and attention's K/V heads match the slices: the fused op does the same
// arithmetic in the same order, and attend runs after it (it reads its result), so the cache holds this
// step's keys before they are read. It pays by never materializing k and v outside the cache and by
// rotating q and k while the matmul's outputs are still in registers. Run after merge-matmuls.
#include "passes/pass_manager.h"

#include <fmt/format.h>

namespace bitnet::passes {
namespace {

const ir::Node* producer_of(const ir::Module& m, int value, ir::Op op) {
  int p = m.values[value].producer;
  return p >= 0 && m.nodes[p].op == op ? &m.nodes[p] : nullptr;
}

}  // namespace

bool run_fuse_rope_kv(ir::Module& m, PassContext& context) {
  std::vector<int> uses(m.values.size(), 0);
  for (auto& n : m.nodes)
    for (int v : n.operands) ++uses[v];
  if (m.output >= 0) ++uses[m.output];

  std::vector<bool> drop(m.nodes.size(), false);
  std::vector<std::pair<size_t, ir::Node>> fused_before;  // attention index -> the qkv node to put before it
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const ir::Node& attn = m.nodes[i];
    if (attn.op != ir::Op::Attention) continue;
    const ir::Node* q_rope = producer_of(m, attn.operands[0], ir::Op::Rope);
    const ir::Node* k_rope = producer_of(m, attn.operands[1], ir::Op::Rope);
    const ir::Node* v = producer_of(m, attn.operands[2], ir::Op::Slice);
    if (!q_rope || !k_rope || !v) continue;
    const ir::Node* q = producer_of(m, q_rope->operands[0], ir::Op::Slice);
    const ir::Node* k = producer_of(m, k_rope->operands[0], ir::Op::Slice);
    if (!q || !k || q->operands[0] != k->operands[0] || q->operands[0] != v->operands[0]) continue;
    const ir::Node* matmul = producer_of(m, q->operands[0], ir::Op::BitLinear);
    if (!matmul) continue;
    // Positions: ropes and attention use the same %pos; the slices are q | k | v in order.
    if (q_rope->operands[1] != attn.operands[3] || k_rope->operands[1] != attn.operands[3]) continue;
    if (q_rope->attrs != k_rope->attrs || q_rope->weights != k_rope->weights) continue;
    const int64_t nq = m.values[q->result].type.dims[1], nk = m.values[k->result].type.dims[1], nv = m.values[v->result].type.dims[1];
    const int64_t d = m.attr_int(*q_rope, "head_dim"), n_head = m.attr_int(attn, "n_head"), n_head_kv = m.attr_int(attn, "n_head_kv");
    bool layout = m.attr_int(*q, "begin") == 0 && m.attr_int(*k, "begin") == nq && m.attr_int(*v, "begin") == nq + nk &&
                  m.values[matmul->result].type.dims[1] == nq + nk + nv && nq == n_head * d && nk == n_head_kv * d && nv == nk;
    bool private_chain = uses[matmul->result] == 3 && uses[q->result] == 1 && uses[k->result] == 1 && uses[v->result] == 1 &&
                         uses[q_rope->result] == 1 && uses[k_rope->result] == 1;
    if (!layout || !private_chain) continue;

    std::vector<int> weights = matmul->weights;
    weights.insert(weights.end(), q_rope->weights.begin(), q_rope->weights.end());
    ir::Node qkv{ir::Op::QkvRopeCache, {matmul->operands[0], attn.operands[3], attn.operands[4]}, weights,
                 {{"act_quant", matmul->attrs.at("act_quant")}, {"head_dim", d}, {"base", q_rope->attrs.at("base")},
                  {"layer", attn.attrs.at("layer")}, {"n_head", n_head}, {"n_head_kv", n_head_kv}},
                 q_rope->result};  // the fused op produces the rotated q in place of the old rope
    for (const ir::Node* dead : {matmul, q, k, v, q_rope, k_rope}) drop[static_cast<size_t>(dead - m.nodes.data())] = true;
    fused_before.emplace_back(i, std::move(qkv));
    m.nodes[i] = ir::Node{ir::Op::Attend, {q_rope->result, attn.operands[3], attn.operands[4]}, {}, attn.attrs, attn.result};
  }
  if (fused_before.empty()) return false;
  std::vector<ir::Node> rebuilt;
  size_t next = 0;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    if (next < fused_before.size() && fused_before[next].first == i) rebuilt.push_back(std::move(fused_before[next++].second));
    if (!drop[i]) rebuilt.push_back(std::move(m.nodes[i]));
  }
  m.nodes = std::move(rebuilt);
  m.renumber_producers();
  m.compact_values();
  context.remarks.push_back(fmt::format("fuse-rope-kv: {} attention blocks now rotate and cache K/V in the QKV matmul's epilogue", fused_before.size()));
  return true;
}

}  // namespace bitnet::passes
