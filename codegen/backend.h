// What every backend's executor offers the runtime: run one step of T tokens (each with its position and
// sequence slot) over the backend's own KV cache, and return the logits. The runtime has range-checked
// the inputs before a backend sees them.
#pragma once

#include <cstdint>
#include <span>

namespace bitnet {

struct StepInputs {
  std::span<const int32_t> tokens, pos, seq;  // T each
  bool all_logits = true;                     // false: only the last token's row is needed
};

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // Logits row-major [rows, V]: T rows, or the last token's row alone when !all_logits.
  virtual std::span<const float> run(const StepInputs& inputs) = 0;
};

}  // namespace bitnet
