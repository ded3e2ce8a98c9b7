#include "runtime/perplexity.h"

#include "ir/error.h"

#include <algorithm>
#include <cmath>

namespace bitnet {

PerplexityResult perplexity(const Model& model, std::span<const int32_t> ids, int64_t n_ctx, const EngineOptions& options,
                            int64_t max_chunks, const std::function<void(int64_t, double)>& on_chunk) {
  if (n_ctx < 4) fail("-c/--ctx-size: {} is too small for perplexity (at least 4)", n_ctx);
  PerplexityResult r;
  r.n_ctx = n_ctx;
  r.chunks = static_cast<int64_t>(ids.size()) / n_ctx;
  if (max_chunks > 0) r.chunks = std::min(r.chunks, max_chunks);
  if (r.chunks == 0) fail("{} tokens is less than one chunk of {} (-c)", ids.size(), n_ctx);
  const Tokenizer& tok = model.tokenizer();
  Engine engine(model, n_ctx, 1, options);
  const int64_t V = model.n_vocab(), first = n_ctx / 2;
  std::vector<int32_t> pos(static_cast<size_t>(n_ctx)), seq(static_cast<size_t>(n_ctx), 0);
  for (int64_t i = 0; i < n_ctx; ++i) pos[i] = static_cast<int32_t>(i);
  double nll = 0, nll2 = 0;
  for (int64_t c = 0; c < r.chunks; ++c) {
    std::vector<int32_t> chunk(ids.begin() + c * n_ctx, ids.begin() + (c + 1) * n_ctx);
    if (tok.add_bos()) chunk[0] = tok.bos();
    auto logits = engine.step(chunk, pos, seq, true);
    for (int64_t i = first; i < n_ctx - 1; ++i) {
      const float* row = logits.data() + i * V;
      double max = row[0];
      for (int64_t v = 1; v < V; ++v) max = std::max(max, static_cast<double>(row[v]));
      double sum = 0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - max);
      const double token_nll = std::log(sum) + max - row[chunk[i + 1]];
      nll += token_nll;
      nll2 += token_nll * token_nll;
      ++r.scored_tokens;
    }
    if (on_chunk) on_chunk(c, std::exp(nll / r.scored_tokens));
  }
  r.mean_nll = nll / r.scored_tokens;
  const double var = std::max(0.0, nll2 / r.scored_tokens - r.mean_nll * r.mean_nll);
  r.ppl = std::exp(r.mean_nll);
  r.ppl_error = r.ppl * std::sqrt(var / std::max<int64_t>(1, r.scored_tokens - 1));  // delta method, as llama-perplexity
  return r;
}

}  // namespace bitnet
