// `bitnet-run MODEL --perplexity -f TEXT [-c N]`: perplexity as llama-perplexity computes it. The text is
// tokenized without BOS and cut into chunks of n_ctx tokens (a partial last chunk is dropped); each
// chunk's first token is replaced by BOS and the chunk runs as one sequence from position 0; the
// negative log-likelihood of token i + 1 given logits i is summed for i in [n_ctx / 2, n_ctx - 2], so
// every scored token sees at least half a context. PPL = exp(mean NLL). training/train.py evaluates the
// PyTorch model with the same procedure.
#include "ir/error.h"
#include "ir/text_utils.h"
#include "tools/bitnet_run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

namespace bitnet {

int run_perplexity(const Model& model, const std::string& path, int64_t n_ctx, const EngineOptions& options, bool json) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("-f: {}: cannot open", path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (!valid_utf8(text)) fail("{}: the text is not valid UTF-8", path);
  const Tokenizer& tok = model.tokenizer();
  if (n_ctx <= 0) n_ctx = std::min<int64_t>(512, model.n_ctx_train());
  if (n_ctx < 4) fail("-c/--ctx-size: {} is too small for perplexity (at least 4)", n_ctx);
  std::vector<int32_t> ids = tok.encode(text, false, false);
  const int64_t chunks = static_cast<int64_t>(ids.size()) / n_ctx;
  if (chunks == 0) fail("{}: {} tokens is less than one chunk of {} (-c)", path, ids.size(), n_ctx);
  Engine engine(model, n_ctx, 1, options);
  const int64_t V = model.n_vocab(), first = n_ctx / 2;
  std::vector<int32_t> pos(static_cast<size_t>(n_ctx)), seq(static_cast<size_t>(n_ctx), 0);
  for (int64_t i = 0; i < n_ctx; ++i) pos[i] = static_cast<int32_t>(i);
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  auto start = std::chrono::steady_clock::now();
  if (!json) std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %lld\n", ids.size(), static_cast<long long>(chunks), static_cast<long long>(n_ctx));
  for (int64_t c = 0; c < chunks; ++c) {
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
      ++count;
    }
    if (!json) std::fprintf(stderr, "[%lld]%.4f%s", static_cast<long long>(c + 1), std::exp(nll / count), c + 1 == chunks ? "\n" : ",");
  }
  const double mean = nll / count, var = std::max(0.0, nll2 / count - mean * mean);
  const double ppl = std::exp(mean), err = ppl * std::sqrt(var / std::max<int64_t>(1, count - 1));  // delta method, as llama-perplexity
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (json) {
    nlohmann::json out{{"ppl", ppl}, {"ppl_error", err}, {"mean_nll", mean}, {"scored_tokens", count}, {"chunks", chunks},
                       {"n_ctx", n_ctx}, {"tokens", ids.size()}, {"target", model.target()}, {"seconds", seconds}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("Final estimate: PPL = %.4f +/- %.5f (%lld tokens scored, %s, %.1f s)\n", ppl, err, static_cast<long long>(count),
                model.target().c_str(), seconds);
  }
  return 0;
}

}  // namespace bitnet
