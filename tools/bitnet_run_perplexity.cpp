// `bitnet-run MODEL --perplexity -f TEXT [-c N] [--json]`: llama-perplexity's procedure (runtime/perplexity.h)
// on a text file, printing the running estimate after each chunk as llama-perplexity does.
#include "ir/error.h"
#include "ir/text_utils.h"
#include "runtime/perplexity.h"
#include "tools/bitnet_run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>

namespace bitnet {

int run_perplexity(const Model& model, const std::string& path, int64_t n_ctx, const EngineOptions& options, bool json) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("-f: {}: cannot open", path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (!valid_utf8(text)) fail("{}: the text is not valid UTF-8", path);
  if (n_ctx <= 0) n_ctx = std::min<int64_t>(512, model.n_ctx_train());
  std::vector<int32_t> ids = model.tokenizer().encode(text, false, false);
  auto start = std::chrono::steady_clock::now();
  if (!json) std::fprintf(stderr, "perplexity: %zu tokens, %zu chunks of %lld\n", ids.size(), ids.size() / static_cast<size_t>(n_ctx), static_cast<long long>(n_ctx));
  PerplexityResult r;
  try {
    r = perplexity(model, ids, n_ctx, options, 0, [&](int64_t c, double running) {
      if (!json) std::fprintf(stderr, "[%lld]%.4f,", static_cast<long long>(c + 1), running);
    });
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  if (!json) std::fprintf(stderr, "\n");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (json) {
    nlohmann::json out{{"ppl", r.ppl}, {"ppl_error", r.ppl_error}, {"mean_nll", r.mean_nll}, {"scored_tokens", r.scored_tokens},
                       {"chunks", r.chunks}, {"n_ctx", r.n_ctx}, {"tokens", ids.size()}, {"target", model.target()}, {"seconds", seconds}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("Final estimate: PPL = %.4f +/- %.5f (%lld tokens scored, %s, %.1f s)\n", r.ppl, r.ppl_error, static_cast<long long>(r.scored_tokens),
                model.target().c_str(), seconds);
  }
  return 0;
}

}  // namespace bitnet
