// The model synthesizer: writes a BitNet b1.58 GGUF of any shape with seeded random weights that follow the
// spec byte for byte (arch `bitnet-b1.58`, the 2B4T keys, ternary BitLinear weights times one f16-exact
// per-tensor scale, F32 norms, an F16 embedding that is also the LM head) and a real Llama-3 tokenizer
// section. The same seed gives the same weights in every --type, so all formats decode identically.
#pragma once

#include "frontend/gguf_writer.h"
#include "frontend/tensor_types.h"
#include "runtime/tokenizer.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace bitnet {

struct SynthShape {
  int64_t hidden = 2560, layers = 30, heads = 20, kv_heads = 5, ffn = 6912, vocab = 128256, context = 4096;
  float rope_base = 500000.0f;
  float rms_eps = 1e-5f;
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

// Pieces shared by the synthesizer and `bitnetc import`, so every BitNet GGUF this project writes has the
// same keys, tensor names, shapes and encodings.

// The architecture keys (arch `bitnet-b1.58`: hparams, rope, eps, file type for the BitLinear type).
void set_bitnet_model_keys(gguf::Writer& w, const SynthShape& shape, TensorType bitlinear_type, const std::string& name);
// The tokenizer keys (model, pre, tokens, zero scores, token types, merges, bos/eos/padding ids, add_bos).
void set_tokenizer_keys(gguf::Writer& w, const TokenizerVocab& vocab);

// One tensor of the model in file order: its GGUF name and shape [ne0, ne1] and what it holds. Embedding
// is F16, norms are F32, BitLinear weights are in the chosen type.
enum class TensorRole { Embedding, Norm, BitLinear };
struct TensorSlot {
  std::string name;
  TensorRole role;
  std::vector<int64_t> shape;
};
std::vector<TensorSlot> bitnet_tensor_slots(const SynthShape& shape);

// Writes trits (-1/0/+1, row-major [ne1][ne0]) times `scale` as a BitLinear weight of `type` (I2_S, TQ1_0,
// TQ2_0, F16, F32); any other type throws Error.
void encode_bitlinear(TensorType type, std::span<const int8_t> trits, float scale, uint8_t* out);

}  // namespace bitnet
