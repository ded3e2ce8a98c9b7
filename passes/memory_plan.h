// Memory planning: every f32 intermediate of a step gets an offset in one arena, so a step allocates
// nothing and values whose lifetimes do not overlap share bytes. All activations are [T, N], so sizes and
// offsets are counted in floats per token: value v lives at arena + T * offset[v] for any T, and the arena
// holds T * floats_per_token floats (one arena per step size, grown once to the largest T).
#pragma once

#include "ir/ir.h"

#include <map>
#include <string>

namespace bitnet::passes {

struct MemoryPlan {
  std::map<std::string, int64_t> offsets;  // value name -> floats per token from the arena start
  int64_t floats_per_token = 0;            // the arena
  int64_t naive_floats_per_token = 0;      // every intermediate in its own buffer
};

// Liveness over the dependence graph (Boost.Graph), then best-fit placement, largest values first.
MemoryPlan plan_memory(const ir::Module& m);

}  // namespace bitnet::passes
