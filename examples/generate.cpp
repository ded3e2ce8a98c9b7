// Embedding the runtime in a C++ program: load a bundle, tokenize a prompt, run it as one step, then sample
// and feed tokens one at a time until end of text. Build: the `example-generate` target.
#include "ir/error.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s model.bundle \"prompt\" [n_tokens]\n", argv[0]);
    return 2;
  }
  try {
    auto model = bitnet::Model::load(argv[1]);
    const bitnet::Tokenizer& tokenizer = model->tokenizer();
    bitnet::Engine engine(*model, /*n_ctx=*/512, /*n_seq=*/1);
    bitnet::SamplingParams params;
    params.temp = 0;  // greedy
    bitnet::Sampler sampler(params, static_cast<size_t>(model->n_vocab()));

    std::vector<int32_t> ids = tokenizer.encode(argv[2], tokenizer.add_bos(), /*parse_special=*/true);
    std::vector<int32_t> pos(ids.size()), seq(ids.size(), 0);
    for (size_t i = 0; i < ids.size(); ++i) pos[i] = static_cast<int32_t>(i);
    auto logits = engine.step(ids, pos, seq);
    auto last = logits.subspan(logits.size() - model->n_vocab());

    bitnet::TokenStreamDecoder text(tokenizer);
    int n = argc > 3 ? std::atoi(argv[3]) : 16;
    for (int i = 0; i < n && static_cast<int64_t>(ids.size()) < engine.n_ctx(); ++i) {
      int32_t next = sampler.sample(last);
      if (tokenizer.is_eog(next)) break;
      std::fputs(text.push(next).c_str(), stdout);
      int32_t p = static_cast<int32_t>(ids.size()), s = 0;
      ids.push_back(next);
      last = engine.step({&next, 1}, {&p, 1}, {&s, 1});
    }
    std::printf("%s\n", text.finish().c_str());
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
