// GGUF reader validation (spec 1.5): valid files built byte by byte in memory, then one defect at a time.
// Every malformed file must throw bitnet::Error naming the file and the field; truncating a real file
// anywhere must never crash.
#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "ir/error.h"
#include "testdata.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include <unistd.h>
#include <cmath>

using bitnet::Error;
using bitnet::TensorType;
namespace gguf = bitnet::gguf;

namespace {

// Little-endian byte appender.
struct Bytes {
  std::vector<uint8_t> v;
  Bytes& raw(const void* p, size_t n) {
    size_t old = v.size();
    v.resize(old + n);
    if (n) std::memcpy(v.data() + old, p, n);
    return *this;
  }
  Bytes& u8(uint8_t x) { return raw(&x, 1); }
  Bytes& u32(uint32_t x) { return raw(&x, 4); }
  Bytes& u64(uint64_t x) { return raw(&x, 8); }
  Bytes& i64(int64_t x) { return raw(&x, 8); }
  Bytes& f32(float x) { return raw(&x, 4); }
  Bytes& str(const std::string& s) { return u64(s.size()).raw(s.data(), s.size()); }
  Bytes& add(const Bytes& o) { return raw(o.v.data(), o.v.size()); }
};

constexpr uint32_t kString = 8, kArray = 9, kU32 = 4, kF32 = 6;

Bytes kv_u32(const std::string& key, uint32_t x) { return std::move(Bytes().str(key).u32(kU32).u32(x)); }
Bytes kv_str(const std::string& key, const std::string& s) { return std::move(Bytes().str(key).u32(kString).str(s)); }
Bytes tensor_info(const std::string& name, std::vector<int64_t> dims, uint32_t type, uint64_t offset) {
  Bytes b;
  b.str(name).u32(static_cast<uint32_t>(dims.size()));
  for (auto d : dims) b.i64(d);
  b.u32(type).u64(offset);
  return b;
}

// A whole file: header, kvs, tensor infos, padding to `alignment`, `data_bytes` zero bytes of data.
std::vector<uint8_t> assemble(const std::vector<Bytes>& kvs, const std::vector<Bytes>& tensors, size_t data_bytes,
                              uint32_t alignment = 32, uint32_t version = 3) {
  Bytes b;
  b.raw("GGUF", 4).u32(version).i64(static_cast<int64_t>(tensors.size())).i64(static_cast<int64_t>(kvs.size()));
  for (auto& k : kvs) b.add(k);
  for (auto& t : tensors) b.add(t);
  if (!tensors.empty()) {
    while (b.v.size() % alignment) b.u8(0);
  }
  b.v.resize(b.v.size() + data_bytes, 0);
  return b.v;
}

// Two tensors: "a" F32 [8] at 0 (32 bytes) and "b" F32 [4, 2] at 32 (32 bytes).
std::vector<uint8_t> valid_file() {
  return assemble({kv_str("general.architecture", "test"), kv_u32("general.alignment", 32)},
                  {tensor_info("a", {8}, 0, 0), tensor_info("b", {4, 2}, 0, 32)}, 64);
}

void set_u32(std::vector<uint8_t>& v, size_t at, uint32_t x) { std::memcpy(v.data() + at, &x, 4); }
void set_i64(std::vector<uint8_t>& v, size_t at, int64_t x) { std::memcpy(v.data() + at, &x, 8); }

// Parses `bytes` as "bad.gguf" and requires an Error whose message holds every one of `parts`.
void require_rejected(std::vector<uint8_t> bytes, std::initializer_list<std::string> parts) {
  std::string message;
  try {
    gguf::File::from_memory(std::move(bytes), "bad.gguf");
  } catch (const Error& e) {
    message = e.what();
  }
  INFO("message: " << message);
  REQUIRE(!message.empty());
  CHECK_THAT(message, Catch::Contains("bad.gguf"));
  for (auto& p : parts) CHECK_THAT(message, Catch::Contains(p));
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("gguf: the hand-built valid file parses", "[gguf]") {
  auto f = gguf::File::from_memory(valid_file(), "ok.gguf");
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.data_offset() % 32 == 0);
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.tensor("b")->ne[0] == 4);
  CHECK(f.tensor("b")->ne[1] == 2);
  CHECK(f.tensor("b")->ne[2] == 1);
  CHECK(f.tensor("b")->nbytes == 32);
  CHECK(f.get_string("general.architecture") == std::string("test"));
  CHECK(f.warnings().empty());
  // Version 2 has the same layout and is accepted.
  CHECK(gguf::File::from_memory(assemble({}, {}, 0, 32, 2), "v2.gguf").version() == 2);
}

TEST_CASE("gguf: header defects", "[gguf]") {
  SECTION("file shorter than 24 bytes") { require_rejected({'G', 'G', 'U', 'F', 3, 0, 0, 0}, {"24"}); }
  SECTION("bad magic") {
    auto v = valid_file();
    v[0] = 'X';
    require_rejected(v, {"magic"});
  }
  SECTION("version 0") {
    auto v = valid_file();
    set_u32(v, 4, 0);
    require_rejected(v, {"version", "0"});
  }
  SECTION("version 1") {
    auto v = valid_file();
    set_u32(v, 4, 1);
    require_rejected(v, {"version", "GGUFv1"});
  }
  SECTION("version 4") {
    auto v = valid_file();
    set_u32(v, 4, 4);
    require_rejected(v, {"version", "newer"});
  }
  SECTION("version byte-swapped") {
    auto v = valid_file();
    set_u32(v, 4, 0x03000000);
    require_rejected(v, {"version", "byte-swapped"});
  }
  SECTION("n_tensors negative") {
    auto v = valid_file();
    set_i64(v, 8, -1);
    require_rejected(v, {"n_tensors", "-1"});
  }
  SECTION("n_tensors near 2^63") {
    auto v = valid_file();
    set_i64(v, 8, INT64_MAX - 3);
    require_rejected(v, {"n_tensors"});
  }
  SECTION("n_tensors larger than the bytes allow") {
    auto v = valid_file();
    set_i64(v, 8, 60000);
    require_rejected(v, {"n_tensors", "60000"});
  }
  SECTION("n_kv huge") {
    auto v = valid_file();
    set_i64(v, 16, int64_t(1) << 40);
    require_rejected(v, {"n_kv"});
  }
  SECTION("n_kv more than the bytes allow") {
    auto v = valid_file();
    set_i64(v, 16, 1000);
    require_rejected(v, {"n_kv", "1000"});
  }
}

TEST_CASE("gguf: metadata defects", "[gguf]") {
  SECTION("string length huge") {
    auto v = assemble({Bytes().str("k").u32(kString).u64(uint64_t(1) << 62)}, {}, 0);
    require_rejected(v, {"key 'k'", "string length"});
  }
  SECTION("key length huge") {
    auto v = assemble({Bytes().u64(uint64_t(1) << 40).u32(0)}, {}, 0);
    v.resize(v.size() + 32);
    require_rejected(v, {"kv[0] key", "string length"});
  }
  SECTION("duplicate key") { require_rejected(assemble({kv_u32("dup.key", 1), kv_u32("dup.key", 2)}, {}, 0), {"dup.key", "duplicate"}); }
  SECTION("empty key") { require_rejected(assemble({kv_u32("", 1)}, {}, 0), {"kv[0]", "empty key"}); }
  SECTION("unknown value type") {
    require_rejected(assemble({Bytes().str("odd").u32(13).u32(0)}, {}, 0), {"key 'odd'", "unknown value type 13"});
  }
  SECTION("nested array") {
    require_rejected(assemble({Bytes().str("arr").u32(kArray).u32(kArray).u64(1).u32(0).u64(0)}, {}, 0),
                     {"key 'arr'", "nested"});
  }
  SECTION("array element type unknown") {
    require_rejected(assemble({Bytes().str("arr").u32(kArray).u32(77).u64(1).u32(0)}, {}, 0),
                     {"key 'arr'", "element type 77"});
  }
  SECTION("array count over the limit") {
    require_rejected(assemble({Bytes().str("arr").u32(kArray).u32(kU32).u64(uint64_t(1) << 40)}, {}, 0),
                     {"key 'arr'", "array count"});
  }
  SECTION("array count beyond the remaining bytes") {
    require_rejected(assemble({Bytes().str("arr").u32(kArray).u32(kF32).u64(1000).f32(1)}, {}, 0),
                     {"key 'arr'", "1000"});
  }
  SECTION("string array count beyond the remaining bytes") {
    require_rejected(assemble({Bytes().str("toks").u32(kArray).u32(kString).u64(5000).str("a")}, {}, 0),
                     {"key 'toks'", "5000"});
  }
  SECTION("general.alignment of the wrong type") {
    require_rejected(assemble({Bytes().str("general.alignment").u32(kString).str("32")}, {}, 0),
                     {"general.alignment", "u32"});
  }
  SECTION("general.alignment not a power of two") {
    require_rejected(assemble({kv_u32("general.alignment", 24)}, {}, 0), {"general.alignment", "24", "power of two"});
  }
  SECTION("general.alignment zero") {
    require_rejected(assemble({kv_u32("general.alignment", 0)}, {}, 0), {"general.alignment", "power of two"});
  }
}

TEST_CASE("gguf: truncation inside each section", "[gguf]") {
  // Layout of a file with one kv `key` = "value-string" and one tensor "t" F32 [8]. The key is long enough
  // that a cut inside it still leaves room for the record counts.
  const std::string key = "general.a.rather.long.key.name";
  auto full = assemble({kv_str(key, "value-string")}, {tensor_info("t", {8}, 0, 0)}, 32);
  auto cut = [&](size_t n) { return std::vector<uint8_t>(full.begin(), full.begin() + n); };
  const size_t kv0 = 24, value0 = kv0 + 8 + key.size() + 4, info0 = value0 + 8 + 12;
  SECTION("inside a key") { require_rejected(cut(kv0 + 8 + 20), {"truncated", "kv[0] key"}); }
  SECTION("inside a value") { require_rejected(cut(value0 + 8 + 5), {"truncated", "key '" + key + "'"}); }
  SECTION("inside an array") {
    auto arr = assemble({Bytes().str("a").u32(kArray).u32(kString).u64(3).str("xx").str("yy").str("zz")}, {}, 0);
    arr.resize(arr.size() - 1);
    require_rejected(arr, {"truncated", "key 'a'[2]"});
  }
  SECTION("inside a tensor info") {
    require_rejected(cut(info0 + 8 + 1 + 4 + 8 + 4 + 3), {"truncated", "tensor 't' offset"});
  }
  SECTION("inside tensor data") { require_rejected(cut(full.size() - 1), {"tensor 't'", "past the end"}); }
}

TEST_CASE("gguf: tensor info defects", "[gguf]") {
  auto one = [](Bytes info, size_t data = 64) { return assemble({}, {std::move(info)}, data); };
  SECTION("empty tensor name") { require_rejected(one(tensor_info("", {8}, 0, 0)), {"tensor[0]", "empty tensor name"}); }
  SECTION("tensor name of 64 bytes") {
    require_rejected(one(tensor_info(std::string(64, 'n'), {8}, 0, 0)), {"tensor[0]", "64 bytes", "63"});
  }
  SECTION("tensor name of 63 bytes is fine") {
    CHECK_NOTHROW(gguf::File::from_memory(one(tensor_info(std::string(63, 'n'), {8}, 0, 0)), "ok.gguf"));
  }
  SECTION("duplicate tensor name") {
    require_rejected(assemble({}, {tensor_info("w", {8}, 0, 0), tensor_info("w", {8}, 0, 32)}, 64),
                     {"tensor 'w'", "duplicate"});
  }
  SECTION("n_dims 0") { require_rejected(one(tensor_info("w", {}, 0, 0)), {"tensor 'w'", "n_dims 0"}); }
  SECTION("n_dims 5") { require_rejected(one(tensor_info("w", {1, 1, 1, 1, 8}, 0, 0)), {"tensor 'w'", "n_dims 5"}); }
  SECTION("negative dim") { require_rejected(one(tensor_info("w", {8, -2}, 0, 0)), {"tensor 'w'", "ne[1] = -2"}); }
  SECTION("dims whose product overflows int64") {
    require_rejected(one(tensor_info("w", {int64_t(1) << 32, int64_t(1) << 32}, 0, 0)), {"tensor 'w'", "overflows"});
  }
  SECTION("TL1 type id 38") { require_rejected(one(tensor_info("w", {256}, 38, 0)), {"tensor 'w'", "38", "TL1"}); }
  SECTION("unknown type id 99") { require_rejected(one(tensor_info("w", {256}, 99, 0)), {"tensor 'w'", "99"}); }
  SECTION("ne0 not a multiple of the block") {
    require_rejected(one(tensor_info("w", {100}, 35, 0)), {"tensor 'w'", "TQ2_0", "256"});
  }
  SECTION("offset not aligned") { require_rejected(one(tensor_info("w", {8}, 0, 4)), {"tensor 'w'", "offset 4"}); }
  SECTION("offset past EOF") {
    require_rejected(one(tensor_info("w", {8}, 0, 1 << 20)), {"tensor 'w'", "past the end"});
  }
  SECTION("overlapping tensors") {
    require_rejected(assemble({}, {tensor_info("a", {16}, 0, 0), tensor_info("b", {8}, 0, 32)}, 128),
                     {"overlaps", "'a'", "'b'"});
  }
  SECTION("a gap is a warning, not an error") {
    auto f = gguf::File::from_memory(assemble({}, {tensor_info("a", {8}, 0, 64)}, 128), "gap.gguf");
    CHECK(f.warnings().size() == 1);
  }
}

TEST_CASE("gguf: truncating a golden file anywhere throws and never crashes", "[gguf]") {
  if (!bitnet::test::have_shared("golden/p1-gqa/model-i2_s.gguf")) return;
  auto full = read_all(bitnet::test::shared_testdata("golden/p1-gqa/model-i2_s.gguf"));
  auto header_end = gguf::File::from_memory(full, "full.gguf").data_offset();
  REQUIRE(header_end > 1000);
  std::vector<size_t> cuts;
  for (size_t n = 0; n < header_end; ++n) cuts.push_back(n);
  for (size_t n = header_end; n < full.size(); n += 4093) cuts.push_back(n);
  cuts.push_back(full.size() - 1);
  size_t thrown = 0;
  for (size_t n : cuts) {
    // Build only the prefix; copying `full` once per cut would be slow for the ~60k header offsets.
    std::vector<uint8_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    try {
      gguf::File::from_memory(std::move(prefix), "cut.gguf");
    } catch (const Error& e) {
      if (std::string(e.what()).find("cut.gguf") != std::string::npos) ++thrown;
    }
  }
  CHECK(thrown == cuts.size());
}

TEST_CASE("gguf: typed getters on a golden file", "[gguf]") {
  if (!bitnet::test::have_shared("golden/p1-gqa/model-i2_s.gguf")) return;
  auto f = gguf::File::open(bitnet::test::shared_testdata("golden/p1-gqa/model-i2_s.gguf"));
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.get_string("general.architecture") == std::string("bitnet-b1.58"));
  CHECK(f.get_uint("bitnet-b1.58.embedding_length") == uint64_t(256));
  CHECK(f.get_int("bitnet-b1.58.block_count") == int64_t(2));
  CHECK(f.get_uint("bitnet-b1.58.attention.head_count_kv") == uint64_t(2));
  CHECK(f.get_float("bitnet-b1.58.rope.freq_base") == Approx(500000.0));
  CHECK(f.get_float("bitnet-b1.58.attention.layer_norm_rms_epsilon") == Approx(1e-5));
  CHECK(f.get_uint("general.file_type") == uint64_t(40));
  CHECK(f.array_length("tokenizer.ggml.tokens") == uint64_t(771));
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  REQUIRE(tokens);
  CHECK(tokens->size() == 771);
  CHECK(tokens->at(768) == "<|begin_of_text|>");
  CHECK(f.get_string_array("tokenizer.ggml.merges")->size() == 698);
  CHECK(f.get_i32_array("tokenizer.ggml.token_type")->size() == 771);
  CHECK_FALSE(f.get_uint("no.such.key").has_value());
  CHECK_FALSE(f.has("no.such.key"));

  auto* q = f.tensor("blk.0.attn_q.weight");
  REQUIRE(q);
  CHECK(q->type == TensorType::I2_S);
  CHECK(q->ne[0] == 256);
  CHECK(q->ne[1] == 256);
  CHECK(q->nbytes == 256 * 256 / 4 + 32);
  CHECK(f.tensors().size() == 2 + 11 * 2);

  REQUIRE_THROWS_WITH(f.get_uint("general.architecture"),
                      Catch::Contains("general.architecture") && Catch::Contains("string"));
  REQUIRE_THROWS_WITH(f.get_string("bitnet-b1.58.block_count"), Catch::Contains("bitnet-b1.58.block_count"));
  REQUIRE_THROWS_WITH(f.get_f32_array("tokenizer.ggml.tokens"), Catch::Contains("tokenizer.ggml.tokens"));
  REQUIRE_THROWS_WITH(f.get_bool("general.architecture"), Catch::Contains("general.architecture"));
}

TEST_CASE("gguf: Writer -> File::open round trip of every value type", "[gguf]") {
  auto dir = std::filesystem::temp_directory_path() / ("bitnetc-test-gguf-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = (dir / "rt.gguf").string();
  {
    gguf::Writer w;
    w.set_string("s", "héllo");
    w.set_string("empty", "");
    w.set_u32("u", 4000000000u);
    w.set_i32("i", -123456);
    w.set_f32("f", 0.15625f);
    w.set_bool("yes", true);
    w.set_bool("no", false);
    w.set_string_array("sa", {"a", "", "ccc"});
    w.set_i32_array("ia", {1, -2, 2147483647});
    w.set_f32_array("fa", {1.5f, -0.0f, 3e38f});
    w.add_tensor("t.f32", TensorType::F32, {8, 2}, [](uint8_t* out) {
      for (int k = 0; k < 16; ++k) {
        float x = float(k) - 3.5f;
        std::memcpy(out + 4 * k, &x, 4);
      }
    });
    w.add_tensor("t.tq2", TensorType::TQ2_0, {256}, [](uint8_t* out) { std::memset(out, 0x55, 66); });
    w.write(path);
  }
  auto f = gguf::File::open(path);
  CHECK(f.version() == 3);
  CHECK(f.get_string("s") == std::string("héllo"));
  CHECK(f.get_string("empty") == std::string(""));
  CHECK(f.get_uint("u") == uint64_t(4000000000u));
  CHECK(f.get_int("i") == int64_t(-123456));
  CHECK(f.get_float("f") == 0.15625);
  CHECK(f.get_bool("yes") == true);
  CHECK(f.get_bool("no") == false);
  CHECK(f.get_string_array("sa") == std::vector<std::string>{"a", "", "ccc"});
  CHECK(f.get_i32_array("ia") == std::vector<int32_t>{1, -2, 2147483647});
  auto fa = f.get_f32_array("fa");
  REQUIRE(fa);
  CHECK(fa->at(0) == 1.5f);
  CHECK(std::signbit(fa->at(1)));
  CHECK(fa->at(2) == 3e38f);
  CHECK(f.find("u")->type == gguf::ValueType::U32);
  CHECK(f.find("i")->type == gguf::ValueType::I32);
  CHECK(f.find("yes")->type == gguf::ValueType::BOOL);
  CHECK_THROWS_WITH(f.get_uint("i"), Catch::Contains("'i'") && Catch::Contains("negative"));

  auto* t = f.tensor("t.f32");
  REQUIRE(t);
  CHECK(t->n_dims == 2);
  CHECK(t->ne[1] == 2);
  float x;
  std::memcpy(&x, f.tensor_data(*t) + 4 * 5, 4);
  CHECK(x == 1.5f);
  auto* q = f.tensor("t.tq2");
  REQUIRE(q);
  CHECK(q->nbytes == 66);
  CHECK(q->offset % 32 == 0);
  CHECK(f.tensor_data(*q)[0] == 0x55);
  CHECK(f.warnings().empty());
  std::filesystem::remove_all(dir);
}
