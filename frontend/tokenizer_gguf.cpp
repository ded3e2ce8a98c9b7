// GGUF → TokenizerVocab. Types are checked as llama.cpp's loader checks them (tokens: array of string,
// token_type: array of i32, merges: array of string, scores: array of f32, *_token_id: u32); the typed
// getters of gguf::File report a wrong type with the file and key.
#include "frontend/tokenizer_gguf.h"

#include "ir/error.h"

namespace bitnet {

namespace {

constexpr std::string_view kIdPrefix = "tokenizer.ggml.";
constexpr std::string_view kIdSuffix = "_token_id";

template <typename T>
T require(const gguf::File& file, std::string_view key, std::optional<T> value) {
  if (!value) fail("{}: key '{}' is missing", file.path(), key);
  return std::move(*value);
}

// Every tokenizer.ggml.*_token_id present (bos, eos, padding, eot, unknown, ...) must be a u32 naming a token.
void check_token_ids(const gguf::File& file, size_t vocab_size) {
  for (const gguf::KeyValue& kv : file.metadata()) {
    std::string_view key = kv.key;
    if (!key.starts_with(kIdPrefix) || !key.ends_with(kIdSuffix)) continue;
    if (kv.value.type != gguf::ValueType::U32)
      fail("{}: key '{}': type {} but expected u32", file.path(), key, gguf::value_type_name(kv.value.type));
    uint64_t id = *file.get_uint(key);
    if (id >= vocab_size) fail("{}: key '{}': token id {} but the vocabulary has {} tokens", file.path(), key, id, vocab_size);
  }
}

int32_t optional_id(const gguf::File& file, std::string_view key) {
  auto id = file.get_uint(key);  // type and range already checked by check_token_ids
  return id ? static_cast<int32_t>(*id) : -1;
}

}  // namespace

TokenizerVocab read_tokenizer_vocab(const gguf::File& file) {
  TokenizerVocab v;
  v.model = require(file, "tokenizer.ggml.model", file.get_string("tokenizer.ggml.model"));
  if (v.model != "gpt2")
    fail("{}: key 'tokenizer.ggml.model': unsupported tokenizer model '{}' (bitnetc supports gpt2 byte-level BPE)",
         file.path(), v.model);
  v.pre = file.get_string("tokenizer.ggml.pre").value_or("");
  v.tokens = require(file, "tokenizer.ggml.tokens", file.get_string_array("tokenizer.ggml.tokens"));
  const size_t n = v.tokens.size();
  if (n == 0) fail("{}: key 'tokenizer.ggml.tokens': empty vocabulary", file.path());

  // token_type and scores are optional, but when present they must describe every token.
  v.token_types = file.get_i32_array("tokenizer.ggml.token_type").value_or(std::vector<int32_t>{});
  if (file.has("tokenizer.ggml.token_type") && v.token_types.size() != n)
    fail("{}: key 'tokenizer.ggml.token_type': {} entries but tokenizer.ggml.tokens has {}", file.path(), v.token_types.size(), n);
  for (size_t i = 0; i < v.token_types.size(); ++i)
    if (v.token_types[i] < 0 || v.token_types[i] > static_cast<int32_t>(TokenType::Byte))
      fail("{}: key 'tokenizer.ggml.token_type': entry {} is {}, expected 0..6", file.path(), i, v.token_types[i]);
  if (auto scores = file.get_f32_array("tokenizer.ggml.scores"); scores && scores->size() != n)
    fail("{}: key 'tokenizer.ggml.scores': {} entries but tokenizer.ggml.tokens has {}", file.path(), scores->size(), n);

  v.merges = require(file, "tokenizer.ggml.merges", file.get_string_array("tokenizer.ggml.merges"));

  check_token_ids(file, n);
  v.bos_id = optional_id(file, "tokenizer.ggml.bos_token_id");
  v.eos_id = optional_id(file, "tokenizer.ggml.eos_token_id");
  v.pad_id = optional_id(file, "tokenizer.ggml.padding_token_id");

  // llama.cpp turns add_bos on for the llama-bpe family and off for plain GPT-2 unless the key says otherwise.
  bool llama3 = v.pre == "llama-bpe" || v.pre == "llama3" || v.pre == "llama-v3" || (v.pre.empty() && looks_like_llama3_vocab(v));
  v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token").value_or(llama3);
  v.chat_template = file.get_string("tokenizer.chat_template").value_or("");
  return v;
}

}  // namespace bitnet
