// The op table's data and each op's shape rule. Shape rules see operand and weight types only, so the
// verifier, the parser and the builders all share them.
#include "ir/ir.h"

#include "ir/error.h"

#include <fmt/format.h>

namespace bitnet::ir {

const std::vector<OpInfo>& all_ops() {
  static const std::vector<OpInfo> table = {
#define OP(Name, text, n_results, n_values, min_w, max_w, attrs, summary) {Op::Name, text, n_results, n_values, min_w, max_w, attrs, summary},
#include "ir/ops.def"
  };
  return table;
}

const OpInfo& op_info(Op op) { return all_ops()[static_cast<size_t>(op)]; }

std::optional<Op> op_from_text(std::string_view text) {
  for (auto& info : all_ops()) {
    if (text == info.text) return info.op;
  }
  return std::nullopt;
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
    case DType::T2: return "t2";
    case DType::Q8: return "q8";
    case DType::I8: return "i8";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (auto d : {DType::F32, DType::F16, DType::I32, DType::T2, DType::Q8, DType::I8}) {
    if (name == dtype_name(d)) return d;
  }
  return std::nullopt;
}

std::string type_to_string(const Type& t) {
  std::string s = fmt::format("{}[", dtype_name(t.dtype));
  for (size_t i = 0; i < t.dims.size(); ++i) {
    if (i) s += ", ";
    s += t.dims[i] == kSymbolicT ? std::string("T") : std::to_string(t.dims[i]);
  }
  return s + "]";
}

int64_t floats_per_row(const Type& t) {
  int64_t n = t.dims.back();
  return t.dtype == DType::Q8 ? (n + 3) / 4 + 1 : n;
}

int Module::add_weight(const std::string& name, Type type) {
  weights.push_back({name, std::move(type), {}});
  return static_cast<int>(weights.size() - 1);
}

int Module::add_input(const std::string& name, Type type) {
  values.push_back({name, std::move(type), -1});
  inputs.push_back(static_cast<int>(values.size() - 1));
  return inputs.back();
}

int Module::add_node(Op op, std::vector<int> operands, std::vector<int> node_weights, Attrs attrs, const std::string& name) {
  Node node{op, std::move(operands), std::move(node_weights), std::move(attrs), -1};
  Type type = infer_type(*this, node);
  values.push_back({name, std::move(type), static_cast<int>(nodes.size())});
  node.result = static_cast<int>(values.size() - 1);
  nodes.push_back(std::move(node));
  return node.result;
}

std::optional<int> Module::find_weight(std::string_view name) const {
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i].name == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

size_t Module::prune_weights() {
  std::vector<bool> used(weights.size(), false);
  for (auto& n : nodes)
    for (int w : n.weights) used[w] = true;
  for (size_t i = weights.size(); i-- > 0;)  // sources of a used concatenation are used
    if (used[i])
      for (int s : weights[i].concat_of) used[s] = true;
  std::vector<int> remap(weights.size(), -1);
  std::vector<Weight> kept;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!used[i]) continue;
    remap[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(weights[i]));
  }
  size_t removed = weights.size() - kept.size();
  for (auto& w : kept)
    for (int& s : w.concat_of) s = remap[s];
  for (auto& n : nodes)
    for (int& w : n.weights) w = remap[w];
  weights = std::move(kept);
  return removed;
}

void Module::compact_values() {
  std::vector<bool> used(values.size(), false);
  for (int i : inputs) used[i] = true;
  if (output >= 0) used[output] = true;
  for (auto& n : nodes) {
    n.for_each_result([&](int r) { used[r] = true; });
    for (int v : n.operands) used[v] = true;
  }
  std::vector<int> remap(values.size(), -1);
  std::vector<Value> kept;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!used[i]) continue;
    remap[i] = static_cast<int>(kept.size());
    kept.push_back(std::move(values[i]));
  }
  values = std::move(kept);
  for (int& i : inputs) i = remap[i];
  if (output >= 0) output = remap[output];
  for (auto& n : nodes) {
    n.result = remap[n.result];
    for (int& r : n.extra_results) r = remap[r];
    for (int& v : n.operands) v = remap[v];
  }
  renumber_producers();
}

void Module::renumber_producers() {
  for (size_t k = 0; k < nodes.size(); ++k) nodes[k].for_each_result([&](int r) { values[r].producer = static_cast<int>(k); });
}

int64_t Module::attr_int(const Node& n, const std::string& key) const { return std::get<int64_t>(n.attrs.at(key)); }
double Module::attr_float(const Node& n, const std::string& key) const { return std::get<double>(n.attrs.at(key)); }
const std::string& Module::attr_string(const Node& n, const std::string& key) const {
  return std::get<std::string>(n.attrs.at(key));
}

namespace {

bool is_float(DType d) { return d == DType::F32 || d == DType::F16; }

// A rows-by-features activation: f32[T, N].
bool is_activation(const Type& t) { return t.dtype == DType::F32 && t.dims.size() == 2 && t.dims[0] == kSymbolicT && t.dims[1] > 0; }
bool is_token_vector(const Type& t) { return t.dtype == DType::I32 && t.dims.size() == 1 && t.dims[0] == kSymbolicT; }

class Rule {
 public:
  Rule(const Module& m, const Node& n) : m_(m), n_(n), info_(op_info(n.op)) {}
  const Type& value(size_t i) const { return m_.values.at(n_.operands.at(i)).type; }
  const Type& weight(size_t i) const { return m_.weights.at(n_.weights.at(i)).type; }
  [[noreturn]] void bad(const std::string& what) const { fail("op '{}': {}", info_.text, what); }
  void activation(size_t i) const {
    if (!is_activation(value(i))) bad(fmt::format("operand {} must be f32[T, N], got {}", i, type_to_string(value(i))));
  }
  // The input of a BitLinear: f32 (quantized inside when act_quant is int8_token) or already q8.
  void bitlinear_input(size_t i) const {
    const Type& t = value(i);
    bool q8 = t.dtype == DType::Q8 && t.dims.size() == 2 && t.dims[0] == kSymbolicT;
    if (!is_activation(t) && !q8) bad(fmt::format("operand {} must be f32[T, K] or q8[T, K], got {}", i, type_to_string(t)));
    if (q8 && std::get<std::string>(n_.attrs.at("act_quant")) != "int8_token") bad("a q8 input needs act_quant = \"int8_token\"");
  }
  void tokens(size_t i) const {
    if (!is_token_vector(value(i))) bad(fmt::format("operand {} must be i32[T], got {}", i, type_to_string(value(i))));
  }
  void same(size_t a, size_t b) const {
    if (!(value(a) == value(b))) {
      bad(fmt::format("operands {} and {} must have the same type, got {} and {}", a, b, type_to_string(value(a)), type_to_string(value(b))));
    }
  }
  // A weight vector of n elements (norm weights, biases, scales, frequency factors).
  void vector(size_t i, int64_t n, bool float_only = true) const {
    const Type& w = weight(i);
    if (w.dims != std::vector<int64_t>{n} || (float_only && !is_float(w.dtype))) {
      bad(fmt::format("weight {} must be f32[{}], got {}", i, n, type_to_string(w)));
    }
  }
  // A matrix [N, K] whose K equals the activation's feature count; returns N.
  int64_t matrix(size_t i, int64_t k) const {
    const Type& w = weight(i);
    if (w.dims.size() != 2 || w.dims[1] != k) bad(fmt::format("weight {} must be [N, {}], got {}", i, k, type_to_string(w)));
    return w.dims[0];
  }
  const Module& m_;
  const Node& n_;
  const OpInfo& info_;
};

Type activation(int64_t features) { return {DType::F32, {kSymbolicT, features}}; }

void check_attributes(const OpInfo& info, const Attrs& attrs) {
  std::string_view spec = info.attributes;
  size_t expected = 0;
  while (!spec.empty()) {
    size_t end = spec.find(' ');
    std::string_view item = spec.substr(0, end);
    spec = end == std::string_view::npos ? std::string_view() : spec.substr(end + 1);
    std::string key(item.substr(0, item.find(':')));
    char kind = item.back();
    auto it = attrs.find(key);
    if (it == attrs.end()) fail("op '{}': attribute '{}' is missing", info.text, key);
    size_t index = kind == 'i' ? 0 : kind == 'f' ? 1 : 2;
    if (it->second.index() != index) {
      fail("op '{}': attribute '{}' must be {}", info.text, key, kind == 'i' ? "an integer" : kind == 'f' ? "a number" : "a string");
    }
    ++expected;
  }
  if (attrs.size() != expected) {
    for (auto& [key, value] : attrs) {
      if (std::string_view(info.attributes).find(key + ":") == std::string_view::npos) fail("op '{}': unknown attribute '{}'", info.text, key);
    }
  }
}

Type single_result_type(const Module& m, const Node& node);

}  // namespace

std::vector<Type> infer_types(const Module& m, const Node& node) {
  const OpInfo& info = op_info(node.op);
  if (static_cast<int>(node.operands.size()) != info.n_values) {
    fail("op '{}': expects {} value operands, got {}", info.text, info.n_values, node.operands.size());
  }
  int nw = static_cast<int>(node.weights.size());
  if (nw < info.min_weights || nw > info.max_weights) {
    fail("op '{}': expects {} weight operands, got {}", info.text,
         info.min_weights == info.max_weights ? std::to_string(info.min_weights)
                                              : fmt::format("{} to {}", info.min_weights, info.max_weights), nw);
  }
  for (int v : node.operands) {
    if (v < 0 || v >= static_cast<int>(m.values.size())) fail("op '{}': operand refers to an unknown value", info.text);
  }
  for (int w : node.weights) {
    if (w < 0 || w >= static_cast<int>(m.weights.size())) fail("op '{}': weight operand refers to an unknown weight", info.text);
  }
  check_attributes(info, node.attrs);
  if (static_cast<int>(node.extra_results.size()) != info.n_results - 1) {
    fail("op '{}': produces {} results, got {}", info.text, info.n_results, node.extra_results.size() + 1);
  }
  if (node.op == Op::AddRmsNormQuant) {
    Rule r(m, node);
    r.activation(0);
    r.same(0, 1);
    r.vector(0, r.value(0).dims[1]);
    return {r.value(0), Type{DType::Q8, r.value(0).dims}};
  }
  return {single_result_type(m, node)};
}

namespace {
Type single_result_type(const Module& m, const Node& node) {
  Rule r(m, node);
  switch (node.op) {
    case Op::Embed: {
      r.tokens(0);
      const Type& w = r.weight(0);
      if (w.dims.size() != 2 || !is_float(w.dtype)) r.bad(fmt::format("weight 0 must be an f32/f16 table [V, D], got {}", type_to_string(w)));
      return activation(w.dims[1]);
    }
    case Op::RmsNorm:
      r.activation(0);
      r.vector(0, r.value(0).dims[1]);
      return r.value(0);
    case Op::AddRmsNormQuant:
      break;  // multi-result: infer_types
    case Op::RmsNormQuant:
      r.activation(0);
      r.vector(0, r.value(0).dims[1]);
      return {DType::Q8, r.value(0).dims};
    case Op::BitLinear: {
      r.bitlinear_input(0);
      int64_t n = r.matrix(0, r.value(0).dims[1]);
      if (r.weight(0).dtype != DType::T2 && r.weight(0).dtype != DType::F32) r.bad("weight 0 must be t2 or f32");
      return activation(n);
    }
    case Op::BitLinearGlu: {
      r.bitlinear_input(0);
      int64_t n = r.matrix(0, r.value(0).dims[1]);
      if (r.weight(0).dtype != DType::T2 && r.weight(0).dtype != DType::F32) r.bad("weight 0 must be t2 or f32");
      if (n % 2) r.bad(fmt::format("weight 0 has {} rows; gate and up need an even count", n));
      const auto& act = std::get<std::string>(node.attrs.at("act"));
      if (act != "relu2" && act != "silu") r.bad(fmt::format("act '{}' is not relu2 or silu", act));
      return activation(n / 2);
    }
    case Op::MatMul: {
      r.activation(0);
      int64_t n = r.matrix(0, r.value(0).dims[1]);
      if (!is_float(r.weight(0).dtype) && r.weight(0).dtype != DType::I8) r.bad("weight 0 must be f32, f16 or i8");
      return activation(n);
    }
    case Op::Scale:
      r.activation(0);
      r.vector(0, 1);
      return r.value(0);
    case Op::AddBias:
      r.activation(0);
      r.vector(0, r.value(0).dims[1]);
      return r.value(0);
    case Op::Rope: {
      r.activation(0);
      r.tokens(1);
      int64_t head_dim = std::get<int64_t>(node.attrs.at("head_dim"));
      if (head_dim < 2 || head_dim % 2 || r.value(0).dims[1] % head_dim) {
        r.bad(fmt::format("head_dim {} must be even and divide the {} features", head_dim, r.value(0).dims[1]));
      }
      if (!node.weights.empty()) r.vector(0, head_dim / 2);
      return r.value(0);
    }
    case Op::Attention: {
      for (size_t i = 0; i < 3; ++i) r.activation(i);
      r.tokens(3);
      r.tokens(4);
      int64_t n_head = std::get<int64_t>(node.attrs.at("n_head")), n_head_kv = std::get<int64_t>(node.attrs.at("n_head_kv"));
      int64_t q = r.value(0).dims[1];
      if (n_head < 1 || n_head_kv < 1 || n_head % n_head_kv || q % n_head) r.bad("n_head_kv must divide n_head, n_head must divide q's features");
      int64_t head_dim = q / n_head;
      if (r.value(1).dims[1] != n_head_kv * head_dim || !(r.value(1) == r.value(2))) {
        r.bad(fmt::format("k and v must be f32[T, {}] (n_head_kv x head_dim)", n_head_kv * head_dim));
      }
      if (std::get<int64_t>(node.attrs.at("layer")) < 0) r.bad("layer must be >= 0");
      return r.value(0);
    }
    case Op::QkvRopeCache: {
      r.bitlinear_input(0);
      r.tokens(1);
      r.tokens(2);
      int64_t n_head = std::get<int64_t>(node.attrs.at("n_head")), n_head_kv = std::get<int64_t>(node.attrs.at("n_head_kv"));
      int64_t d = std::get<int64_t>(node.attrs.at("head_dim"));
      if (n_head < 1 || n_head_kv < 1 || n_head % n_head_kv || d < 2 || d % 2) r.bad("n_head_kv must divide n_head and head_dim must be even");
      int64_t n = r.matrix(0, r.value(0).dims[1]);
      if (n != (n_head + 2 * n_head_kv) * d) r.bad(fmt::format("weight 0 has {} rows; q, k and v need {}", n, (n_head + 2 * n_head_kv) * d));
      if (r.weight(0).dtype != DType::T2 && r.weight(0).dtype != DType::F32) r.bad("weight 0 must be t2 or f32");
      if (node.weights.size() > 1) r.vector(1, d / 2);
      if (std::get<int64_t>(node.attrs.at("layer")) < 0) r.bad("layer must be >= 0");
      return activation(n_head * d);
    }
    case Op::Attend: {
      r.activation(0);
      r.tokens(1);
      r.tokens(2);
      int64_t n_head = std::get<int64_t>(node.attrs.at("n_head")), n_head_kv = std::get<int64_t>(node.attrs.at("n_head_kv"));
      if (n_head < 1 || n_head_kv < 1 || n_head % n_head_kv || r.value(0).dims[1] % n_head) r.bad("n_head_kv must divide n_head, n_head must divide q's features");
      if (std::get<int64_t>(node.attrs.at("layer")) < 0) r.bad("layer must be >= 0");
      return r.value(0);
    }
    case Op::Add:
    case Op::Mul:
      r.activation(0);
      r.same(0, 1);
      return r.value(0);
    case Op::Relu2:
    case Op::Silu:
      r.activation(0);
      return r.value(0);
    case Op::Slice: {
      r.activation(0);
      int64_t begin = std::get<int64_t>(node.attrs.at("begin")), size = std::get<int64_t>(node.attrs.at("size"));
      if (begin < 0 || size < 1 || begin + size > r.value(0).dims[1]) {
        r.bad(fmt::format("[{}, {}) is not inside the {} columns", begin, begin + size, r.value(0).dims[1]));
      }
      return activation(size);
    }
  }
  r.bad("unknown op");
}
}  // namespace

}  // namespace bitnet::ir
