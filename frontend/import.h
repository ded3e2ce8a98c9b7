// Importing a model trained outside bitnetc (training/train.py): a tokenizer JSON and a weight dump become a
// BitNet b1.58 GGUF with the same keys, tensor names, shapes and encodings as the synthesizer's and the real
// 2B4T file's (frontend/synth.h shares them). `bitnetc import` (tools/bitnetc_import.cpp) is the command line.
//
// Tokenizer JSON (training/train_bpe.py writes it):
//   {"format": "bitnetc-bpe-v1", "model": "gpt2", "pre": "llama-bpe",
//    "tokens": ["!", "\"", ..., "<|begin_of_text|>", ...],   token text of id i, GPT-2 byte-to-unicode form
//    "merges": ["Ġ t", "h e", ...],                           "left right", rank = index
//    "bos_id": 4093, "eos_id": 4094, "eot_id": 4095}          eot_id optional; these ids are CONTROL tokens,
//                                                            all others NORMAL
//
// Weight dump: a folder DIR holding DIR/manifest.json and one little-endian data file it names:
//   {"format": "bitnetc-weights-v1",
//    "name": "brown-25m",                                     optional, becomes general.name
//    "config": {"hidden": 512, "layers": 8, "heads": 8, "kv_heads": 2, "ffn": 1280, "vocab": 4096,
//               "context": 256, "rope_base": 500000.0, "rms_eps": 1e-5},
//    "data": "weights.bin",                                   file name inside DIR
//    "tensors": {"token_embd.weight": {"dtype": "f16", "shape": [512, 4096], "offset": 0},
//                "blk.0.attn_q.weight": {"dtype": "trit2", "shape": [512, 512], "offset": 4194304,
//                                        "scale": 0.01171875}, ...}}
// Tensor names and shapes are the GGUF ones ([ne0 = in features, ne1 = out features]; the bytes are PyTorch's
// weight[out][in] row by row): token_embd, output_norm and per layer the four norms and seven BitLinear
// weights; every one must be present and nothing else. dtype:
//   f32, f16  — IEEE little-endian, 4 or 2 bytes per element (embedding and norms);
//   trit2     — BitLinear weights: 2-bit codes, 4 per byte, element i in bits 2·(i%4)..2·(i%4)+1 of byte i/4
//               (the first element in the lowest bits), code = trit + 1 (0 = −1, 1 = 0, 2 = +1; 3 is an
//               error), ceil(n/4) bytes; the weight is trit × "scale" (one per tensor, > 0).
// `offset` is the tensor's first byte in the data file. The scale is rounded to the nearest f16 value so
// that every output type (TQ's block scale is f16, I2_S's tensor scale f32) decodes to the same weights;
// training/train.py exports f16-exact scales, so nothing changes for its dumps.
// In the GGUF the embedding (also the LM head; no output.weight) is F16, norms are F32, BitLinear weights
// are in the type asked for. Every defect is an Error naming the file and the field.
#pragma once

#include "frontend/synth.h"
#include "frontend/tensor_types.h"
#include "runtime/tokenizer.h"

#include <string>

namespace bitnet {

// Reads and validates a tokenizer JSON (the vocabulary must build a Tokenizer). eot_id is -1 when absent.
struct ImportedTokenizer {
  TokenizerVocab vocab;
  int32_t eot_id = -1;
};
ImportedTokenizer read_tokenizer_json(const std::string& path);

// A vocabulary-only GGUF (arch bitnet-b1.58, vocab_size and the tokenizer keys; no tensors), enough for
// `bitnetc tokenize`.
void write_vocab_gguf(const ImportedTokenizer& tokenizer, const std::string& out_path);

struct ImportSummary {
  SynthShape shape;
  int64_t parameters = 0;       // elements of all tensors
  int scales_rounded = 0;       // BitLinear scales that were not f16-exact
};

// Tokenizer JSON + weight dump folder → a full model GGUF with BitLinear weights in `type` (I2_S, TQ1_0,
// TQ2_0, F16 or F32). Everything is validated before the output (temporary + rename) is written.
ImportSummary import_model(const std::string& tokenizer_json, const std::string& weights_dir, TensorType type,
                           const std::string& out_path);

}  // namespace bitnet
