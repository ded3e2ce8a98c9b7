// Lowering: a recognised BitNet GGUF becomes one IR function for a step of T tokens (spec 4.2), plus the
// bytes of every weight in the bundle's layout. Activation quantization is an attribute of each BitLinear,
// chosen here: int8_token (the model's own per-token absmax int8, the default) or none (float activations).
#pragma once

#include "frontend/gguf.h"
#include "frontend/model.h"
#include "frontend/tensor_types.h"
#include "ir/ir.h"

#include <functional>
#include <string>
#include <vector>

namespace bitnet {

struct LowerOptions {
  std::string act_quant = "int8_token";  // or "none"
  std::string ffn_act;                   // "", relu2, silu: overrides the file
  I2SLayout i2s_layout = I2SLayout::X86_128;  // how to read I2_S bytes (spec 2.5)
};

// One weight's bytes in the bundle layout of its IR dtype (see runtime/weights.h), produced on demand so a
// 1.2 GB model is converted one tensor at a time.
struct WeightPayload {
  uint64_t nbytes;
  std::function<void(uint8_t* out)> fill;
};

struct LoweredModel {
  HParams hparams;
  ir::Module module;
  std::vector<WeightPayload> weights;  // indexed like module.weights
  std::vector<std::string> notes;
};

// Throws bitnet::Error naming the file and the key or tensor. `file` must outlive the payloads' fill calls.
LoweredModel lower_model(const gguf::File& file, const LowerOptions& options);

}  // namespace bitnet
