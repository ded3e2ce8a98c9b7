// The graph IR: a module holds named weights (@name, a dtype and a shape) and one function of SSA values
// (%name) computed by ops from ir/ops.def. Shapes list dimensions outermost first; the leading dimension of
// activations is the symbolic T (tokens in this step). Weight matrices are [N, K]: N output rows of K inputs.
// Nodes are kept in a valid execution order; the verifier checks that and every op's operand kinds, counts,
// attributes and result type.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bitnet::ir {

enum class Op {
#define OP(Name, text, n_results, n_values, min_w, max_w, attrs, summary) Name,
#include "ir/ops.def"
};

struct OpInfo {
  Op op;
  const char* text;
  int n_results, n_values, min_weights, max_weights;
  const char* attributes;  // "name:kind ..."
  const char* summary;
};
const OpInfo& op_info(Op op);
std::optional<Op> op_from_text(std::string_view text);
const std::vector<OpInfo>& all_ops();

// T2: ternary weights, 2-bit codes + f32 row scales. Q8: an activation quantized per row to int8: each row
// holds K int8 values (padded to 4 bytes) then the f32 multiplier a = 127 / max|x| (x ~ q / a).
// I8: a weight matrix of int8 rows with one f32 scale per row (w ~ q * scale): the opt-in int8 LM head.
enum class DType { F32, F16, I32, T2, Q8, I8 };
const char* dtype_name(DType d);
std::optional<DType> dtype_from_name(std::string_view name);

inline constexpr int64_t kSymbolicT = -1;  // the T dimension

struct Type {
  DType dtype = DType::F32;
  std::vector<int64_t> dims;  // kSymbolicT for T
  bool operator==(const Type&) const = default;
};
std::string type_to_string(const Type& t);
// Storage of one token row of an activation [T, N] in 4-byte units (the arena's unit).
int64_t floats_per_row(const Type& t);

using Attr = std::variant<int64_t, double, std::string>;
using Attrs = std::map<std::string, Attr>;

struct Value {
  std::string name;  // without '%'
  Type type;
  int producer = -1;  // node index, or -1 for a function input
};

struct Weight {
  std::string name;  // without '@'
  Type type;
  // Compile-time provenance: the rows of these weights, in order (a merged Q/K/V matrix). The bundle writer
  // materializes the concatenation and drops the provenance; printed as `= concat(@a, @b)`.
  std::vector<int> concat_of;
};

struct Node {
  Op op;
  std::vector<int> operands;  // value ids
  std::vector<int> weights;   // weight ids
  Attrs attrs;
  int result = -1;            // value id of the (first) result
  std::vector<int> extra_results = {};  // further results of multi-result ops (OpInfo::n_results - 1)

  template <typename F>
  void for_each_result(F&& f) const {
    f(result);
    for (int r : extra_results) f(r);
  }
};

struct Module {
  std::vector<Weight> weights;
  std::vector<Value> values;
  std::vector<Node> nodes;   // in execution order
  std::vector<int> inputs;   // value ids
  int output = -1;           // value id
  std::string func_name = "step";

  int add_weight(const std::string& name, Type type);
  int add_input(const std::string& name, Type type);
  // Appends a node; its result type comes from the op's shape rule (throws on a bad operand).
  int add_node(Op op, std::vector<int> operands, std::vector<int> weights, Attrs attrs, const std::string& name);
  std::optional<int> find_weight(std::string_view name) const;
  // Drops weights no node (and no concatenation) refers to, renumbering the rest; returns how many went.
  size_t prune_weights();
  // Drops values no node, input or output refers to, renumbering the rest (after passes removed nodes).
  void compact_values();
  // Sets every value's producer from the node order (after passes rebuilt the node list).
  void renumber_producers();

  int64_t attr_int(const Node& n, const std::string& key) const;
  double attr_float(const Node& n, const std::string& key) const;
  const std::string& attr_string(const Node& n, const std::string& key) const;
};

// The result types an op produces from its operands (throws bitnet::Error naming the op and the operand).
std::vector<Type> infer_types(const Module& m, const Node& node);
inline Type infer_type(const Module& m, const Node& node) { return infer_types(m, node).at(0); }

// Checks a concatenated weight's sources against its type.
void verify_concat(const Module& m, const Weight& w);

// Checks the whole module; throws bitnet::Error quoting the offending node's text line.
void verify(const Module& m);

std::string print(const Module& m);
// Parses printed IR; `source` names the text in messages (a file name or "<bundle>").
Module parse(std::string_view text, const std::string& source);

}  // namespace bitnet::ir
