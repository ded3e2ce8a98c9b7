// What every backend's executor offers the runtime: run one step of T tokens (each with its position and
// sequence slot) over the backend's own KV cache, and return the logits. The runtime has range-checked
// the inputs before a backend sees them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace bitnet {

struct StepInputs {
  std::span<const int32_t> tokens, pos, seq;  // T each
  bool all_logits = true;                     // false: only the last token's row is needed
};

// Index of the largest logit; ties go to the lowest id. `logits` must not be empty. The greedy choice
// everywhere: the sampler's, and run_greedy's (the CUDA argmax kernel follows the same rule).
int32_t argmax(std::span<const float> logits);

class StepExecutor {
 public:
  virtual ~StepExecutor() = default;
  // Logits row-major [rows, V]: T rows, or the last token's row alone when !all_logits.
  virtual std::span<const float> run(const StepInputs& inputs) = 0;
  // The greedy token (argmax of the logits, the lowest id among equals) of each of those rows. Backends
  // whose logits live elsewhere (a GPU) choose there and return only the ids.
  virtual std::vector<int32_t> run_greedy(const StepInputs& inputs);
  // GB/s at which the device holding the weights reads its own memory, measured now (the decode
  // roofline's numerator); 0 where the weights live in host memory, which the caller measures itself.
  virtual double device_read_bandwidth_gb_s() { return 0; }
};

}  // namespace bitnet
