// merge-matmuls: BitLinears that read the same input become one BitLinear over their weights stacked row
// by row, followed by slices that hand each former user its columns.
//
//   %q = bitlinear(%h, @q)                  %qkv = bitlinear(%h, @q_k_v)     @q_k_v = concat(@q, @k, @v)
//   %k = bitlinear(%h, @k)        ->        %q   = slice(%qkv) {begin = 0,    size = Nq}
//   %v = bitlinear(%h, @v)                  %k   = slice(%qkv) {begin = Nq,   size = Nk} ...
//
// Legal because each output row of a BitLinear depends only on the input row and its own weight row and
// scale (t2 keeps one scale per row), and the activation quantization is per input row, so it is the same
// for all of them. It pays by quantizing the input once and streaming one weight matrix per group (one
// kernel launch instead of three on a GPU). Groups need equal act_quant and weight dtype.
#include "passes/pass_manager.h"

#include <fmt/format.h>

#include <map>

namespace bitnet::passes {
namespace {

// "blk.0.attn_q.weight" + "blk.0.attn_k.weight" -> "blk.0.attn_q_attn_k.weight"
std::string merged_name(const ir::Module& m, const std::vector<int>& weights) {
  const std::string& first = m.weights[weights[0]].name;
  size_t prefix = first.size(), suffix = first.size();
  for (int w : weights) {
    const std::string& name = m.weights[w].name;
    size_t p = 0;
    while (p < prefix && p < name.size() && name[p] == first[p]) ++p;
    prefix = p;
    size_t s = 0;
    while (s < suffix && s < name.size() && name[name.size() - 1 - s] == first[first.size() - 1 - s]) ++s;
    suffix = s;
  }
  prefix = first.rfind('.', prefix) == std::string::npos ? 0 : first.rfind('.', prefix) + 1;
  std::string out = first.substr(0, prefix);
  for (size_t i = 0; i < weights.size(); ++i) {
    const std::string& name = m.weights[weights[i]].name;
    size_t end = name.size() >= suffix ? name.size() - suffix : name.size();
    out += (i ? "_" : "") + name.substr(prefix, end > prefix ? end - prefix : 0);
  }
  return out + first.substr(first.size() - suffix);
}

}  // namespace

bool run_merge_matmuls(ir::Module& m, PassContext& context) {
  // Group BitLinear nodes by (input, act_quant, weight dtype), in node order.
  std::map<std::tuple<int, std::string, ir::DType>, std::vector<size_t>> groups;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const ir::Node& n = m.nodes[i];
    if (n.op != ir::Op::BitLinear) continue;
    groups[{n.operands[0], m.attr_string(n, "act_quant"), m.weights[n.weights[0]].type.dtype}].push_back(i);
  }
  std::map<size_t, std::vector<ir::Node>> replacements;  // first node index -> merged node + slices
  std::vector<bool> drop(m.nodes.size(), false);
  size_t merged_groups = 0;
  for (auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    std::vector<int> sources;
    int64_t rows = 0;
    for (size_t i : members) {
      sources.push_back(m.nodes[i].weights[0]);
      rows += m.weights[m.nodes[i].weights[0]].type.dims[0];
    }
    const ir::Type& first = m.weights[sources[0]].type;
    int merged_weight = m.add_weight(merged_name(m, sources), {first.dtype, {rows, first.dims[1]}});
    m.weights[merged_weight].concat_of = sources;
    const ir::Node& head = m.nodes[members[0]];
    std::string merged_value = m.values[head.result].name + ".merged";
    m.values.push_back({merged_value, {ir::DType::F32, {ir::kSymbolicT, rows}}, -1});
    int merged_result = static_cast<int>(m.values.size() - 1);
    std::vector<ir::Node> nodes{{ir::Op::BitLinear, {head.operands[0]}, {merged_weight}, head.attrs, merged_result}};
    int64_t begin = 0;
    for (size_t i : members) {
      int64_t size = m.weights[m.nodes[i].weights[0]].type.dims[0];
      // The slice takes over the member's result value, so its users need no rewriting.
      nodes.push_back({ir::Op::Slice, {merged_result}, {}, {{"begin", begin}, {"size", size}}, m.nodes[i].result});
      begin += size;
      drop[i] = true;
    }
    replacements[members[0]] = std::move(nodes);
    ++merged_groups;
  }
  if (merged_groups == 0) return false;
  std::vector<ir::Node> rebuilt;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    if (auto it = replacements.find(i); it != replacements.end()) {
      for (auto& n : it->second) rebuilt.push_back(std::move(n));
    } else if (!drop[i]) {
      rebuilt.push_back(std::move(m.nodes[i]));
    }
  }
  m.nodes = std::move(rebuilt);
  m.renumber_producers();
  context.remarks.push_back(fmt::format("merge-matmuls: {} groups of BitLinears now share one matmul each", merged_groups));
  return true;
}

}  // namespace bitnet::passes
