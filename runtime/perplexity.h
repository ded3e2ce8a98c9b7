// Perplexity as llama-perplexity computes it, shared by `bitnet-run --perplexity` and the tests. The text's
// ids (tokenized without BOS) are cut into chunks of n_ctx tokens (a partial last chunk is dropped); each
// chunk's first token is replaced by BOS and the chunk runs as one sequence from position 0; the negative
// log-likelihood of token i + 1 given logits i is summed for i in [n_ctx / 2, n_ctx - 2], so every scored
// token sees at least half a context. PPL = exp(mean NLL). training/train.py evaluates the PyTorch model
// with the same procedure.
#pragma once

#include "runtime/model.h"

#include <cstdint>
#include <functional>
#include <span>

namespace bitnet {

struct PerplexityResult {
  double ppl = 0, ppl_error = 0, mean_nll = 0;
  int64_t scored_tokens = 0, chunks = 0, n_ctx = 0;
};

// `max_chunks` > 0 stops early; `on_chunk(chunk, running ppl)` after each chunk if set.
PerplexityResult perplexity(const Model& model, std::span<const int32_t> ids, int64_t n_ctx, const EngineOptions& options,
                            int64_t max_chunks = 0, const std::function<void(int64_t, double)>& on_chunk = {});

}  // namespace bitnet
