// The Llama-3 byte-level BPE tokenizer (spec section 5): text → token ids and back, special tokens, the
// end-of-generation set and the token-level chat prompt of BitNet b1.58 2B4T. The vocabulary arrives as a
// TokenizerVocab — read from GGUF by the frontend (frontend/tokenizer_gguf.h) or from a bundle section
// (serialize/deserialize below) — so the runtime never sees GGUF. A Tokenizer is immutable after
// construction: encode/decode are const, keep no caches, and may run on several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bitnet {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// Everything a tokenizer is built from, as stored in the GGUF `tokenizer.*` keys. Token texts are in GPT-2
// byte-to-unicode form (spec 5.2); merges are "left right" with rank = index.
struct TokenizerVocab {
  std::string model;  // "gpt2" = byte-level BPE, the only one supported
  std::string pre;    // "llama-bpe", "gpt2", ... or empty when the file has no tokenizer.ggml.pre
  std::vector<std::string> tokens;
  std::vector<int32_t> token_types;  // TokenType values; empty means all Normal
  std::vector<std::string> merges;
  int32_t bos_id = -1, eos_id = -1, pad_id = -1;
  bool add_bos = false;
  std::string chat_template;  // kept for display only; 2B4T's is a placeholder (spec 5.6)

  // Compact little-endian form for the bundle file. deserialize checks every length against the bytes left
  // and throws bitnet::Error naming `where` and the field.
  std::vector<uint8_t> serialize() const;
  static TokenizerVocab deserialize(std::span<const uint8_t> bytes, const std::string& where);
};

// True for the Llama-3 vocabulary even when the file does not say so: gpt2 model, 128256 tokens,
// `<|begin_of_text|>` at 128000 (spec 5.1: the 2B4T file has no tokenizer.ggml.pre).
bool looks_like_llama3_vocab(const TokenizerVocab& vocab);

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class Tokenizer {
 public:
  // Validates the vocabulary (model, array lengths, special ids in range, every merge part a token) and
  // compiles the pre-tokenizer regex; throws bitnet::Error on a defect.
  explicit Tokenizer(TokenizerVocab vocab);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Text → ids. add_bos prepends BOS (when the vocabulary has one) unconditionally, even when the text
  // itself produced one: llama.cpp does the same and never drops a user's token. With
  // parse_special, exact occurrences of CONTROL and USER_DEFINED token texts become those ids; without
  // it all text is plain (llama.cpp would still match USER_DEFINED texts; Llama-3 has none). Any byte
  // string is accepted: invalid UTF-8 bytes are kept as byte tokens (see tokenizer.cpp).
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // The raw bytes of one token (GPT-2 byte mapping reversed). CONTROL and USER_DEFINED tokens are their
  // literal text, CONTROL ones only when render_special is set (else nothing); a bad id throws bitnet::Error.
  std::string token_to_piece(int32_t id, bool render_special) const;
  // Concatenated pieces. Tokens may end in the middle of a UTF-8 character, so the result can be invalid
  // UTF-8 (as with llama.cpp's detokenizer); it is returned byte for byte, never repaired.
  std::string decode(std::span<const int32_t> ids, bool render_special) const;

  // The BitNet 2B4T chat prompt built at the token level (spec 5.6): BOS, then per message the role header
  // and the stripped content each encoded on their own, then <|eot_id|>; "Assistant: " when
  // add_generation_prompt. Content is plain text (special-token texts in it are not parsed).
  std::vector<int32_t> encode_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  // End of generation: eos, and the tokens whose text is <|eot_id|>, <|eom_id|> or <|end_of_text|>.
  bool is_eog(int32_t id) const;
  int32_t bos() const { return vocab_.bos_id; }
  int32_t eos() const { return vocab_.eos_id; }
  bool add_bos() const { return vocab_.add_bos; }
  size_t vocab_size() const { return vocab_.tokens.size(); }
  const TokenizerVocab& vocab() const { return vocab_; }
  std::optional<int32_t> token_id(std::string_view text) const;
  // Which pre-tokenizer was chosen ("llama-bpe" or "gpt2") and the notes/warnings the caller may print
  // (pre-tokenizer inferred or unknown, merges ignored, bytes without a token).
  const std::string& pre_tokenizer() const { return pre_; }
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  struct Regex;    // the compiled PCRE2 pattern (pcre2.h stays out of this header)
  struct Scratch;  // per-call BPE buffers
  // BPE's two hot lookups use open-addressing tables (linear probing, power-of-two size, at most half
  // full): with std::unordered_map, chasing nodes took half of the encode time.
  struct PieceSlot {
    uint64_t hash;
    int32_t id;  // -1: empty
  };
  struct MergeSlot {
    uint64_t key;  // left id << 32 | right id
    int32_t rank;  // -1: empty
    int32_t result;
  };

  void choose_pre_tokenizer();
  void index_tokens();
  void index_merges();
  std::string_view piece(int32_t id, bool render_special) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out, Scratch& scratch) const;
  void encode_pretoken(std::string_view bytes, std::vector<int32_t>& out, Scratch& scratch) const;
  int32_t find_piece(std::string_view bytes) const;  // -1 when no BPE-able token has these bytes
  const MergeSlot* find_merge(int32_t left, int32_t right) const;  // nullptr when the pair never merges
  size_t piece_slot(std::string_view bytes, uint64_t hash) const;  // the slot holding bytes, or the empty one
  size_t merge_slot(uint64_t key) const;                            // likewise for a pair key

  TokenizerVocab vocab_;
  std::string pre_;
  bool ignore_merges_ = true;
  std::unique_ptr<Regex> regex_;
  std::vector<std::string> pieces_;                          // id → raw bytes
  std::unordered_map<std::string_view, int32_t> text_ids_;   // token text (mapped form) → id
  std::vector<PieceSlot> piece_table_;                       // raw bytes → id, BPE-able tokens only
  std::vector<MergeSlot> merge_table_;                       // (left id, right id) → rank, result
  int piece_shift_ = 64, merge_shift_ = 64;                  // 64 - log2(table size)
  int32_t byte_ids_[256];                                    // byte → its single-byte token, -1 if none
  std::vector<int32_t> specials_;                            // CONTROL/USER_DEFINED ids, longest text first
  std::string special_first_bytes_;                          // first bytes of their texts, for find_first_of
  std::vector<int32_t> eog_ids_;
  std::vector<std::string> notes_;
};

// Streaming detokenizer for printing while generating: push() returns only text ending on a complete
// UTF-8 character and holds back a partial one until the next token completes it. Bytes that can never
// become valid UTF-8 are passed through rather than held.
class TokenStreamDecoder {
 public:
  explicit TokenStreamDecoder(const Tokenizer& tokenizer, bool render_special = false)
      : tokenizer_(&tokenizer), render_special_(render_special) {}
  std::string push(int32_t id);
  // Whatever is still held back (an unfinished character at the end of generation); clears the state.
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  bool render_special_;
  std::string pending_;
};

}  // namespace bitnet
