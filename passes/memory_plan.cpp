// Memory planning. The dependence graph has one vertex per node and an edge from each value's producer to
// each consumer; a topological sort (Boost.Graph) proves it acyclic and gives every node its rank in the
// execution order. A value is live from its producer's rank to its last consumer's rank (the function's
// output to the end). Values are then placed largest first at the lowest offset that overlaps no placed
// value with an overlapping lifetime (best fit by size; interval colouring with sizes). An op never writes
// over its own inputs: an input's lifetime includes the consuming node, where the output's begins.
#include "passes/memory_plan.h"

#include "ir/error.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/topological_sort.hpp>

#include <algorithm>

namespace bitnet::passes {

MemoryPlan plan_memory(const ir::Module& m) {
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS>;
  const size_t n_nodes = m.nodes.size();
  Graph graph(n_nodes);
  for (size_t i = 0; i < n_nodes; ++i)
    for (int v : m.nodes[i].operands)
      if (m.values[v].producer >= 0) boost::add_edge(static_cast<size_t>(m.values[v].producer), i, graph);

  std::vector<size_t> reverse_order;
  try {
    boost::topological_sort(graph, std::back_inserter(reverse_order));
  } catch (const boost::not_a_dag&) {
    fail("memory plan: the dependence graph has a cycle");
  }
  // Execution runs nodes in module order, which must be a topological order: check it, then use it as rank.
  std::vector<size_t> rank(n_nodes);
  for (size_t i = 0; i < n_nodes; ++i) rank[i] = i;
  for (size_t i = 0; i < n_nodes; ++i)
    for (int v : m.nodes[i].operands)
      if (m.values[v].producer >= 0 && rank[static_cast<size_t>(m.values[v].producer)] >= rank[i]) {
        fail("memory plan: node {} reads %{} before it is computed", i, m.values[v].name);
      }

  struct Interval {
    int value;
    size_t begin, end;
    int64_t size;
  };
  std::vector<Interval> intervals;
  std::vector<size_t> last_use(m.values.size(), 0);
  for (size_t i = 0; i < n_nodes; ++i)
    for (int v : m.nodes[i].operands) last_use[v] = std::max(last_use[v], rank[i]);
  MemoryPlan plan;
  for (const auto& node : m.nodes) {
    node.for_each_result([&](int result) {
      const ir::Value& v = m.values[result];
      size_t begin = rank[static_cast<size_t>(v.producer)];
      size_t end = result == m.output ? n_nodes : std::max(begin, last_use[result]);
      intervals.push_back({result, begin, end, ir::floats_per_row(v.type)});
      plan.naive_floats_per_token += ir::floats_per_row(v.type);
    });
  }
  std::sort(intervals.begin(), intervals.end(), [](const Interval& a, const Interval& b) {
    return a.size != b.size ? a.size > b.size : a.begin < b.begin;
  });
  std::vector<std::pair<const Interval*, int64_t>> placed;
  for (const Interval& iv : intervals) {
    std::vector<std::pair<int64_t, int64_t>> busy;  // [offset, offset + size) of overlapping lifetimes
    for (auto& [other, offset] : placed) {
      if (other->begin <= iv.end && iv.begin <= other->end) busy.push_back({offset, offset + other->size});
    }
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (auto& [lo, hi] : busy) {
      if (offset + iv.size <= lo) break;
      offset = std::max(offset, hi);
    }
    placed.push_back({&iv, offset});
    plan.offsets[m.values[iv.value].name] = offset;
    plan.floats_per_token = std::max(plan.floats_per_token, offset + iv.size);
  }
  return plan;
}

}  // namespace bitnet::passes
