// Architecture recognition: keys are read with the arch string as prefix (spec 3.2), defaults applied where
// the spec allows one, and every tensor is checked for presence, dtype class and exact shape.
#include "frontend/model.h"

#include "ir/error.h"

#include <cmath>

namespace bitnet {
namespace {

bool is_float_type(TensorType t) { return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16; }
bool is_bitlinear_type(TensorType t) {
  return is_float_type(t) || t == TensorType::I2_S || t == TensorType::TQ1_0 || t == TensorType::TQ2_0;
}

class Recognizer {
 public:
  Recognizer(const gguf::File& file, ModelDescription& out) : file_(file), out_(out) {}

  int64_t required(const std::string& suffix) {
    auto v = file_.get_uint(key(suffix));
    if (!v) fail("{}: key '{}' is missing (required for arch {})", file_.path(), key(suffix), out_.hparams.arch);
    return checked(suffix, *v);
  }
  int64_t optional(const std::string& suffix, int64_t fallback) {
    auto v = file_.get_uint(key(suffix));
    return v ? checked(suffix, *v) : fallback;
  }
  std::string key(const std::string& suffix) const { return out_.hparams.arch + "." + suffix; }

  const gguf::TensorInfo* tensor(const std::string& name, bool is_required) {
    const auto* t = file_.tensor(name);
    if (!t && is_required) fail("{}: tensor '{}' is missing", file_.path(), name);
    if (t) used_.push_back(name);
    return t;
  }
  void expect_shape(const gguf::TensorInfo* t, int64_t ne0, int64_t ne1, const char* meaning) {
    if (!t) return;
    bool ok = t->ne[0] == ne0 && t->ne[1] == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
      fail("{}: tensor '{}': shape [{}, {}, {}, {}] but the hparams require [{}, {}] ({})", file_.path(), t->name, t->ne[0],
           t->ne[1], t->ne[2], t->ne[3], ne0, ne1, meaning);
    }
  }
  void expect_type(const gguf::TensorInfo* t, bool ok, const char* accepted) {
    if (t && !ok) fail("{}: tensor '{}': type {} is not accepted here (accepted: {})", file_.path(), t->name, tensor_type_name(t->type), accepted);
  }
  const std::vector<std::string>& used() const { return used_; }

 private:
  int64_t checked(const std::string& suffix, uint64_t v) {
    if (v > (1ull << 31)) fail("{}: key '{}': value {} is out of range", file_.path(), key(suffix), v);
    return static_cast<int64_t>(v);
  }
  const gguf::File& file_;
  ModelDescription& out_;
  std::vector<std::string> used_;
};

}  // namespace

bool is_bitnet_arch(const std::string& arch) {
  return arch == "bitnet" || arch == "bitnet-25" || arch == "bitnet-b1.58" || arch == "bitnet-1.58";
}

const char* ffn_activation_name(FfnActivation act) { return act == FfnActivation::Relu2 ? "relu2" : "silu"; }

ModelDescription describe_model(const gguf::File& file, const std::string& ffn_act_override) {
  ModelDescription out;
  HParams& hp = out.hparams;
  const std::string& path = file.path();
  auto arch = file.get_string("general.architecture");
  if (!arch) fail("{}: key 'general.architecture' is missing", path);
  if (!is_bitnet_arch(*arch)) {
    fail("{}: key 'general.architecture': '{}' is not a BitNet architecture (bitnet, bitnet-25, bitnet-b1.58, bitnet-1.58)", path, *arch);
  }
  hp.arch = *arch;
  hp.name = file.get_string("general.name").value_or("");
  Recognizer r(file, out);

  hp.n_embd = r.required("embedding_length");
  hp.n_layer = r.required("block_count");
  hp.n_ff = r.required("feed_forward_length");
  hp.n_head = r.required("attention.head_count");
  hp.n_head_kv = r.optional("attention.head_count_kv", hp.n_head);
  hp.n_ctx_train = r.optional("context_length", 4096);
  if (hp.n_layer < 1 || hp.n_layer > 1024) fail("{}: key '{}': {} is outside [1, 1024]", path, r.key("block_count"), hp.n_layer);
  if (hp.n_embd < 1) fail("{}: key '{}': must be positive", path, r.key("embedding_length"));
  if (hp.n_ff < 1) fail("{}: key '{}': must be positive", path, r.key("feed_forward_length"));
  if (hp.n_head < 1 || hp.n_embd % hp.n_head != 0) {
    fail("{}: key '{}': {} heads do not divide embedding_length {}", path, r.key("attention.head_count"), hp.n_head, hp.n_embd);
  }
  if (hp.n_head_kv < 1 || hp.n_head % hp.n_head_kv != 0) {
    fail("{}: key '{}': {} KV heads do not divide head_count {}", path, r.key("attention.head_count_kv"), hp.n_head_kv, hp.n_head);
  }
  hp.head_dim = hp.n_embd / hp.n_head;
  if (hp.head_dim % 2 != 0) fail("{}: head_dim {} (embedding_length / head_count) must be even for RoPE", path, hp.head_dim);
  int64_t rot = r.optional("rope.dimension_count", hp.head_dim);
  if (rot != hp.head_dim) fail("{}: key '{}': {} but head_dim is {} (partial rotary is not supported)", path, r.key("rope.dimension_count"), rot, hp.head_dim);
  for (const char* k : {"attention.key_length", "attention.value_length"}) {
    int64_t v = r.optional(k, hp.head_dim);
    if (v != hp.head_dim) fail("{}: key '{}': {} but head_dim is {}", path, r.key(k), v, hp.head_dim);
  }
  if (auto scaling = file.get_string(r.key("rope.scaling.type")); scaling && *scaling != "none") {
    fail("{}: key '{}': RoPE scaling '{}' is not supported", path, r.key("rope.scaling.type"), *scaling);
  }

  auto eps = file.get_float(r.key("attention.layer_norm_rms_epsilon"));
  if (!eps) fail("{}: key '{}' is missing (required for arch {})", path, r.key("attention.layer_norm_rms_epsilon"), hp.arch);
  if (!(*eps > 0 && *eps < 1e-2)) fail("{}: key '{}': {} is outside (0, 0.01)", path, r.key("attention.layer_norm_rms_epsilon"), *eps);
  hp.rms_eps = static_cast<float>(*eps);
  auto base = file.get_float(r.key("rope.freq_base"));
  if (!base) out.notes.push_back(fmt::format("key '{}' is absent: using llama.cpp's default 10000", r.key("rope.freq_base")));
  hp.rope_base = static_cast<float>(base.value_or(10000.0));
  if (!(hp.rope_base > 1 && std::isfinite(hp.rope_base))) fail("{}: key '{}': {} is not a valid RoPE base", path, r.key("rope.freq_base"), hp.rope_base);

  // FFN activation: the 2B4T archs are relu²; plain `bitnet` is SiLU in llama.cpp unless the file says so.
  hp.ffn_act = hp.arch == "bitnet" ? FfnActivation::Silu : FfnActivation::Relu2;
  std::string act = ffn_act_override;
  if (act.empty()) act = file.get_string(r.key("hidden_activation")).value_or("");
  if (act == "relu2") hp.ffn_act = FfnActivation::Relu2;
  else if (act == "silu") hp.ffn_act = FfnActivation::Silu;
  else if (!act.empty()) fail("{}: key '{}': activation '{}' is not supported (relu2, silu)", path, r.key("hidden_activation"), act);

  ModelTensors& t = out.tensors;
  t.token_embd = r.tensor("token_embd.weight", true);
  r.expect_type(t.token_embd, is_float_type(t.token_embd->type) || t.token_embd->type == TensorType::Q8_0, "F32, F16, BF16, Q8_0");
  hp.n_vocab = t.token_embd->ne[1];
  r.expect_shape(t.token_embd, hp.n_embd, hp.n_vocab, "[embedding_length, vocab]");
  int64_t vocab_key = r.optional("vocab_size", hp.n_vocab);
  if (vocab_key != hp.n_vocab) fail("{}: key '{}': {} but token_embd has {} rows", path, r.key("vocab_size"), vocab_key, hp.n_vocab);
  if (auto n_tokens = file.array_length("tokenizer.ggml.tokens"); n_tokens && static_cast<int64_t>(*n_tokens) != hp.n_vocab) {
    fail("{}: key 'tokenizer.ggml.tokens': {} tokens but token_embd has {} rows", path, *n_tokens, hp.n_vocab);
  }
  t.output_norm = r.tensor("output_norm.weight", true);
  r.expect_shape(t.output_norm, hp.n_embd, 1, "[embedding_length]");
  t.output = r.tensor("output.weight", false);
  r.expect_shape(t.output, hp.n_embd, hp.n_vocab, "[embedding_length, vocab]");
  r.expect_type(t.output, t.output && (is_float_type(t.output->type) || t.output->type == TensorType::Q8_0), "F32, F16, BF16, Q8_0");
  hp.tied_head = t.output == nullptr;
  t.rope_freqs = r.tensor("rope_freqs.weight", false);
  r.expect_shape(t.rope_freqs, hp.head_dim / 2, 1, "[head_dim / 2]");
  r.expect_type(t.rope_freqs, t.rope_freqs && t.rope_freqs->type == TensorType::F32, "F32");

  const int64_t q_out = hp.n_head * hp.head_dim, kv_out = hp.n_head_kv * hp.head_dim;
  for (int64_t l = 0; l < hp.n_layer; ++l) {
    auto name = [l](const char* what, const char* kind) { return fmt::format("blk.{}.{}.{}", l, what, kind); };
    auto norm = [&](const char* what, int64_t n) {
      const auto* w = r.tensor(name(what, "weight"), true);
      r.expect_shape(w, n, 1, "a norm over the features");
      r.expect_type(w, is_float_type(w->type), "F32, F16, BF16");
      return w;
    };
    auto bitlinear = [&](const char* what, int64_t in, int64_t out_features, const gguf::TensorInfo** scale,
                         const gguf::TensorInfo** bias) {
      const auto* w = r.tensor(name(what, "weight"), true);
      r.expect_shape(w, in, out_features, "[in_features, out_features]");
      r.expect_type(w, is_bitlinear_type(w->type), "I2_S, TQ1_0, TQ2_0, F32, F16, BF16");
      *scale = r.tensor(name(what, "scale"), false);
      r.expect_shape(*scale, 1, 1, "a per-tensor scale");
      r.expect_type(*scale, *scale && (*scale)->type == TensorType::F32, "F32");
      if (bias) {
        *bias = r.tensor(name(what, "bias"), false);
        r.expect_shape(*bias, out_features, 1, "[out_features]");
        r.expect_type(*bias, *bias && is_float_type((*bias)->type), "F32, F16, BF16");
      } else if (file.tensor(name(what, "bias"))) {
        fail("{}: tensor '{}': FFN biases are not part of any BitNet graph", path, name(what, "bias"));
      }
      return w;
    };
    LayerTensors L{};
    L.attn_norm = norm("attn_norm", hp.n_embd);
    L.attn_q = bitlinear("attn_q", hp.n_embd, q_out, &L.scale_q, &L.bias_q);
    L.attn_k = bitlinear("attn_k", hp.n_embd, kv_out, &L.scale_k, &L.bias_k);
    L.attn_v = bitlinear("attn_v", hp.n_embd, kv_out, &L.scale_v, &L.bias_v);
    L.attn_sub_norm = norm("attn_sub_norm", q_out);
    L.attn_output = bitlinear("attn_output", q_out, hp.n_embd, &L.scale_o, &L.bias_o);
    L.ffn_norm = norm("ffn_norm", hp.n_embd);
    L.ffn_gate = bitlinear("ffn_gate", hp.n_embd, hp.n_ff, &L.scale_gate, nullptr);
    L.ffn_up = bitlinear("ffn_up", hp.n_embd, hp.n_ff, &L.scale_up, nullptr);
    L.ffn_sub_norm = norm("ffn_sub_norm", hp.n_ff);
    L.ffn_down = bitlinear("ffn_down", hp.n_ff, hp.n_embd, &L.scale_down, nullptr);
    t.layers.push_back(L);
  }
  if (file.tensor(fmt::format("blk.{}.attn_norm.weight", hp.n_layer))) {
    fail("{}: tensor 'blk.{}.attn_norm.weight' exists but block_count is {}", path, hp.n_layer, hp.n_layer);
  }
  // Id 36 is I2_S only in Microsoft's files (spec 2.1); the arch check above made this a BitNet file.
  size_t ignored = file.tensors().size() - r.used().size();
  if (ignored > 0) out.notes.push_back(fmt::format("{} tensors not used by the BitNet graph were ignored", ignored));
  return out;
}

}  // namespace bitnet
