// The model synthesizer: writes a BitNet b1.58 GGUF of any shape with seeded random weights that follow the
// spec byte for byte (arch `bitnet-b1.58`, the 2B4T keys, ternary BitLinear weights times one f16-exact
// per-tensor scale, F32 norms, an F16 embedding that is also the LM head) and a real Llama-3 tokenizer
// section. The same seed gives the same weights in every --type, so all formats decode identically.
#pragma once

#include "frontend/tensor_types.h"

#include <cstdint>
#include <functional>
#include <string>

namespace bitnet {

struct SynthShape {
  int64_t hidden = 2560, layers = 30, heads = 20, kv_heads = 5, ffn = 6912, vocab = 128256, context = 4096;
  float rope_base = 500000.0f;
};

// "2b4t", "tiny", or a comma list "hidden=..,layers=..,heads=..,kv-heads=..,ffn=..,vocab=..,context=.."
// (unnamed fields keep the 2B4T values). Throws Error naming the offending field.
SynthShape parse_synth_shape(const std::string& text);

struct SynthOptions {
  SynthShape shape;
  TensorType type = TensorType::I2_S;  // of the BitLinear weights
  uint64_t seed = 1;
  std::string vocab_path;              // a GGUF holding the full Llama-3 tokenizer
};

// Writes the model to `out_path` (temporary file + rename). `progress(done, total)` per tensor.
void synthesize_model(const SynthOptions& options, const std::string& out_path,
                      const std::function<void(size_t, size_t)>& progress = {});

}  // namespace bitnet
