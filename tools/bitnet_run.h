// The pieces of bitnet-run shared by its modes: generation/chat (bitnet_run.cpp), `bench`
// (bitnet_run_bench.cpp) and `--perplexity` (bitnet_run_perplexity.cpp).
#pragma once

#include "runtime/model.h"

#include <memory>
#include <string>

namespace bitnet {

// A bundle, or a GGUF compiled on the fly into a temporary bundle (x86 where the CPU can, else ref).
std::unique_ptr<Model> load_model(const std::string& path, const std::string& act_quant);

// `bitnet-run bench ...`: argv[0] is "bench".
int bench_main(int argc, char** argv);

// llama-perplexity's procedure (runtime/perplexity.h) on the text of `path`; n_ctx 0: min(512, the model's
// context).
int run_perplexity(const Model& model, const std::string& path, int64_t n_ctx, const EngineOptions& options, bool json);

}  // namespace bitnet
