#include "codegen/backend.h"

namespace bitnet {

int32_t argmax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;  // strict: an equal later logit never wins
  return int32_t(best);
}

std::vector<int32_t> StepExecutor::run_greedy(const StepInputs& inputs) {
  const std::span<const float> logits = run(inputs);
  const size_t rows = inputs.all_logits ? inputs.tokens.size() : 1, n_vocab = logits.size() / rows;
  std::vector<int32_t> ids(rows);
  for (size_t r = 0; r < rows; ++r) ids[r] = argmax(logits.subspan(r * n_vocab, n_vocab));
  return ids;
}

}  // namespace bitnet
