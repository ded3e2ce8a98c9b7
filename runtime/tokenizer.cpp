// Byte-level BPE as Llama-3 uses it (spec 5). Encoding runs in three stages:
//   1. special tokens (only with parse_special) cut the text into plain fragments and special ids;
//   2. the pre-tokenizer regex (PCRE2, JIT when available) cuts each fragment into pre-tokens;
//   3. each pre-token is looked up whole (llama-bpe's ignore_merges) or merged pair by pair, lowest merge
//      rank first, over a linked list of symbols with a min-heap of candidate pairs: O(n log n) even for a
//      megabyte-long run of one letter.
// BPE works on token ids, not strings: at construction every token's text is turned back into raw bytes
// (GPT-2 byte↔unicode mapping, spec 5.2) and every merge "a b" into (id a, id b) → (rank, id of ab), so
// encoding never builds mapped strings.
//
// Invalid UTF-8 input: PCRE2 must not see it (matching invalid UTF-8 with PCRE2_NO_UTF_CHECK is undefined
// behaviour), so the regex runs on a copy where each invalid byte is replaced by U+FFFD — the same
// substitution llama.cpp makes — and the match offsets are mapped back to the original text. The pieces
// handed to BPE are the original bytes (every byte is a token), so decode(encode(x)) == x for any bytes,
// while the split points are the ones llama.cpp would choose.
//
// Checked against tiktoken on the team's 71 vectors and on megabytes of random multilingual text: ids are
// identical, except for code points assigned after the Unicode version of the system's PCRE2 (10.42 knows
// Unicode 14; e.g. CJK Extension H letters count as unassigned there, not as \p{L}).
#include "runtime/tokenizer.h"

#include "ir/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <utility>

namespace bitnet {

namespace {

// tiktoken's Llama-3 split pattern (spec 5.3), and GPT-2's for vocabularies that ask for it:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// \s is spelled out as [\p{Z}\t-\r\x{85}] (the Unicode White_Space property, which tiktoken's regex and
// llama.cpp use) because PCRE2's \s also matches U+180E MONGOLIAN VOWEL SEPARATOR.
constexpr const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\p{Z}\t-\r\x{85}\p{L}\p{N}]+[\r\n]*)"
    R"(|[\p{Z}\t-\r\x{85}]*[\r\n]+|[\p{Z}\t-\r\x{85}]+(?![^\p{Z}\t-\r\x{85}])|[\p{Z}\t-\r\x{85}]+)";
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{Z}\t-\r\x{85}\p{L}\p{N}]+)"
    R"(|[\p{Z}\t-\r\x{85}]+(?![^\p{Z}\t-\r\x{85}])|[\p{Z}\t-\r\x{85}]+)";

// GPT-2 bytes_to_unicode: printable bytes keep their code point, the other 68 get U+0100 + k in order.
struct ByteUnicode {
  uint16_t cp_of_byte[256];
  int16_t byte_of_cp[324];  // -1 where the code point is not an image of a byte
};

constexpr ByteUnicode kByteUnicode = [] {
  ByteUnicode t{};
  for (int16_t& b : t.byte_of_cp) b = -1;
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    t.cp_of_byte[b] = static_cast<uint16_t>(printable ? b : 0x100 + extra++);
    t.byte_of_cp[t.cp_of_byte[b]] = static_cast<int16_t>(b);
  }
  return t;
}();

// Length of the well-formed UTF-8 character at s[i] (its code point in `cp`), or 0 when the bytes there are
// not one: bad lead byte, missing continuation, overlong form, surrogate or beyond U+10FFFF.
size_t decode_utf8(std::string_view s, size_t i, uint32_t& cp) {
  auto c = static_cast<uint8_t>(s[i]);
  if (c < 0x80) return cp = c, 1;
  size_t len = c >= 0xC2 && c <= 0xDF ? 2 : (c & 0xF0) == 0xE0 ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (len == 0 || s.size() - i < len) return 0;
  cp = c & (0x7F >> len);
  for (size_t k = 1; k < len; ++k) {
    auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b & 0x3F);
  }
  if (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return len;
}

bool is_valid_utf8(std::string_view s) {
  uint32_t cp = 0;
  for (size_t i = 0, len = 0; i < s.size(); i += len)
    if ((len = decode_utf8(s, i, cp)) == 0) return false;
  return true;
}

// `text` with each byte that is not part of a well-formed character replaced by U+FFFD (as llama.cpp
// does), and for every byte of the copy the offset in `text` of the character it came from (plus the end).
struct CleanedText {
  std::string text;
  std::vector<size_t> offset;
};
CleanedText replace_invalid_utf8(std::string_view text) {
  CleanedText c;
  uint32_t cp = 0;
  for (size_t i = 0, len = 0; i < text.size(); i += std::max<size_t>(len, 1)) {
    len = decode_utf8(text, i, cp);
    c.text += len > 0 ? text.substr(i, len) : "\xEF\xBF\xBD";
    c.offset.resize(c.text.size(), i);
  }
  c.offset.push_back(text.size());
  return c;
}

// A token's text in mapped form → its raw bytes. Code points that are not images of a byte (text of
// user-defined tokens, odd vocabularies) and bytes that are not UTF-8 are kept as they are.
std::string unmap_bytes(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    size_t len = decode_utf8(text, i, cp);
    if (len == 0) {
      out += text[i++];
    } else {
      if (cp < 324 && kByteUnicode.byte_of_cp[cp] >= 0) out += static_cast<char>(kByteUnicode.byte_of_cp[cp]);
      else out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

// The UTF-8 of a byte's mapped code point (all are below U+0800: one or two bytes).
std::string map_byte(uint8_t b) {
  uint16_t cp = kByteUnicode.cp_of_byte[b];
  if (cp < 0x80) return std::string(1, static_cast<char>(cp));
  return {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
}

uint64_t pair_key(int32_t left, int32_t right) {
  return static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32 | static_cast<uint32_t>(right);
}

// FNV-1a: pre-tokens are short, so a byte-at-a-time hash is as fast as anything wider.
uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

// Fibonacci hashing: the top bits of key × 2^64/φ pick the slot of a table of 2^(64 - shift) entries.
size_t home_slot(uint64_t key, int shift) { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift); }

// Size (a power of two, at least twice `n`) and shift of an open-addressing table for n entries.
std::pair<size_t, int> table_shape(size_t n) {
  int bits = 1;
  while ((size_t{1} << bits) < 2 * n) ++bits;
  return {size_t{1} << bits, 64 - bits};
}

// Python's str.strip() for the chat content (ASCII whitespace only).
std::string_view strip(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

// ----------------------------------------------------------------------------------------------------------
// The compiled pre-tokenizer pattern.

struct Tokenizer::Regex {
  pcre2_code* code = nullptr;

  explicit Regex(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                         &error, &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail("tokenizer: pre-tokenizer regex does not compile at offset {}: {}", offset,
           reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // a failure only means pcre2_match interprets instead
  }
  ~Regex() { pcre2_code_free(code); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
};

// Per-call working memory of BPE, reused across the pre-tokens of one encode() call.
struct Tokenizer::Scratch {
  struct Symbol {
    int32_t id, prev, next;  // prev/next: positions in `symbols`, -1 at the ends; id -1 once merged away
  };
  struct Candidate {
    int32_t rank, left, right, left_id, right_id, result;
    // std heap functions build a max-heap: "greater" means lower rank, then further left.
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

// ----------------------------------------------------------------------------------------------------------
// Construction

Tokenizer::Tokenizer(TokenizerVocab vocab) : vocab_(std::move(vocab)) {
  const TokenizerVocab& v = vocab_;
  if (v.model != "gpt2") fail("tokenizer: unsupported tokenizer model '{}' (bitnetc supports gpt2 byte-level BPE)", v.model);
  const size_t n = v.tokens.size();
  if (n == 0 || n > static_cast<size_t>(INT32_MAX)) fail("tokenizer: vocabulary has {} tokens", n);
  if (!v.token_types.empty() && v.token_types.size() != n)
    fail("tokenizer: {} token types for {} tokens", v.token_types.size(), n);
  for (auto [name, id] : {std::pair{"bos", v.bos_id}, {"eos", v.eos_id}, {"pad", v.pad_id}})
    if (id < -1 || id >= static_cast<int64_t>(n)) fail("tokenizer: {} id {} outside the vocabulary of {} tokens", name, id, n);
  choose_pre_tokenizer();
  index_tokens();
  index_merges();
  if (v.eos_id >= 0) eog_ids_.push_back(v.eos_id);
  for (const char* text : {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"})
    if (auto id = token_id(text); id && std::find(eog_ids_.begin(), eog_ids_.end(), *id) == eog_ids_.end())
      eog_ids_.push_back(*id);
}

// Spec 5.1: llama.cpp's names for Llama-3, GPT-2's, Llama-3 recognised by its vocabulary, else a warning.
void Tokenizer::choose_pre_tokenizer() {
  const TokenizerVocab& v = vocab_;
  if (v.pre == "llama-bpe" || v.pre == "llama3" || v.pre == "llama-v3") {
    pre_ = "llama-bpe";
  } else if (v.pre == "gpt2" || v.pre == "default") {
    pre_ = "gpt2";
  } else if (v.pre.empty() && looks_like_llama3_vocab(v)) {
    pre_ = "llama-bpe";
    notes_.push_back("note: tokenizer.ggml.pre is absent; the vocabulary is Llama-3's (128256 tokens, "
                     "<|begin_of_text|> at 128000), so the llama-bpe pre-tokenizer is used");
  } else if (v.pre.empty()) {
    pre_ = "gpt2";
    notes_.push_back("warning: tokenizer.ggml.pre is absent; using the GPT-2 pre-tokenizer as llama.cpp does");
  } else {
    pre_ = "llama-bpe";
    notes_.push_back(fmt::format("warning: unknown pre-tokenizer '{}'; using llama-bpe", v.pre));
  }
  ignore_merges_ = pre_ == "llama-bpe";  // llama.cpp sets ignore_merges for llama-bpe only
  regex_ = std::make_unique<Regex>(pre_ == "gpt2" ? kGpt2Pattern : kLlama3Pattern);
}

// Raw bytes of every token, the text and byte lookups, the special tokens and the byte tokens.
void Tokenizer::index_tokens() {
  const TokenizerVocab& v = vocab_;
  const size_t n = v.tokens.size();
  pieces_.resize(n);
  text_ids_.reserve(n);
  auto [piece_slots, piece_shift] = table_shape(n);
  piece_table_.assign(piece_slots, PieceSlot{0, -1});
  piece_shift_ = piece_shift;
  for (size_t i = 0; i < n; ++i) {
    auto id = static_cast<int32_t>(i);
    auto type = v.token_types.empty() ? TokenType::Normal : static_cast<TokenType>(v.token_types[i]);
    bool special = type == TokenType::Control || type == TokenType::UserDefined;
    // Special tokens are shown as their literal text; the rest are GPT-2-mapped bytes.
    pieces_[i] = special ? v.tokens[i] : unmap_bytes(v.tokens[i]);
    text_ids_.emplace(v.tokens[i], id);  // first id wins for a duplicated text
    if (special && !v.tokens[i].empty()) specials_.push_back(id);
    if (!special) {  // the first id wins for duplicated bytes
      uint64_t hash = hash_bytes(pieces_[i]);
      PieceSlot& slot = piece_table_[piece_slot(pieces_[i], hash)];
      if (slot.id < 0) slot = {hash, id};
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [&](int32_t a, int32_t b) { return v.tokens[a].size() > v.tokens[b].size(); });
  for (int32_t id : specials_)
    if (special_first_bytes_.find(v.tokens[id][0]) == std::string::npos) special_first_bytes_ += v.tokens[id][0];

  int missing_bytes = 0;
  for (int b = 0; b < 256; ++b) {
    auto it = text_ids_.find(map_byte(static_cast<uint8_t>(b)));
    byte_ids_[b] = it == text_ids_.end() ? -1 : it->second;
    missing_bytes += byte_ids_[b] < 0;
  }
  if (missing_bytes > 0)
    notes_.push_back(fmt::format("warning: {} byte values have no token; encoding drops those bytes", missing_bytes));
}

// Every merge "left right" becomes (id of left, id of right) → (rank, id of leftright).
void Tokenizer::index_merges() {
  const TokenizerVocab& v = vocab_;
  auto [merge_slots, merge_shift] = table_shape(v.merges.size());
  merge_table_.assign(merge_slots, MergeSlot{0, -1, -1});
  merge_shift_ = merge_shift;
  size_t no_result = 0;
  std::string joined;
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    std::string_view m = v.merges[rank];
    size_t space = m.find(' ', 1);  // from 1: a part is never empty
    if (space == std::string_view::npos) fail("tokenizer: merge {} \"{}\": expected two token texts separated by a space", rank, m);
    std::string_view left = m.substr(0, space), right = m.substr(space + 1);
    auto l = text_ids_.find(left), r = text_ids_.find(right);
    if (l == text_ids_.end() || r == text_ids_.end())
      fail("tokenizer: merge {} \"{}\": '{}' is not a token", rank, m, l == text_ids_.end() ? left : right);
    joined.assign(left).append(right);
    auto result = text_ids_.find(joined);
    if (result == text_ids_.end()) {
      ++no_result;  // HF tokenizers refuse such merges too; skipping them keeps every symbol a token
      continue;
    }
    uint64_t key = pair_key(l->second, r->second);
    MergeSlot& slot = merge_table_[merge_slot(key)];
    if (slot.rank < 0) slot = {key, static_cast<int32_t>(rank), result->second};  // a repeated pair keeps its first rank
  }
  if (no_result > 0)
    notes_.push_back(fmt::format("warning: {} merges produce text that is not a token and are ignored", no_result));
}

// Both tables probe linearly from the home slot until they meet the key or an empty slot.
size_t Tokenizer::piece_slot(std::string_view bytes, uint64_t hash) const {
  size_t slot = home_slot(hash, piece_shift_);
  for (const size_t mask = piece_table_.size() - 1;; slot = (slot + 1) & mask) {
    const PieceSlot& s = piece_table_[slot];
    if (s.id < 0 || (s.hash == hash && pieces_[s.id] == bytes)) return slot;
  }
}

size_t Tokenizer::merge_slot(uint64_t key) const {
  size_t slot = home_slot(key, merge_shift_);
  for (const size_t mask = merge_table_.size() - 1;; slot = (slot + 1) & mask)
    if (merge_table_[slot].rank < 0 || merge_table_[slot].key == key) return slot;
}

int32_t Tokenizer::find_piece(std::string_view bytes) const {
  return piece_table_[piece_slot(bytes, hash_bytes(bytes))].id;
}

const Tokenizer::MergeSlot* Tokenizer::find_merge(int32_t left, int32_t right) const {
  const MergeSlot& s = merge_table_[merge_slot(pair_key(left, right))];
  return s.rank < 0 ? nullptr : &s;
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

// ----------------------------------------------------------------------------------------------------------
// Encoding

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 2);
  if (add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  Scratch scratch;
  if (!parse_special || specials_.empty()) {
    encode_plain(text, out, scratch);
    return out;
  }
  // Leftmost occurrence first; at one position the longest special text wins (specials_ is longest-first).
  size_t plain_start = 0;
  size_t pos = 0;
  while ((pos = text.find_first_of(special_first_bytes_, pos)) != std::string_view::npos) {
    auto hit = std::find_if(specials_.begin(), specials_.end(),
                            [&](int32_t id) { return text.substr(pos).starts_with(vocab_.tokens[id]); });
    if (hit == specials_.end()) {
      ++pos;
      continue;
    }
    encode_plain(text.substr(plain_start, pos - plain_start), out, scratch);
    out.push_back(*hit);
    pos += vocab_.tokens[*hit].size();
    plain_start = pos;
  }
  encode_plain(text.substr(plain_start), out, scratch);
  return out;
}

void Tokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out, Scratch& scratch) const {
  if (text.empty()) return;

  // The regex needs valid UTF-8 (see the top of the file); offsets it reports are mapped back to `text`.
  const bool valid = is_valid_utf8(text);
  CleanedText cleaned = valid ? CleanedText{} : replace_invalid_utf8(text);
  std::string_view subject = valid ? text : std::string_view(cleaned.text);
  auto emit = [&](size_t begin, size_t end) {
    size_t b = valid ? begin : cleaned.offset[begin], e = valid ? end : cleaned.offset[end];
    encode_pretoken(text.substr(b, e - b), out, scratch);
  };

  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(regex_->code, nullptr), &pcre2_match_data_free);
  if (!match) fail("tokenizer: out of memory for regex match data");
  const auto* subject_ptr = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos < subject.size()) {
    int rc = pcre2_match(regex_->code, subject_ptr, subject.size(), pos, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      fail("tokenizer: pre-tokenizer regex failed: {}", reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* span = pcre2_get_ovector_pointer(match.get());
    size_t begin = span[0], end = span[1];
    if (end == begin) {  // cannot happen with our patterns (no alternative matches empty); stay safe
      while (++end < subject.size() && (static_cast<uint8_t>(subject[end]) & 0xC0) == 0x80) {}
    }
    if (begin > pos) emit(pos, begin);  // text the pattern skipped (also impossible): keep it
    emit(begin, end);
    pos = end;
  }
  if (pos < subject.size()) emit(pos, subject.size());
}

void Tokenizer::encode_pretoken(std::string_view bytes, std::vector<int32_t>& out, Scratch& scratch) const {
  if (bytes.size() == 1) {
    if (int32_t id = byte_ids_[static_cast<uint8_t>(bytes[0])]; id >= 0) out.push_back(id);
    return;
  }
  if (ignore_merges_) {
    if (int32_t id = find_piece(bytes); id >= 0) {
      out.push_back(id);
      return;
    }
  }

  auto& symbols = scratch.symbols;
  auto& heap = scratch.heap;
  symbols.clear();
  heap.clear();
  for (char c : bytes) {
    int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) continue;
    auto self = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, self - 1, -1});
    if (self > 0) symbols[self - 1].next = self;
  }
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    int32_t right = symbols[left].next;
    if (right < 0) return;
    const MergeSlot* merge = find_merge(symbols[left].id, symbols[right].id);
    if (!merge) return;
    heap.push_back({merge->rank, left, right, symbols[left].id, symbols[right].id, merge->result});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    Scratch::Candidate c = heap.back();
    heap.pop_back();
    // Stale entries: one side has merged with something else since this pair was pushed.
    Scratch::Symbol& left = symbols[c.left];
    if (left.id != c.left_id || left.next != c.right || symbols[c.right].id != c.right_id) continue;
    Scratch::Symbol& right = symbols[c.right];
    left.id = c.result;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    right.id = -1;
    consider(left.prev);
    consider(c.left);
  }
  for (int32_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

std::vector<int32_t> Tokenizer::encode_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::optional<int32_t> eot = token_id("<|eot_id|>");
  if (!eot && vocab_.eos_id < 0) fail("tokenizer: chat prompt needs <|eot_id|> or an eos token, the vocabulary has neither");
  int32_t end_of_turn = eot ? *eot : vocab_.eos_id;

  std::vector<int32_t> out;
  if (vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  Scratch scratch;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    std::string_view header = m.role == "system" ? "System: " : m.role == "user" ? "User: " : m.role == "assistant" ? "Assistant: " : "";
    if (header.empty()) fail("tokenizer: chat message {}: role '{}' is not system, user or assistant", i, m.role);
    encode_plain(header, out, scratch);  // on its own, so the header's trailing space stays a token
    encode_plain(strip(m.content), out, scratch);
    out.push_back(end_of_turn);
  }
  if (add_generation_prompt) encode_plain("Assistant: ", out, scratch);
  return out;
}

// ----------------------------------------------------------------------------------------------------------
// Decoding and lookups

std::string_view Tokenizer::piece(int32_t id, bool render_special) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size())
    fail("tokenizer: token id {} outside the vocabulary of {} tokens", id, pieces_.size());
  bool control = !vocab_.token_types.empty() && vocab_.token_types[id] == static_cast<int32_t>(TokenType::Control);
  if (control && !render_special) return {};
  return pieces_[id];
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  return std::string(piece(id, render_special));
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (int32_t id : ids) out += piece(id, render_special);
  return out;
}

bool Tokenizer::is_eog(int32_t id) const {
  return std::find(eog_ids_.begin(), eog_ids_.end(), id) != eog_ids_.end();
}

std::optional<int32_t> Tokenizer::token_id(std::string_view text) const {
  auto it = text_ids_.find(text);
  if (it == text_ids_.end()) return std::nullopt;
  return it->second;
}

// ----------------------------------------------------------------------------------------------------------
// Streaming

namespace {
// Length of `s` without a trailing character that is started but not finished. A lead byte that cannot
// start any character is not held back: waiting would never make it valid.
size_t complete_prefix(std::string_view s) {
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    auto c = static_cast<uint8_t>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t need = c >= 0xF5 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}
}  // namespace

std::string TokenStreamDecoder::push(int32_t id) {
  pending_ += tokenizer_->token_to_piece(id, render_special_);
  size_t ready = complete_prefix(pending_);
  std::string out = pending_.substr(0, ready);
  pending_.erase(0, ready);
  return out;
}

std::string TokenStreamDecoder::finish() {
  return std::exchange(pending_, {});
}

}  // namespace bitnet
