// Architecture recognition (spec section 3): turns a validated GGUF into one hyper-parameter struct and a
// table of the tensors the BitNet graph needs, checking every key and every shape against the others.
// Nothing model-specific lives past the frontend except what this struct carries into the IR.
#pragma once

#include "frontend/gguf.h"

#include <string>
#include <vector>

namespace bitnet {

enum class FfnActivation { Relu2, Silu };

struct HParams {
  std::string arch;  // bitnet-b1.58, bitnet-25, bitnet-1.58 or bitnet
  std::string name;  // general.name, informational
  int64_t n_vocab = 0;
  int64_t n_ctx_train = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_ff = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float rms_eps = 0;
  float rope_base = 0;
  FfnActivation ffn_act = FfnActivation::Relu2;
  bool tied_head = true;  // no output.weight: the LM head is token_embd
};

// The tensors of one layer; optional ones are nullptr.
struct LayerTensors {
  const gguf::TensorInfo *attn_norm, *attn_q, *attn_k, *attn_v, *attn_sub_norm, *attn_output;
  const gguf::TensorInfo *ffn_norm, *ffn_gate, *ffn_up, *ffn_sub_norm, *ffn_down;
  // Optional per-matrix output scales ([1], F32) and attention biases (spec 3.3).
  const gguf::TensorInfo *scale_q, *scale_k, *scale_v, *scale_o, *scale_gate, *scale_up, *scale_down;
  const gguf::TensorInfo *bias_q, *bias_k, *bias_v, *bias_o;
};

struct ModelTensors {
  const gguf::TensorInfo* token_embd = nullptr;
  const gguf::TensorInfo* output_norm = nullptr;
  const gguf::TensorInfo* output = nullptr;      // untied head, optional
  const gguf::TensorInfo* rope_freqs = nullptr;  // optional frequency factors [head_dim / 2]
  std::vector<LayerTensors> layers;
};

struct ModelDescription {
  HParams hparams;
  ModelTensors tensors;
  std::vector<std::string> notes;  // warnings worth printing (ignored tensors, defaulted keys)
};

// Recognises the architecture and validates keys and shapes; throws bitnet::Error naming the file and the key
// or tensor. `ffn_act_override` ("", "relu2", "silu") wins over the file.
ModelDescription describe_model(const gguf::File& file, const std::string& ffn_act_override = "");

bool is_bitnet_arch(const std::string& arch);
const char* ffn_activation_name(FfnActivation act);

}  // namespace bitnet
