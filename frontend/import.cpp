// Tokenizer JSON + weight dump → GGUF (formats in import.h). Reading is split from writing: the manifest,
// the config and every tensor (dtype, shape, byte range, scale, codes, finiteness) are checked first; the
// writer's fill callbacks then only convert bytes that are known to be good.
#include "frontend/import.h"

#include "frontend/gguf_writer.h"
#include "ir/error.h"
#include "ir/file_bytes.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace bitnet {
namespace {

using nlohmann::json;

constexpr const char* kTokenizerFormat = "bitnetc-bpe-v1";
constexpr const char* kWeightsFormat = "bitnetc-weights-v1";
constexpr int64_t kMaxDim = int64_t{1} << 24;

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

// Typed field access; `where` is "file: field" so every message names both.
const json& field(const json& object, const std::string& key, const std::string& where) {
  if (!object.is_object()) fail("{}: expected an object", where);
  auto it = object.find(key);
  if (it == object.end()) fail("{}.{}: missing", where, key);
  return *it;
}

std::string string_field(const json& object, const std::string& key, const std::string& where) {
  const json& v = field(object, key, where);
  if (!v.is_string()) fail("{}.{}: expected a string, got {}", where, key, v.type_name());
  return v.get<std::string>();
}

int64_t int_field(const json& object, const std::string& key, const std::string& where, int64_t lo, int64_t hi) {
  const json& v = field(object, key, where);
  if (!v.is_number_integer()) fail("{}.{}: expected an integer, got {}", where, key, v.dump());
  // nlohmann keeps non-negative integers as unsigned: compare those as unsigned so huge values do not wrap.
  bool inside = v.is_number_unsigned()
                    ? v.get<uint64_t>() <= static_cast<uint64_t>(hi) && static_cast<int64_t>(v.get<uint64_t>()) >= lo
                    : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  if (!inside) fail("{}.{}: {} is outside [{}, {}]", where, key, v.dump(), lo, hi);
  return v.get<int64_t>();
}

double number_field(const json& object, const std::string& key, const std::string& where) {
  const json& v = field(object, key, where);
  if (!v.is_number()) fail("{}.{}: expected a number, got {}", where, key, v.dump());
  double d = v.get<double>();
  if (!std::isfinite(d)) fail("{}.{}: {} is not finite", where, key, d);
  return d;
}

std::vector<std::string> string_array(const json& object, const std::string& key, const std::string& where) {
  const json& v = field(object, key, where);
  if (!v.is_array()) fail("{}.{}: expected an array, got {}", where, key, v.type_name());
  std::vector<std::string> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) fail("{}.{}[{}]: expected a string, got {}", where, key, i, v[i].type_name());
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// ---- weight dump -------------------------------------------------------------------------------------------

enum class DumpType { F32, F16, Trit2 };

uint64_t dump_nbytes(DumpType type, uint64_t n) {
  switch (type) {
    case DumpType::F32: return 4 * n;
    case DumpType::F16: return 2 * n;
    case DumpType::Trit2: return (n + 3) / 4;
  }
  return 0;
}

struct DumpTensor {
  TensorSlot slot;
  DumpType type;
  uint64_t offset = 0, n = 0;
  float scale = 0;  // trit2 only, already rounded to f16
};

struct WeightDump {
  std::string name;
  SynthShape shape;
  FileBytes data;
  std::vector<DumpTensor> tensors;  // in bitnet_tensor_slots order
  int scales_rounded = 0;
};

SynthShape read_config(const json& manifest, const std::string& where, TensorType type) {
  const json& c = field(manifest, "config", where);
  std::string cw = where + ".config";
  SynthShape s;
  s.hidden = int_field(c, "hidden", cw, 1, kMaxDim);
  s.layers = int_field(c, "layers", cw, 1, 1024);
  s.heads = int_field(c, "heads", cw, 1, kMaxDim);
  s.kv_heads = int_field(c, "kv_heads", cw, 1, kMaxDim);
  s.ffn = int_field(c, "ffn", cw, 1, kMaxDim);
  s.vocab = int_field(c, "vocab", cw, 1, kMaxDim);
  s.context = int_field(c, "context", cw, 1, kMaxDim);
  s.rope_base = static_cast<float>(number_field(c, "rope_base", cw));
  s.rms_eps = static_cast<float>(number_field(c, "rms_eps", cw));
  if (s.hidden % s.heads != 0) fail("{}.heads: {} does not divide hidden = {}", cw, s.heads, s.hidden);
  if (s.heads % s.kv_heads != 0) fail("{}.kv_heads: {} does not divide heads = {}", cw, s.kv_heads, s.heads);
  if ((s.hidden / s.heads) % 2 != 0) fail("{}.heads: head_dim = {} must be even (RoPE pairs)", cw, s.hidden / s.heads);
  if (!(s.rope_base > 1.0f)) fail("{}.rope_base: {} must be > 1", cw, s.rope_base);
  if (!(s.rms_eps > 0.0f && s.rms_eps < 1e-2f)) fail("{}.rms_eps: {} must be in (0, 0.01)", cw, s.rms_eps);
  const int64_t block = type_traits(type).block_elements;
  if (s.hidden % block != 0) fail("{}.hidden: {} is not a multiple of {}, the block of {}", cw, s.hidden, block, tensor_type_name(type));
  if (s.ffn % block != 0) fail("{}.ffn: {} is not a multiple of {}, the block of {}", cw, s.ffn, block, tensor_type_name(type));
  return s;
}

// Checks the codes of a trit2 tensor (no 3) and the values of a float tensor (finite).
void check_tensor_values(const DumpTensor& t, const uint8_t* bytes, const std::string& where) {
  if (t.type == DumpType::Trit2) {
    for (uint64_t i = 0; i < t.n; ++i) {
      if (((bytes[i / 4] >> (2 * (i % 4))) & 3) == 3) fail("{}: element {} has code 3 (codes are 0, 1, 2)", where, i);
    }
    return;
  }
  for (uint64_t i = 0; i < t.n; ++i) {
    float v;
    if (t.type == DumpType::F32) {
      std::memcpy(&v, bytes + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes + 2 * i, 2);
      v = f16_to_f32(h);
    }
    if (!std::isfinite(v)) fail("{}: element {} is {}", where, i, v);
  }
}

// `tokenizer_json` and `n_tokens` only for the vocab check (the embedding's shape depends on it).
WeightDump read_weight_dump(const std::string& dir, TensorType type, const std::string& tokenizer_json, int64_t n_tokens) {
  const std::string manifest_path = (std::filesystem::path(dir) / "manifest.json").string();
  json m = read_json(manifest_path);
  const std::string& where = manifest_path;
  if (!m.is_object()) fail("{}: expected a JSON object", where);
  std::string format = string_field(m, "format", where);
  if (format != kWeightsFormat) fail("{}.format: '{}' but expected '{}'", where, format, kWeightsFormat);

  WeightDump dump;
  dump.name = m.contains("name") ? string_field(m, "name", where) : "bitnetc-import";
  dump.shape = read_config(m, where, type);
  if (dump.shape.vocab != n_tokens)
    fail("{}.config.vocab: {} but {} has {} tokens", where, dump.shape.vocab, tokenizer_json, n_tokens);
  std::string data_name = string_field(m, "data", where);
  if (data_name.empty() || data_name.find('/') != std::string::npos)
    fail("{}.data: '{}' must be a file name inside {}", where, data_name, dir);
  const std::string data_path = (std::filesystem::path(dir) / data_name).string();
  dump.data = FileBytes::map(data_path);

  const json& tensors = field(m, "tensors", where);
  if (!tensors.is_object()) fail("{}.tensors: expected an object", where);
  std::set<std::string> expected;
  for (const TensorSlot& slot : bitnet_tensor_slots(dump.shape)) {
    expected.insert(slot.name);
    const std::string tw = fmt::format("{}: tensors.{}", where, slot.name);
    auto it = tensors.find(slot.name);
    if (it == tensors.end()) fail("{}: missing", tw);
    const json& t = *it;
    if (!t.is_object()) fail("{}: expected an object", tw);

    DumpTensor d{slot, DumpType::F32};
    std::string dtype = string_field(t, "dtype", tw);
    if (slot.role == TensorRole::BitLinear) {
      if (dtype != "trit2") fail("{}.dtype: '{}' but a BitLinear weight must be 'trit2'", tw, dtype);
      d.type = DumpType::Trit2;
    } else if (dtype == "f32" || dtype == "f16") {
      d.type = dtype == "f32" ? DumpType::F32 : DumpType::F16;
    } else {
      fail("{}.dtype: '{}' but expected 'f32' or 'f16'", tw, dtype);
    }

    const json& shape = field(t, "shape", tw);
    std::vector<int64_t> got;
    if (shape.is_array()) {
      for (const json& e : shape) got.push_back(e.is_number_integer() ? e.get<int64_t>() : -1);
    }
    if (got != slot.shape) fail("{}.shape: {} but the config needs {}", tw, shape.dump(), json(slot.shape).dump());
    d.n = 1;
    for (int64_t e : slot.shape) d.n *= static_cast<uint64_t>(e);

    d.offset = static_cast<uint64_t>(int_field(t, "offset", tw, 0, INT64_MAX));
    uint64_t nbytes = dump_nbytes(d.type, d.n);
    if (d.offset > dump.data.size() || nbytes > dump.data.size() - d.offset)
      fail("{}.offset: bytes [{}, {}) run past the end of {} ({} bytes)", tw, d.offset, d.offset + nbytes, data_path,
           dump.data.size());

    if (d.type == DumpType::Trit2) {
      double scale = number_field(t, "scale", tw);
      if (!(scale > 0) || scale > 65504.0) fail("{}.scale: {} must be in (0, 65504]", tw, scale);
      float rounded = f16_to_f32(f32_to_f16(static_cast<float>(scale)));
      if (!(rounded > 0)) fail("{}.scale: {} is below the smallest f16 value", tw, scale);
      if (static_cast<double>(rounded) != scale) ++dump.scales_rounded;
      d.scale = rounded;
    } else if (t.contains("scale")) {
      fail("{}.scale: only trit2 tensors have a scale", tw);
    }
    check_tensor_values(d, dump.data.data() + d.offset, fmt::format("{} (in {})", tw, data_path));
    dump.tensors.push_back(std::move(d));
  }
  for (auto it = tensors.begin(); it != tensors.end(); ++it) {
    if (!expected.count(it.key())) fail("{}: tensors.{}: not a tensor of this model", where, it.key());
  }
  return dump;
}

void set_vocab_keys(gguf::Writer& w, const ImportedTokenizer& tokenizer) {
  set_tokenizer_keys(w, tokenizer.vocab);
  if (tokenizer.eot_id >= 0) w.set_u32("tokenizer.ggml.eot_token_id", static_cast<uint32_t>(tokenizer.eot_id));
}

}  // namespace

ImportedTokenizer read_tokenizer_json(const std::string& path) {
  json j = read_json(path);
  if (!j.is_object()) fail("{}: expected a JSON object", path);
  std::string format = string_field(j, "format", path);
  if (format != kTokenizerFormat) fail("{}.format: '{}' but expected '{}'", path, format, kTokenizerFormat);
  ImportedTokenizer t;
  TokenizerVocab& v = t.vocab;
  v.model = string_field(j, "model", path);
  if (v.model != "gpt2") fail("{}.model: '{}' but only 'gpt2' (byte-level BPE) is supported", path, v.model);
  v.pre = string_field(j, "pre", path);
  v.tokens = string_array(j, "tokens", path);
  if (v.tokens.empty() || static_cast<int64_t>(v.tokens.size()) > kMaxDim)
    fail("{}.tokens: {} entries, expected 1 to {}", path, v.tokens.size(), kMaxDim);
  v.merges = string_array(j, "merges", path);
  const int64_t n = static_cast<int64_t>(v.tokens.size());
  v.bos_id = static_cast<int32_t>(int_field(j, "bos_id", path, 0, n - 1));
  v.eos_id = static_cast<int32_t>(int_field(j, "eos_id", path, 0, n - 1));
  if (j.contains("eot_id")) t.eot_id = static_cast<int32_t>(int_field(j, "eot_id", path, 0, n - 1));
  v.token_types.assign(v.tokens.size(), static_cast<int32_t>(TokenType::Normal));
  for (int32_t id : {v.bos_id, v.eos_id, t.eot_id}) {
    if (id >= 0) v.token_types[id] = static_cast<int32_t>(TokenType::Control);
  }
  v.add_bos = true;
  try {
    Tokenizer check(v);  // every merge part a token, specials consistent, pre-tokenizer known
  } catch (const Error& e) {
    fail("{}: {}", path, e.what());
  }
  return t;
}

void write_vocab_gguf(const ImportedTokenizer& tokenizer, const std::string& out_path) {
  gguf::Writer w;
  w.set_string("general.architecture", "bitnet-b1.58");
  w.set_string("general.name", "bitnetc-import-vocab");
  w.set_u32("bitnet-b1.58.vocab_size", static_cast<uint32_t>(tokenizer.vocab.tokens.size()));
  set_vocab_keys(w, tokenizer);
  w.write(out_path);
}

ImportSummary import_model(const std::string& tokenizer_json, const std::string& weights_dir, TensorType type,
                           const std::string& out_path) {
  if (type != TensorType::I2_S && type != TensorType::TQ1_0 && type != TensorType::TQ2_0 && type != TensorType::F16 &&
      type != TensorType::F32)
    fail("--type: {} is not one of i2_s, tq1_0, tq2_0, f16, f32", tensor_type_name(type));
  ImportedTokenizer tokenizer = read_tokenizer_json(tokenizer_json);
  WeightDump dump = read_weight_dump(weights_dir, type, tokenizer_json, static_cast<int64_t>(tokenizer.vocab.tokens.size()));
  const SynthShape& s = dump.shape;

  gguf::Writer w;
  set_bitnet_model_keys(w, s, type, dump.name);
  set_vocab_keys(w, tokenizer);
  ImportSummary summary{s, 0, dump.scales_rounded};
  const uint8_t* base = dump.data.data();
  for (const DumpTensor& t : dump.tensors) {
    summary.parameters += static_cast<int64_t>(t.n);
    const uint8_t* src = base + t.offset;
    switch (t.slot.role) {
      case TensorRole::Embedding:
      case TensorRole::Norm: {
        // Embedding → F16, norms → F32, from either dump float type.
        TensorType out_type = t.slot.role == TensorRole::Embedding ? TensorType::F16 : TensorType::F32;
        w.add_tensor(t.slot.name, out_type, t.slot.shape, [t, src, out_type](uint8_t* out) {
          for (uint64_t i = 0; i < t.n; ++i) {
            float v;
            if (t.type == DumpType::F32) {
              std::memcpy(&v, src + 4 * i, 4);
            } else {
              uint16_t h;
              std::memcpy(&h, src + 2 * i, 2);
              v = f16_to_f32(h);
            }
            if (out_type == TensorType::F16) {
              uint16_t h = f32_to_f16(v);
              std::memcpy(out + 2 * i, &h, 2);
            } else {
              std::memcpy(out + 4 * i, &v, 4);
            }
          }
        });
        break;
      }
      case TensorRole::BitLinear:
        w.add_tensor(t.slot.name, type, t.slot.shape, [t, src, type](uint8_t* out) {
          std::vector<int8_t> trits(t.n);
          for (uint64_t i = 0; i < t.n; ++i) trits[i] = static_cast<int8_t>(((src[i / 4] >> (2 * (i % 4))) & 3) - 1);
          encode_bitlinear(type, trits, t.scale, out);
        });
        break;
    }
  }
  w.write(out_path);
  return summary;
}

}  // namespace bitnet
