// Lowering of the BitNet graph (spec 4.2) into IR, and conversion of each tensor to the bundle layout.
// BitLinear weights are checked to be exactly ternary x one per-tensor scale and packed as t2; a float
// BitLinear whose values are not (e.g. a TQ file whose blocks carry different scales) stays f32 and says so.
#include "frontend/lower.h"

#include "frontend/tensor_types.h"
#include "ir/error.h"
#include "ir/weight_layout.h"

#include <cmath>
#include <cstring>

namespace bitnet {
namespace {

std::vector<float> decode_tensor(const gguf::File& file, const gguf::TensorInfo& t, I2SLayout layout = I2SLayout::X86_128) {
  std::vector<float> values(static_cast<size_t>(t.n_elements()));
  if (t.type == TensorType::I2_S) {
    if (layout == I2SLayout::X86_1x4 && t.ne[1] % 4 != 0) fail("{}: tensor '{}': --i2s-layout x86-1x4 needs rows in fours, has {}", file.path(), t.name, t.ne[1]);
    if (layout == I2SLayout::Arm64 && t.ne[0] % 64 != 0) fail("{}: tensor '{}': --i2s-layout arm-64 needs rows of a multiple of 64", file.path(), t.name);
    decode_i2_s(file.tensor_data(t), t.ne[0], t.n_elements(), layout, values.data());
  } else {
    decode_to_f32(t.type, file.tensor_data(t), t.n_elements(), values.data());
  }
  return values;
}

// The single scale s with every value in {-s, 0, +s}, or nullopt.
std::optional<float> ternary_scale(const std::vector<float>& values) {
  float s = 0;
  for (float v : values) {
    if (v != 0) {
      s = std::fabs(v);
      break;
    }
  }
  for (float v : values) {
    if (v != 0 && std::fabs(v) != s) return std::nullopt;
  }
  if (!std::isfinite(s)) return std::nullopt;
  return s;
}

// Packs ternary x scale values (already checked) into the t2 layout (ir/weight_layout.h).
void pack_t2(const float* values, int64_t n, int64_t k, float scale, uint8_t* out) {
  const int64_t stride = t2_row_bytes(k);
  std::memset(out, 0, static_cast<size_t>(t2_nbytes(n, k)));
  for (int64_t r = 0; r < n; ++r) {
    const float* row = values + r * k;
    uint8_t* codes = out + r * stride;
    for (int64_t c = 0; c < k; ++c) {
      int code = row[c] > 0 ? 2 : row[c] < 0 ? 0 : 1;
      codes[c >> 2] |= static_cast<uint8_t>(code << (2 * (c & 3)));
    }
  }
  for (int64_t r = 0; r < n; ++r) std::memcpy(out + t2_scales_offset(n, k) + 4 * r, &scale, 4);
}

class Lowerer {
 public:
  Lowerer(const gguf::File& file, const LowerOptions& options, const ModelTensors& tensors, LoweredModel& out)
      : file_(file), options_(options), tensors_(tensors), out_(out), m_(out.module) {}

  // A float weight (norms, scales, biases, the embedding) in f32, or f16 kept as is.
  int float_weight(const gguf::TensorInfo* t, std::vector<int64_t> dims, bool keep_f16) {
    if (auto existing = m_.find_weight(t->name)) return *existing;
    const gguf::File& file = file_;
    if (keep_f16 && t->type == TensorType::F16) {
      uint64_t n = t->nbytes;
      out_.weights.push_back({n, [&file, t, n](uint8_t* out) { std::memcpy(out, file.tensor_data(*t), n); }});
      return m_.add_weight(t->name, {ir::DType::F16, std::move(dims)});
    }
    auto values = decode_tensor(file, *t);
    for (float v : values) {
      if (!std::isfinite(v)) fail("{}: tensor '{}': contains NaN or Inf", file.path(), t->name);
    }
    uint64_t n = values.size() * 4;
    out_.weights.push_back({n, [values = std::move(values)](uint8_t* out) { std::memcpy(out, values.data(), values.size() * 4); }});
    return m_.add_weight(t->name, {ir::DType::F32, std::move(dims)});
  }

  // A BitLinear matrix [N = ne1, K = ne0], packed as t2 when it is exactly ternary x one scale. For the
  // ternary formats that is known from the scales alone; float formats are decoded once to check. The
  // packing itself happens inside fill, one tensor at a time.
  int bitlinear_weight(const gguf::TensorInfo* t) {
    const int64_t k = t->ne[0], n = t->ne[1];
    const gguf::File& file = file_;
    std::optional<float> scale = format_scale(*t);
    std::vector<float> values;
    if (!scale) {
      values = decode_tensor(file, *t, options_.i2s_layout);
      scale = ternary_scale(values);
    }
    if (scale && *scale > 0) {
      float s = *scale;
      I2SLayout layout = options_.i2s_layout;
      out_.weights.push_back({t2_nbytes(n, k), [&file, t, s, n, k, layout](uint8_t* out) {
                                auto values = decode_tensor(file, *t, layout);
                                pack_t2(values.data(), n, k, s, out);
                              }});
      return m_.add_weight(t->name, {ir::DType::T2, {n, k}});
    }
    if (values.empty()) values = decode_tensor(file, *t, options_.i2s_layout);
    for (float v : values) {
      if (!std::isfinite(v)) fail("{}: tensor '{}': contains NaN or Inf", file.path(), t->name);
    }
    out_.notes.push_back(fmt::format("tensor '{}' is not ternary x one scale: kept as float weights", t->name));
    uint64_t bytes = values.size() * 4;
    out_.weights.push_back({bytes, [values = std::move(values)](uint8_t* out) { std::memcpy(out, values.data(), values.size() * 4); }});
    return m_.add_weight(t->name, {ir::DType::F32, {n, k}});
  }

  // The per-tensor scale of a ternary format when every block carries the same one (always for I2_S), read
  // without decoding the codes; nullopt for float formats or differing block scales.
  std::optional<float> format_scale(const gguf::TensorInfo& t) const {
    const uint8_t* data = file_.tensor_data(t);
    auto f16_at = [](const uint8_t* p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); };
    std::optional<float> scale;
    if (t.type == TensorType::I2_S) {
      float s;
      std::memcpy(&s, data + t.n_elements() / 4, 4);
      scale = s;
    } else if (t.type == TensorType::TQ2_0 || t.type == TensorType::TQ1_0) {
      const int64_t block_bytes = type_traits(t.type).block_bytes, blocks = t.n_elements() / 256;
      scale = f16_at(data + block_bytes - 2);
      for (int64_t b = 1; b < blocks; ++b) {
        if (f16_at(data + b * block_bytes + block_bytes - 2) != *scale) return std::nullopt;
      }
    }
    if (scale && !(std::isfinite(*scale) && *scale > 0)) {
      fail("{}: tensor '{}': scale {} is not a positive finite number", file_.path(), t.name, *scale);
    }
    return scale;
  }

  // BitLinear, then the optional output scale and bias (the fork's order, spec 4.8).
  int linear(int x, const gguf::TensorInfo* w, const gguf::TensorInfo* scale, const gguf::TensorInfo* bias, const std::string& name) {
    int y = m_.add_node(ir::Op::BitLinear, {x}, {bitlinear_weight(w)}, {{"act_quant", options_.act_quant}}, name);
    if (scale) {
      float s = decode_tensor(file_, *scale)[0];
      if (!std::isfinite(s)) fail("{}: tensor '{}': scale is {}", file_.path(), scale->name, s);
      y = m_.add_node(ir::Op::Scale, {y}, {float_weight(scale, {1}, false)}, {}, name + ".scaled");
    }
    if (bias) y = m_.add_node(ir::Op::AddBias, {y}, {float_weight(bias, {w->ne[1]}, false)}, {}, name + ".biased");
    return y;
  }

  int norm(int x, const gguf::TensorInfo* w, const std::string& name) {
    return m_.add_node(ir::Op::RmsNorm, {x}, {float_weight(w, {w->ne[0]}, false)}, {{"eps", static_cast<double>(hp().rms_eps)}}, name);
  }

  int rope(int x, int pos, const std::string& name) {
    std::vector<int> weights;
    if (out_tensors().rope_freqs) weights.push_back(float_weight(out_tensors().rope_freqs, {hp().head_dim / 2}, false));
    return m_.add_node(ir::Op::Rope, {x, pos}, weights,
                       {{"head_dim", hp().head_dim}, {"base", static_cast<double>(hp().rope_base)}}, name);
  }

  void run() {
    if (options_.act_quant != "int8_token" && options_.act_quant != "none") {
      fail("--act-quant: '{}' is not one of int8-token, none", options_.act_quant);
    }
    ir::Type tokens{ir::DType::I32, {ir::kSymbolicT}};
    int tok = m_.add_input("tokens", tokens), pos = m_.add_input("pos", tokens), seq = m_.add_input("seq", tokens);
    const auto& T = out_tensors();
    int embd = float_weight(T.token_embd, {hp().n_vocab, hp().n_embd}, true);
    int x = m_.add_node(ir::Op::Embed, {tok}, {embd}, {}, "embd");
    for (int64_t l = 0; l < hp().n_layer; ++l) {
      const LayerTensors& L = T.layers[l];
      std::string p = fmt::format("b{}.", l);
      int h = norm(x, L.attn_norm, p + "attn_in");
      int q = rope(linear(h, L.attn_q, L.scale_q, L.bias_q, p + "q"), pos, p + "q_rope");
      int k = rope(linear(h, L.attn_k, L.scale_k, L.bias_k, p + "k"), pos, p + "k_rope");
      int v = linear(h, L.attn_v, L.scale_v, L.bias_v, p + "v");
      int a = m_.add_node(ir::Op::Attention, {q, k, v, pos, seq}, {},
                          {{"layer", l}, {"n_head", hp().n_head}, {"n_head_kv", hp().n_head_kv}}, p + "attn");
      a = norm(a, L.attn_sub_norm, p + "attn_sub");
      int o = linear(a, L.attn_output, L.scale_o, L.bias_o, p + "o");
      int resid = m_.add_node(ir::Op::Add, {x, o}, {}, {}, p + "resid");
      int f = norm(resid, L.ffn_norm, p + "ffn_in");
      int gate = linear(f, L.ffn_gate, L.scale_gate, nullptr, p + "gate");
      int up = linear(f, L.ffn_up, L.scale_up, nullptr, p + "up");
      ir::Op act = hp().ffn_act == FfnActivation::Relu2 ? ir::Op::Relu2 : ir::Op::Silu;
      int g = m_.add_node(act, {gate}, {}, {}, p + "act");
      int gu = m_.add_node(ir::Op::Mul, {g, up}, {}, {}, p + "gated");
      gu = norm(gu, L.ffn_sub_norm, p + "ffn_sub");
      int down = linear(gu, L.ffn_down, L.scale_down, nullptr, p + "down");
      x = m_.add_node(ir::Op::Add, {resid, down}, {}, {}, p + "out");
    }
    int final_norm = norm(x, T.output_norm, "final_norm");
    int head = T.output ? float_weight(T.output, {hp().n_vocab, hp().n_embd}, true) : embd;
    m_.output = m_.add_node(ir::Op::MatMul, {final_norm}, {head}, {}, "logits");
    ir::verify(m_);
  }

 private:
  const HParams& hp() const { return out_.hparams; }
  const ModelTensors& out_tensors() const { return tensors_; }

  const gguf::File& file_;
  const LowerOptions& options_;
  const ModelTensors& tensors_;
  LoweredModel& out_;
  ir::Module& m_;
};

}  // namespace

LoweredModel lower_model(const gguf::File& file, const LowerOptions& options) {
  LoweredModel out;
  auto description = describe_model(file, options.ffn_act);
  out.hparams = description.hparams;
  out.notes = description.notes;
  Lowerer(file, options, description.tensors, out).run();
  return out;
}

}  // namespace bitnet
