// The token sampler: turns one step's logits into the next token the way llama.cpp users expect (spec section
// 6). The chain is fixed: logit bias -> repeat/frequency/presence penalties -> top-k -> top-p -> min-p ->
// temperature -> draw from the softmax of the survivors with a seeded std::mt19937. temp <= 0 is greedy.
// Defaults are llama.cpp's `common_params_sampling`. Draws are reproducible within bitnetc for a given seed;
// matching llama.cpp's draws bit for bit is not a goal. All scratch is sized once from n_vocab, so sample()
// does not allocate.
#pragma once

#include "codegen/backend.h"  // argmax

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

namespace bitnet {

struct SamplingParams {
  uint32_t seed = 0xFFFFFFFF;  // LLAMA_DEFAULT_SEED: means "random" (take one from std::random_device)
  int32_t top_k = 40;          // <= 0: keep all
  float top_p = 0.95f;         // >= 1: off
  float min_p = 0.05f;         // <= 0: off
  float temp = 0.8f;           // <= 0: greedy
  int32_t penalty_last_n = 64;  // 0: off, -1: whole history
  float penalty_repeat = 1.0f;  // 1: off
  float penalty_freq = 0.0f;
  float penalty_present = 0.0f;
  int32_t min_keep = 0;  // top-p and min-p keep at least max(1, min_keep) tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logit before anything else
};

inline constexpr uint32_t kRandomSeed = 0xFFFFFFFF;

class Sampler {
 public:
  // Throws bitnet::Error naming the command-line flag of the first bad parameter.
  Sampler(SamplingParams params, size_t n_vocab);

  // Records a prompt or generated token for the penalties.
  void accept(int32_t token);
  // Applies the chain to `logits` (n_vocab values) and draws one token id.
  int32_t sample(std::span<const float> logits);
  // Starts a new sequence: clears the history and reseeds (a fresh random seed if the seed was "random").
  void reset();
  // The seed actually in use, also when "random" was asked for.
  uint32_t seed() const { return seed_; }

 private:
  void apply_penalties();
  size_t cut_top_p(size_t n_sorted, size_t n) const;
  size_t cut_min_p(size_t n, double threshold) const;
  int32_t draw(size_t n);

  SamplingParams params_;
  size_t n_vocab_;
  uint32_t seed_ = 0;
  std::mt19937 rng_;
  std::vector<int32_t> history_;  // accepted tokens, oldest first; trimmed to the penalty window
  // Scratch, sized n_vocab once.
  std::vector<float> logits_;    // this step's logits after bias and penalties
  std::vector<int32_t> order_;   // candidate ids, best first after top-k
  std::vector<double> probs_;    // softmax of the candidates
  std::vector<int32_t> counts_;  // per-token count inside the penalty window; all zero between calls
};

}  // namespace bitnet
