// TokenizerVocab's bundle form: the tokenizer section of a bitnetc bundle, written by the compiler and read
// back by the runtime without GGUF. Little-endian and length-prefixed; the reader is bounded, so a
// truncated or forged section fails with the bundle's name and the field instead of reading past the end.
#include "runtime/tokenizer.h"

#include "ir/error.h"

namespace bitnet {

namespace {

// Layout: "BNTK", u32 version, then the fields in struct order; every integer (add_bos too) is
// a u32, every string a u32 length and its bytes, every array a u32 count and its elements.
constexpr uint32_t kMagic = 0x4B544E42;  // "BNTK" read as a little-endian u32
constexpr uint32_t kFormatVersion = 1;

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>(v >> (8 * k)));
}
void put_str(std::vector<uint8_t>& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

// Bounded little-endian reader: every read checks what is left and names the field (and element) it reads;
// array counts are checked against the bytes left before anything is allocated.
class SectionReader {
 public:
  SectionReader(std::span<const uint8_t> bytes, const std::string& where) : bytes_(bytes), where_(where) {}

  uint32_t u32(std::string_view field, size_t index = SIZE_MAX) {
    need(4, field, index);
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<uint32_t>(bytes_[pos_++]) << (8 * k);
    return v;
  }
  std::string str(std::string_view field, size_t index = SIZE_MAX) {
    uint32_t len = u32(field, index);
    need(len, field, index);
    pos_ += len;
    return std::string(reinterpret_cast<const char*>(bytes_.data() + pos_ - len), len);
  }
  template <typename Element>
  std::vector<Element> array(std::string_view field, Element (SectionReader::*read)(std::string_view, size_t)) {
    uint32_t n = u32(field);
    if (uint64_t{n} * 4 > left())  // every element takes at least 4 bytes
      fail("{}: tokenizer section: {} count {} needs at least {} bytes, only {} left", where_, field, n, uint64_t{n} * 4, left());
    std::vector<Element> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = (this->*read)(field, i);
    return out;
  }
  size_t left() const { return bytes_.size() - pos_; }

 private:
  void need(size_t n, std::string_view field, size_t index) {
    if (n <= left()) return;
    std::string name = index == SIZE_MAX ? std::string(field) : fmt::format("{}[{}]", field, index);
    fail("{}: tokenizer section truncated: {} needs {} bytes at offset {}, only {} left", where_, name, n, pos_, left());
  }
  std::span<const uint8_t> bytes_;
  const std::string& where_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<uint8_t> TokenizerVocab::serialize() const {
  std::vector<uint8_t> out;
  for (uint32_t v : {kMagic, kFormatVersion}) put_u32(out, v);
  put_str(out, model);
  put_str(out, pre);
  put_u32(out, static_cast<uint32_t>(tokens.size()));
  for (const auto& t : tokens) put_str(out, t);
  put_u32(out, static_cast<uint32_t>(token_types.size()));
  for (int32_t t : token_types) put_u32(out, static_cast<uint32_t>(t));
  put_u32(out, static_cast<uint32_t>(merges.size()));
  for (const auto& m : merges) put_str(out, m);
  for (int32_t v : {bos_id, eos_id, pad_id, add_bos ? 1 : 0}) put_u32(out, static_cast<uint32_t>(v));
  put_str(out, chat_template);
  return out;
}

TokenizerVocab TokenizerVocab::deserialize(std::span<const uint8_t> bytes, const std::string& where) {
  SectionReader r(bytes, where);
  if (r.u32("magic") != kMagic) fail("{}: tokenizer section: magic is not \"BNTK\"", where);
  if (uint32_t version = r.u32("version"); version != kFormatVersion)
    fail("{}: tokenizer section: version {} but this build reads version {}", where, version, kFormatVersion);
  TokenizerVocab v;
  v.model = r.str("model");
  v.pre = r.str("pre");
  v.tokens = r.array("tokens", &SectionReader::str);
  for (uint32_t t : r.array("token_types", &SectionReader::u32)) v.token_types.push_back(static_cast<int32_t>(t));
  v.merges = r.array("merges", &SectionReader::str);
  for (int32_t* id : {&v.bos_id, &v.eos_id, &v.pad_id}) *id = static_cast<int32_t>(r.u32("special ids"));
  uint32_t add_bos = r.u32("add_bos");
  if (add_bos > 1) fail("{}: tokenizer section: add_bos is {}, expected 0 or 1", where, add_bos);
  v.add_bos = add_bos == 1;
  v.chat_template = r.str("chat_template");
  if (r.left() != 0) fail("{}: tokenizer section: {} unexpected bytes after chat_template", where, r.left());
  return v;
}

bool looks_like_llama3_vocab(const TokenizerVocab& vocab) {
  return vocab.model == "gpt2" && vocab.tokens.size() == 128256 && vocab.tokens[128000] == "<|begin_of_text|>";
}

}  // namespace bitnet
