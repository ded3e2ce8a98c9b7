// Tokenizer tests: the 71 tiktoken vectors of the team's Llama-3 vocabulary (exact ids and round trip),
// special-token parsing, BOS, the 2B4T chat prompt of spec 5.6, streaming decode, the bundle form and the
// errors a broken vocabulary or GGUF must raise. Small hand-made vocabularies cover BPE order and
// invalid input without the shared data.
#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "frontend/tokenizer_gguf.h"
#include "ir/error.h"
#include "runtime/tokenizer.h"
#include "tests/testdata.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

using bitnet::ChatMessage;
using bitnet::Tokenizer;
using bitnet::TokenizerVocab;
using Catch::Matchers::Contains;

namespace {

const char* kVocab = "tokenizer-llama3/llama3-vocab.gguf";

// Loaded once: 128256 tokens and 280147 merges take a moment to index.
const Tokenizer& llama3() {
  static const Tokenizer tokenizer(
      bitnet::read_tokenizer_vocab(bitnet::gguf::File::open(bitnet::test::shared_testdata(kVocab))));
  return tokenizer;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split(const std::string& s, const std::string& separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at; (at = s.find(separator, start)) != std::string::npos; start = at + separator.size())
    parts.push_back(s.substr(start, at - start));
  parts.push_back(s.substr(start));
  return parts;
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (int32_t id; in >> id;) ids.push_back(id);
  return ids;
}

std::vector<std::string> pieces(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.token_to_piece(id, true));
  return out;
}

// True when `s` is a sequence of complete UTF-8 characters (lead byte followed by all its continuations).
bool whole_characters(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<uint8_t>(s[i + k]) & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

// GPT-2 bytes_to_unicode written out again here, independently of the implementation.
std::string mapped(uint8_t b) {
  int cp = b;
  if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
    int k = 0;
    for (int x = 0; x < b; ++x) k += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    cp = 0x100 + k;
  }
  std::string s;
  if (cp < 0x80) s += static_cast<char>(cp);
  else s += {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
  return s;
}

// A vocabulary of the 256 byte tokens (id = byte value) plus `extra` tokens (mapped form) and merges.
TokenizerVocab byte_vocab(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
                          const std::vector<std::string>& controls = {}) {
  TokenizerVocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(mapped(static_cast<uint8_t>(b)));
  for (const auto& t : extra) v.tokens.push_back(t);
  v.token_types.assign(v.tokens.size(), 1);
  for (const auto& t : controls) {
    v.tokens.push_back(t);
    v.token_types.push_back(3);
  }
  v.merges = merges;
  return v;
}

}  // namespace

TEST_CASE("tokenizer: the 71 Llama-3 vectors match tiktoken exactly and round-trip", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  // The .inp file is the texts joined by "\n__ggml_vocab_test__\n" (no trailing newline; the first is empty).
  auto texts = split(read_file(bitnet::test::shared_testdata(std::string(kVocab) + ".inp")), "\n__ggml_vocab_test__\n");
  auto lines = split(read_file(bitnet::test::shared_testdata(std::string(kVocab) + ".out")), "\n");
  if (!lines.empty() && lines.back().empty() && lines.size() == texts.size() + 1) lines.pop_back();
  REQUIRE(texts.size() == 71);
  REQUIRE(lines.size() == texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO("vector " << i << ": \"" << texts[i] << "\"");
    std::vector<int32_t> ids = t.encode(texts[i], false, false);
    CHECK(ids == parse_ids(lines[i]));
    CHECK(t.decode(ids, false) == texts[i]);
    CHECK(t.encode(texts[i], false, true) == ids);  // no special-token text in these vectors
  }
}

TEST_CASE("tokenizer: pre-tokenizer splits of spec 5.3", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  CHECK(t.pre_tokenizer() == "llama-bpe");
  using V = std::vector<std::string>;
  CHECK(pieces(t, t.encode("Hello world", false, false)) == V{"Hello", " world"});
  CHECK(pieces(t, t.encode("I'm 12345!", false, false)) == V{"I", "'m", " ", "123", "45", "!"});
  CHECK(pieces(t, t.encode("a\n\nb", false, false)) == V{"a", "\n\n", "b"});
  CHECK(pieces(t, t.encode("x   y", false, false)) == V{"x", "  ", " y"});
  CHECK(pieces(t, t.encode("User: ", false, false)) == V{"User", ":", " "});
}

TEST_CASE("tokenizer: special tokens are parsed only when asked, BOS always when asked", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  CHECK(t.bos() == 128000);
  CHECK(t.vocab_size() == 128256);
  CHECK(t.token_id("<|eot_id|>") == 128009);
  CHECK_FALSE(t.token_id("<|no such token|>").has_value());

  const std::string text = "hi<|eot_id|><|start_header_id|>x";
  std::vector<int32_t> parsed = t.encode(text, false, true);
  CHECK(parsed == std::vector<int32_t>{6151, 128009, 128006, 87});
  std::vector<int32_t> plain = t.encode(text, false, false);
  CHECK(std::find(plain.begin(), plain.end(), 128009) == plain.end());
  CHECK(t.decode(plain, false) == text);
  // Control tokens render only on request.
  CHECK(t.decode(parsed, false) == "hix");
  CHECK(t.decode(parsed, true) == text);

  // A near miss is plain text; a special right after another special still matches.
  CHECK(t.encode("<|eot_id|", false, true) == t.encode("<|eot_id|", false, false));
  CHECK(t.encode("<|eot_id|><|eot_id|>", false, true) == std::vector<int32_t>{128009, 128009});

  // BOS is prepended unconditionally: a text that already starts with it gets two.
  CHECK(t.encode("hi", true, false) == std::vector<int32_t>{128000, 6151});
  CHECK(t.encode("<|begin_of_text|>hi", true, true) == std::vector<int32_t>{128000, 128000, 6151});
  CHECK(t.encode("", true, false) == std::vector<int32_t>{128000});
  CHECK(t.encode("", false, false).empty());
}

TEST_CASE("tokenizer: end-of-generation set", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  CHECK(t.is_eog(128001));
  CHECK(t.is_eog(128009));
  CHECK_FALSE(t.is_eog(128000));
  CHECK_FALSE(t.is_eog(128006));
  CHECK_FALSE(t.is_eog(220));
}

TEST_CASE("tokenizer: the 2B4T chat prompt of spec 5.6", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  std::vector<int32_t> expected = {128000, 1502, 25, 220, 3923, 374, 220, 17, 10, 17, 30, 128009, 72803, 25, 220};
  CHECK(t.encode_chat({{"user", "What is 2+2?"}}, true) == expected);
  // The content is stripped, as Microsoft's ChatFormat does.
  CHECK(t.encode_chat({{"user", "  What is 2+2?\n"}}, true) == expected);

  std::vector<int32_t> with_system = t.encode_chat({{"system", "Be brief."}, {"user", "What is 2+2?"}}, false);
  std::vector<int32_t> system_part = {128000, 2374, 25, 220};
  std::vector<int32_t> content = t.encode("Be brief.", false, false);
  system_part.insert(system_part.end(), content.begin(), content.end());
  system_part.push_back(128009);
  system_part.insert(system_part.end(), expected.begin() + 1, expected.end() - 3);  // the user turn, no prompt
  CHECK(with_system == system_part);

  // Special-token text inside a message stays plain text.
  std::vector<int32_t> injected = t.encode_chat({{"user", "<|eot_id|>"}}, false);
  CHECK(std::count(injected.begin(), injected.end(), 128009) == 1);
  CHECK_THROWS_WITH(t.encode_chat({{"tool", "x"}}, true), Contains("role 'tool'"));
}

TEST_CASE("tokenizer: any bytes round-trip; streaming holds back partial characters", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  for (std::string text : {std::string("abc\xff\xfe def\xc3"), std::string("\xed\xa0\x80 surrogate"),
                           std::string("\xc0\xafoverlong"), std::string("ok \xe2\x82"), std::string("\x80", 1),
                           std::string("a\0b", 3)}) {
    INFO("text bytes: " << text.size());
    CHECK(t.decode(t.encode(text, false, false), false) == text);
  }

  const std::string text = "héllo 😂 世界 naïve";
  std::vector<int32_t> ids = t.encode(text, false, false);
  bitnet::TokenStreamDecoder stream(t);
  std::string printed;
  bool split_char = false;
  for (int32_t id : ids) {
    std::string piece = t.token_to_piece(id, false);
    std::string out = stream.push(id);
    split_char |= out != piece;
    CHECK(whole_characters(out));
    printed += out;
  }
  printed += stream.finish();
  CHECK(printed == text);
  CHECK(split_char);  // the emoji and CJK characters really are split across tokens

  bitnet::TokenStreamDecoder unfinished(t);
  CHECK(unfinished.push(*t.token_id("\xc3\xa2")) == "");  // byte 0xE2, a three-byte lead
  CHECK(unfinished.finish() == "\xe2");
}

TEST_CASE("tokenizer: huge pre-tokens are fast and correct", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  const Tokenizer& t = llama3();
  // One 512 KB pre-token each (BPE over half a million symbols), a space run ended by a letter (the
  // regex backtracks one character), and text that is all invalid UTF-8.
  for (std::string text : {std::string(1 << 19, 'a'), std::string(1 << 19, '!'), std::string(1 << 19, '7'),
                           std::string(1 << 19, ' ') + "x", std::string(1 << 19, '\n') + " x", std::string(1 << 19, '\xff')}) {
    std::vector<int32_t> ids = t.encode(text, false, false);
    CHECK(t.decode(ids, false) == text);
  }
}

TEST_CASE("tokenizer: BPE merges lowest rank first, leftmost on ties", "[tokenizer]") {
  // Tokens after the 256 bytes: 256 "aa", 257 "ab", 258 "aaa", 259 "bc".
  TokenizerVocab v = byte_vocab({"aa", "ab", "aaa", "bc"}, {"b c", "a a", "a b", "aa a"});
  Tokenizer t(v);
  CHECK(t.encode("aaa", false, false) == std::vector<int32_t>{258});          // whole pre-token is a token
  CHECK(t.encode("aaaa", false, false) == std::vector<int32_t>{256, 256});    // leftmost "a a" first, twice
  CHECK(t.encode("abc", false, false) == std::vector<int32_t>{'a', 259});     // "b c" outranks "a b"
  CHECK(t.encode("aab", false, false) == std::vector<int32_t>{256, 'b'});     // "a a" (rank 1) before "a b"
  CHECK(t.encode("aaaaa", false, false) == std::vector<int32_t>{256, 258});   // aa|aa|a → aa|aaa

  // Without ignore_merges (GPT-2) a whole-word token is not taken directly: "aaa" → a a, then aa a.
  v.pre = "gpt2";
  Tokenizer gpt2(v);
  CHECK(gpt2.pre_tokenizer() == "gpt2");
  CHECK(gpt2.encode("aaa", false, false) == std::vector<int32_t>{258});
  CHECK(gpt2.encode("hello world", false, false).size() == 11);  // no merges apply: one token per byte
}

TEST_CASE("tokenizer: longest special token wins at one position", "[tokenizer]") {
  TokenizerVocab v = byte_vocab({}, {}, {"<s>", "<s>x", "<"});
  Tokenizer t(v);
  CHECK(t.encode("<s>xy<s><", false, true) == std::vector<int32_t>{257, 'y', 256, 258});
  CHECK(t.encode("<s>", false, false) == std::vector<int32_t>{'<', 's', '>'});
}

TEST_CASE("tokenizer: vocabulary validation", "[tokenizer]") {
  CHECK_THROWS_WITH(Tokenizer(byte_vocab({"ab"}, {"a b", "a zz"})), Contains("merge 1") && Contains("'zz' is not a token"));
  CHECK_THROWS_WITH(Tokenizer(byte_vocab({}, {"ab"})), Contains("merge 0"));
  TokenizerVocab bad_bos = byte_vocab({}, {});
  bad_bos.bos_id = 256;
  CHECK_THROWS_WITH(Tokenizer(bad_bos), Contains("bos id 256"));
  TokenizerVocab spm = byte_vocab({}, {});
  spm.model = "llama";
  CHECK_THROWS_WITH(Tokenizer(spm), Contains("unsupported tokenizer model"));
  TokenizerVocab short_types = byte_vocab({}, {});
  short_types.token_types.pop_back();
  CHECK_THROWS_AS(Tokenizer(short_types), bitnet::Error);

  TokenizerVocab unknown_pre = byte_vocab({}, {});
  unknown_pre.pre = "qwen2";
  Tokenizer t(unknown_pre);
  CHECK(t.pre_tokenizer() == "llama-bpe");
  REQUIRE(t.notes().size() == 1);
  CHECK_THROWS_AS(t.token_to_piece(100000, false), bitnet::Error);
}

TEST_CASE("tokenizer: a Llama-3 vocabulary without tokenizer.ggml.pre uses llama-bpe", "[tokenizer]") {
  if (!bitnet::test::have_shared(kVocab)) return;
  TokenizerVocab v = llama3().vocab();
  v.pre.clear();
  Tokenizer t(std::move(v));
  CHECK(t.pre_tokenizer() == "llama-bpe");
  REQUIRE(t.notes().size() == 1);
  CHECK_THAT(t.notes()[0], Contains("llama-bpe"));
  CHECK(t.encode("I'm 12345!", false, false) == llama3().encode("I'm 12345!", false, false));
}

TEST_CASE("tokenizer: bundle form round-trips and rejects truncation", "[tokenizer]") {
  TokenizerVocab v = byte_vocab({"ab", "\xc4\xa0x"}, {"a b", "\xc4\xa0 x"}, {"<|eot_id|>"});
  v.bos_id = 3;
  v.eos_id = 258;
  v.add_bos = true;
  v.chat_template = "{{ x }}";
  std::vector<uint8_t> bytes = v.serialize();
  TokenizerVocab back = TokenizerVocab::deserialize(bytes, "test.bundle");
  CHECK(back.model == v.model);
  CHECK(back.pre == v.pre);
  CHECK(back.tokens == v.tokens);
  CHECK(back.token_types == v.token_types);
  CHECK(back.merges == v.merges);
  CHECK(back.bos_id == 3);
  CHECK(back.eos_id == 258);
  CHECK(back.pad_id == -1);
  CHECK(back.add_bos);
  CHECK(back.chat_template == v.chat_template);

  // Every proper prefix must fail with the section named, never read past the end.
  for (size_t n = 0; n < bytes.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_WITH(TokenizerVocab::deserialize(std::span(bytes.data(), n), "test.bundle"), Contains("test.bundle"));
  }
  CHECK_THROWS_WITH(TokenizerVocab::deserialize(std::span(bytes.data(), 20), "test.bundle"), Contains("truncated"));
  std::vector<uint8_t> huge = bytes;
  size_t count_at = 4 + 4 + 4 + v.model.size() + 4 + v.pre.size();  // the token count
  huge[count_at + 3] = 0x7F;
  CHECK_THROWS_WITH(TokenizerVocab::deserialize(huge, "test.bundle"), Contains("tokens count"));
  bytes.push_back(0);
  CHECK_THROWS_WITH(TokenizerVocab::deserialize(bytes, "test.bundle"), Contains("unexpected bytes"));

  if (!bitnet::test::have_shared(kVocab)) return;
  TokenizerVocab real = TokenizerVocab::deserialize(llama3().vocab().serialize(), "real");
  CHECK(real.tokens == llama3().vocab().tokens);
  CHECK(real.merges == llama3().vocab().merges);
  CHECK(Tokenizer(real).encode("Hello world", true, false) == std::vector<int32_t>{128000, 9906, 1917});
}

TEST_CASE("tokenizer: GGUF keys are type-checked", "[tokenizer]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / fmt::format("bitnetc-tok-test-{}", ::getpid());
  fs::create_directories(dir);
  TokenizerVocab base = byte_vocab({"ab"}, {"a b"});
  auto write = [&](const std::string& name, auto&& edit) {
    bitnet::gguf::Writer w;
    w.set_string("general.architecture", "bitnet-b1.58");
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "llama-bpe");
    w.set_string_array("tokenizer.ggml.tokens", base.tokens);
    w.set_i32_array("tokenizer.ggml.token_type", base.token_types);
    w.set_string_array("tokenizer.ggml.merges", base.merges);
    w.set_u32("tokenizer.ggml.bos_token_id", 1);
    edit(w);
    std::string path = (dir / name).string();
    w.write(path);
    return path;
  };
  auto read = [](const std::string& path) { return bitnet::read_tokenizer_vocab(bitnet::gguf::File::open(path)); };

  TokenizerVocab ok = read(write("ok.gguf", [](auto&) {}));
  CHECK(ok.tokens == base.tokens);
  CHECK(ok.bos_id == 1);
  CHECK(ok.eos_id == -1);
  CHECK(ok.add_bos);  // llama-bpe default when the key is absent
  CHECK(Tokenizer(ok).encode("ab", false, false) == std::vector<int32_t>{256});

  std::string path = write("spm.gguf", [](auto& w) { w.set_string("tokenizer.ggml.model", "llama"); });
  CHECK_THROWS_WITH(read(path), Contains("spm.gguf") && Contains("unsupported tokenizer model"));
  path = write("eos.gguf", [](auto& w) { w.set_u32("tokenizer.ggml.eos_token_id", 9999); });
  CHECK_THROWS_WITH(read(path), Contains("eos.gguf") && Contains("tokenizer.ggml.eos_token_id") && Contains("9999"));
  path = write("eos32.gguf", [](auto& w) { w.set_i32("tokenizer.ggml.eos_token_id", 2); });
  CHECK_THROWS_WITH(read(path), Contains("tokenizer.ggml.eos_token_id") && Contains("u32"));
  path = write("types.gguf", [](auto& w) { w.set_i32_array("tokenizer.ggml.token_type", {1, 1}); });
  CHECK_THROWS_WITH(read(path), Contains("tokenizer.ggml.token_type"));
  path = write("scores.gguf", [](auto& w) { w.set_f32_array("tokenizer.ggml.scores", {0.0f}); });
  CHECK_THROWS_WITH(read(path), Contains("tokenizer.ggml.scores"));
  path = write("tokens.gguf", [](auto& w) { w.set_i32_array("tokenizer.ggml.tokens", {1}); });
  CHECK_THROWS_WITH(read(path), Contains("tokenizer.ggml.tokens"));

  bitnet::gguf::Writer bare;
  bare.set_string("general.architecture", "bitnet-b1.58");
  bare.write((dir / "bare.gguf").string());
  CHECK_THROWS_WITH(read((dir / "bare.gguf").string()), Contains("bare.gguf") && Contains("tokenizer.ggml.model"));
  fs::remove_all(dir);
}

TEST_CASE("tokenizer: the golden models' 771-token vocabulary", "[tokenizer]") {
  const char* model = "golden/p1-gqa/model-f32.gguf";
  if (!bitnet::test::have_shared(model)) return;
  TokenizerVocab v = bitnet::read_tokenizer_vocab(bitnet::gguf::File::open(bitnet::test::shared_testdata(model)));
  CHECK(v.tokens.size() == 771);
  CHECK(v.merges.size() == 698);
  Tokenizer t(std::move(v));
  CHECK(t.notes().empty());
  CHECK(t.bos() == 768);
  CHECK(t.add_bos());  // no add_bos_token key: llama-bpe's default
  CHECK(t.is_eog(769));
  CHECK(t.is_eog(770));
  const std::string text = "The quick brown fox, naïve café — 12345!\n";
  std::vector<int32_t> ids = t.encode(text, true, false);
  CHECK(ids.front() == 768);
  CHECK(std::all_of(ids.begin() + 1, ids.end(), [](int32_t id) { return id >= 0 && id < 768; }));
  CHECK(t.decode(ids, false) == text);
  CHECK(t.encode_chat({{"user", "hi"}}, true).back() == 220);  // "Assistant: " ends in the space token
}
