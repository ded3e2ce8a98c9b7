// Synthesizer. Weight statistics follow the team's golden models: trits iid with about one third zeros,
// scale ~ U(0.6, 1.4) / sqrt(2/3 · fan_in) rounded to an f16-exact value (so TQ's f16 block scale and
// I2_S's f32 tensor scale hold the same number), norm weights 1 + 0.2·N(0,1), embedding 0.15·N(0,1).
// Every tensor draws from its own generator seeded by (seed, tensor name), so tensors are independent of
// the order they are written in and of the output type.
#include "frontend/synth.h"

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "ir/error.h"

#include <cmath>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

namespace bitnet {
namespace {

// splitmix64: tiny, fast, and good enough for weights that only need the right statistics.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  // Sum of four uniforms, rescaled: close enough to N(0,1) for synthetic weights and much cheaper.
  float normal() {
    uint64_t r = next();
    float s = 0;
    for (int i = 0; i < 4; ++i) s += static_cast<float>((r >> (16 * i)) & 0xFFFF) * (1.0f / 65536.0f);
    return (s - 2.0f) * 1.7320508f;
  }
};

uint64_t name_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Fills `trits` in parallel chunks; each chunk has its own generator so the result does not depend on the
// number of threads.
void random_trits(uint64_t seed, std::vector<int8_t>& trits) {
  constexpr size_t kChunk = 1 << 20;
  size_t chunks = (trits.size() + kChunk - 1) / kChunk;
  auto work = [&](size_t first, size_t step) {
    for (size_t c = first; c < chunks; c += step) {
      Rng rng(seed + 0x1000 * c);
      size_t end = std::min(trits.size(), (c + 1) * kChunk);
      for (size_t i = c * kChunk; i < end; i += 8) {
        uint64_t r = rng.next();
        for (size_t k = 0; k < 8 && i + k < end; ++k) {
          uint8_t byte = static_cast<uint8_t>(r >> (8 * k));
          trits[i + k] = static_cast<int8_t>(byte < 85 ? -1 : byte < 171 ? 0 : 1);
        }
      }
    }
  };
  unsigned n_threads = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < n_threads; ++t) threads.emplace_back(work, t, n_threads);
  work(0, n_threads);
  for (auto& t : threads) t.join();
}

float f16_exact(float x) { return f16_to_f32(f32_to_f16(x)); }

// The first (vocab - 3) BPE ranks of Llama-3, its merges restricted to them, and three control tokens, as in
// the team's golden models; or the whole tokenizer when vocab is its full size.
TokenizerVocab load_vocab(const std::string& path, int64_t vocab) {
  auto file = gguf::File::open(path);
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  auto types = file.get_i32_array("tokenizer.ggml.token_type");
  auto merges = file.get_string_array("tokenizer.ggml.merges");
  if (!tokens || !types || !merges || types->size() != tokens->size()) {
    fail("{}: not a tokenizer GGUF (needs tokenizer.ggml.tokens, token_type, merges)", path);
  }
  TokenizerVocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  v.add_bos = true;
  auto full = static_cast<int64_t>(tokens->size());
  if (vocab == full) {
    v.tokens = std::move(*tokens);
    v.token_types = std::move(*types);
    v.merges = std::move(*merges);
    v.bos_id = static_cast<int32_t>(file.get_uint("tokenizer.ggml.bos_token_id").value_or(128000));
    v.eos_id = static_cast<int32_t>(file.get_uint("tokenizer.ggml.eos_token_id").value_or(128001));
    return v;
  }
  int64_t n_bpe = vocab - 3;
  if (n_bpe < 256 || vocab > full) fail("--shape: vocab={} must be in [259, {}] or exactly {}", vocab, full - 1, full);
  v.tokens.assign(tokens->begin(), tokens->begin() + n_bpe);
  v.token_types.assign(n_bpe, 1);
  std::unordered_map<std::string, int64_t> rank;
  for (int64_t i = 0; i < n_bpe; ++i) rank.emplace(v.tokens[i], i);
  for (auto& m : *merges) {
    auto space = m.find(' ');
    if (space == std::string::npos) continue;
    std::string left = m.substr(0, space), right = m.substr(space + 1);
    if (rank.count(left) && rank.count(right) && rank.count(left + right)) v.merges.push_back(m);
  }
  for (const char* special : {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"}) {
    v.tokens.push_back(special);
    v.token_types.push_back(3);
  }
  v.bos_id = static_cast<int32_t>(n_bpe);
  v.eos_id = static_cast<int32_t>(n_bpe + 1);
  return v;
}

}  // namespace

SynthShape parse_synth_shape(const std::string& text) {
  SynthShape s;
  if (text.empty() || text == "2b4t") return s;
  if (text == "tiny") return {256, 2, 4, 2, 512, 4096, 256, 500000.0f};
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) fail("--shape: '{}' is not name=value (or 2b4t, tiny)", item);
    std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    int64_t v = 0;
    try {
      size_t used = 0;
      v = std::stoll(value, &used);
      if (used != value.size()) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      fail("--shape: {}: '{}' is not an integer", name, value);
    }
    if (v < 1 || v > (1 << 24)) fail("--shape: {}={} is outside [1, 16777216]", name, v);
    if (name == "hidden") s.hidden = v;
    else if (name == "layers") s.layers = v;
    else if (name == "heads") s.heads = v;
    else if (name == "kv-heads") s.kv_heads = v;
    else if (name == "ffn") s.ffn = v;
    else if (name == "vocab") s.vocab = v;
    else if (name == "context") s.context = v;
    else fail("--shape: unknown field '{}' (hidden, layers, heads, kv-heads, ffn, vocab, context)", name);
  }
  return s;
}

void set_bitnet_model_keys(gguf::Writer& w, const SynthShape& s, TensorType wtype, const std::string& name) {
  const std::string arch = "bitnet-b1.58";
  w.set_string("general.architecture", arch);
  w.set_string("general.name", name);
  w.set_u32(arch + ".vocab_size", static_cast<uint32_t>(s.vocab));
  w.set_u32(arch + ".context_length", static_cast<uint32_t>(s.context));
  w.set_u32(arch + ".embedding_length", static_cast<uint32_t>(s.hidden));
  w.set_u32(arch + ".block_count", static_cast<uint32_t>(s.layers));
  w.set_u32(arch + ".feed_forward_length", static_cast<uint32_t>(s.ffn));
  w.set_u32(arch + ".rope.dimension_count", static_cast<uint32_t>(s.hidden / s.heads));
  w.set_u32(arch + ".attention.head_count", static_cast<uint32_t>(s.heads));
  w.set_u32(arch + ".attention.head_count_kv", static_cast<uint32_t>(s.kv_heads));
  w.set_f32(arch + ".attention.layer_norm_rms_epsilon", s.rms_eps);
  w.set_f32(arch + ".rope.freq_base", s.rope_base);
  uint32_t file_type = wtype == TensorType::F32 ? 0 : wtype == TensorType::F16 ? 1 : wtype == TensorType::TQ1_0 ? 36
                     : wtype == TensorType::TQ2_0 ? 37 : wtype == TensorType::I2_S ? 40 : 0;
  w.set_u32("general.file_type", file_type);
  w.set_u32("general.quantization_version", 2);
}

void set_tokenizer_keys(gguf::Writer& w, const TokenizerVocab& vocab) {
  w.set_bool("tokenizer.ggml.add_bos_token", vocab.add_bos);
  w.set_string("tokenizer.ggml.model", vocab.model);
  w.set_string("tokenizer.ggml.pre", vocab.pre);
  w.set_string_array("tokenizer.ggml.tokens", vocab.tokens);
  w.set_f32_array("tokenizer.ggml.scores", std::vector<float>(vocab.tokens.size(), 0.0f));
  w.set_i32_array("tokenizer.ggml.token_type", vocab.token_types);
  w.set_string_array("tokenizer.ggml.merges", vocab.merges);
  w.set_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(vocab.bos_id));
  w.set_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(vocab.eos_id));
  w.set_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(vocab.eos_id));
}

std::vector<TensorSlot> bitnet_tensor_slots(const SynthShape& s) {
  const int64_t kv_dim = s.kv_heads * (s.hidden / s.heads);
  std::vector<TensorSlot> slots = {
      {"token_embd.weight", TensorRole::Embedding, {s.hidden, s.vocab}},
      {"output_norm.weight", TensorRole::Norm, {s.hidden}},
  };
  for (int64_t l = 0; l < s.layers; ++l) {
    auto add = [&](const char* what, TensorRole role, std::vector<int64_t> shape) {
      slots.push_back({fmt::format("blk.{}.{}.weight", l, what), role, std::move(shape)});
    };
    add("attn_norm", TensorRole::Norm, {s.hidden});
    add("attn_q", TensorRole::BitLinear, {s.hidden, s.hidden});
    add("attn_k", TensorRole::BitLinear, {s.hidden, kv_dim});
    add("attn_v", TensorRole::BitLinear, {s.hidden, kv_dim});
    add("attn_sub_norm", TensorRole::Norm, {s.hidden});
    add("attn_output", TensorRole::BitLinear, {s.hidden, s.hidden});
    add("ffn_norm", TensorRole::Norm, {s.hidden});
    add("ffn_gate", TensorRole::BitLinear, {s.hidden, s.ffn});
    add("ffn_up", TensorRole::BitLinear, {s.hidden, s.ffn});
    add("ffn_sub_norm", TensorRole::Norm, {s.ffn});
    add("ffn_down", TensorRole::BitLinear, {s.ffn, s.hidden});
  }
  return slots;
}

void encode_bitlinear(TensorType type, std::span<const int8_t> trits, float scale, uint8_t* out) {
  switch (type) {
    case TensorType::I2_S: encode_i2_s(trits, scale, out); break;
    case TensorType::TQ2_0: encode_tq2_0(trits, scale, out); break;
    case TensorType::TQ1_0: encode_tq1_0(trits, scale, out); break;
    case TensorType::F16:
      for (size_t i = 0; i < trits.size(); ++i) {
        uint16_t h = f32_to_f16(trits[i] * scale);
        std::memcpy(out + 2 * i, &h, 2);
      }
      break;
    case TensorType::F32:
      for (size_t i = 0; i < trits.size(); ++i) {
        float f = trits[i] * scale;
        std::memcpy(out + 4 * i, &f, 4);
      }
      break;
    default: fail("{} is not a BitLinear weight type (i2_s, tq1_0, tq2_0, f16, f32)", tensor_type_name(type));
  }
}

void synthesize_model(const SynthOptions& options, const std::string& out_path,
                      const std::function<void(size_t, size_t)>& progress) {
  const SynthShape& s = options.shape;
  const TensorType wtype = options.type;
  const int64_t block = type_traits(wtype).block_elements;
  if (s.hidden % s.heads != 0) fail("--shape: heads={} does not divide hidden={}", s.heads, s.hidden);
  if (s.heads % s.kv_heads != 0) fail("--shape: kv-heads={} does not divide heads={}", s.kv_heads, s.heads);
  if ((s.hidden / s.heads) % 2 != 0) fail("--shape: head_dim {} must be even", s.hidden / s.heads);
  if (s.hidden % block != 0 || s.ffn % block != 0) {
    fail("--shape: hidden={} and ffn={} must be multiples of {} for --type {}", s.hidden, s.ffn, block, tensor_type_name(wtype));
  }
  if (options.vocab_path.empty()) fail("synth: no tokenizer source (--vocab FILE.gguf)");
  TokenizerVocab vocab = load_vocab(options.vocab_path, s.vocab);

  gguf::Writer w;
  set_bitnet_model_keys(w, s, wtype, "bitnetc-synth");
  set_tokenizer_keys(w, vocab);

  const uint64_t seed = options.seed;
  auto embedding = [seed, s](const std::string& name) {
    return [seed, s, name](uint8_t* out) {
      Rng rng(name_seed(seed, name));
      for (int64_t i = 0; i < s.hidden * s.vocab; ++i) {
        uint16_t h = f32_to_f16(0.15f * rng.normal());
        std::memcpy(out + 2 * i, &h, 2);
      }
    };
  };
  auto norm = [seed](const std::string& name, int64_t n) {
    return [seed, name, n](uint8_t* out) {
      Rng rng(name_seed(seed, name));
      for (int64_t i = 0; i < n; ++i) {
        float v = f16_exact(1.0f + 0.2f * rng.normal());
        std::memcpy(out + 4 * i, &v, 4);
      }
    };
  };
  auto bitlinear = [seed, wtype](const std::string& name, int64_t in, int64_t out_features) {
    return [seed, wtype, name, in, out_features](uint8_t* out) {
      Rng rng(name_seed(seed, name));
      float scale = f16_exact((0.6f + 0.8f * rng.uniform()) / std::sqrt(2.0f / 3.0f * static_cast<float>(in)));
      std::vector<int8_t> trits(static_cast<size_t>(in * out_features));
      random_trits(rng.next(), trits);
      encode_bitlinear(wtype, trits, scale, out);
    };
  };

  for (const TensorSlot& slot : bitnet_tensor_slots(s)) {
    switch (slot.role) {
      case TensorRole::Embedding: w.add_tensor(slot.name, TensorType::F16, slot.shape, embedding(slot.name)); break;
      case TensorRole::Norm: w.add_tensor(slot.name, TensorType::F32, slot.shape, norm(slot.name, slot.shape[0])); break;
      case TensorRole::BitLinear:
        w.add_tensor(slot.name, wtype, slot.shape, bitlinear(slot.name, slot.shape[0], slot.shape[1]));
        break;
    }
  }
  w.write(out_path, progress);
}

}  // namespace bitnet
