// Tensor formats (spec section 2): the worked examples byte by byte, f16 conversions, encoder/decoder round
// trips, cross-format identity of the golden models, and describe_model's checks of keys and shapes.
#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "frontend/model.h"
#include "frontend/synth.h"
#include "frontend/tensor_types.h"
#include "ir/error.h"
#include "testdata.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

using namespace bitnet;
using bitnet::test::have_shared;
using bitnet::test::local_testdata;
using bitnet::test::shared_testdata;

namespace {

std::vector<float> decode(TensorType type, const std::vector<uint8_t>& bytes, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n), -99.0f);
  decode_to_f32(type, bytes.data(), n, out.data());
  return out;
}

std::vector<float> decode_tensor(const gguf::File& f, const gguf::TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  decode_to_f32(t.type, f.tensor_data(t), t.n_elements(), out.data());
  return out;
}

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

using bitnet::test::TempDir;

}  // namespace

TEST_CASE("formats: TQ2_0 worked example (spec 2.3)", "[formats]") {
  std::vector<uint8_t> block(66, 0x55);  // every code 1 = 0
  block[0] = 0x92;
  block[33] = 0x19;
  block[64] = 0x00;  // d = f16 0x3c00 = 1.0
  block[65] = 0x3c;
  auto x = decode(TensorType::TQ2_0, block, 256);
  std::map<int, float> expected = {{0, 1}, {32, -1}, {64, 0}, {96, 1}, {129, 0}, {161, 1}, {193, 0}, {225, -1}};
  for (int i = 0; i < 256; ++i) {
    INFO("element " << i);
    CHECK(x[i] == (expected.count(i) ? expected[i] : 0.0f));
  }
  // d = 0x4000 = 2.0 scales every value.
  block[65] = 0x40;
  x = decode(TensorType::TQ2_0, block, 256);
  CHECK(x[0] == 2.0f);
  CHECK(x[32] == -2.0f);
  CHECK(x[225] == -2.0f);
}

TEST_CASE("formats: TQ1_0 worked example (spec 2.4)", "[formats]") {
  // Trits (1,1,1,1,1) pack to ceil(121*256/243) = 128; qh trits (1,1,1,1) pack to ceil(120*256/243) = 127.
  std::vector<uint8_t> block(54, 128);
  for (int j = 48; j < 52; ++j) block[j] = 127;
  block[5] = 0xD4;  // trits (2,1,1,1,0)
  block[52] = 0x00;  // d = f16 2.0
  block[53] = 0x40;
  auto x = decode(TensorType::TQ1_0, block, 256);
  std::map<int, float> expected = {{5, 2}, {37, 0}, {69, 0}, {101, 0}, {133, -2}};
  for (int i = 0; i < 256; ++i) {
    INFO("element " << i);
    CHECK(x[i] == (expected.count(i) ? expected[i] : 0.0f));
  }
  // A qh byte holding trits (0,2,0,2): v = (0*27 + 2*9 + 0*3 + 2)*3 = 60 -> ceil(60*256/243) = 64.
  block[48 + 2] = 64;
  x = decode(TensorType::TQ1_0, block, 256);
  CHECK(x[240 + 0 + 2] == -2.0f);
  CHECK(x[240 + 4 + 2] == 2.0f);
  CHECK(x[240 + 8 + 2] == -2.0f);
  CHECK(x[240 + 12 + 2] == 2.0f);
}

TEST_CASE("formats: I2_S worked example (spec 2.5)", "[formats]") {
  std::vector<uint8_t> t(256 / 4 + 32, 0x55);  // every code 1 = 0
  t[0] = 0x90;
  t[33] = 0x24;
  float s = 0.75f;
  std::memcpy(t.data() + 64, &s, 4);  // the scale sits right after the codes
  auto x = decode(TensorType::I2_S, t, 256);
  std::map<int, float> expected = {{0, s},    {32, 0},   {64, -s}, {96, -s},
                                   {129, -s}, {161, s}, {193, 0}, {225, -s}};
  for (int i = 0; i < 256; ++i) {
    INFO("element " << i);
    CHECK(x[i] == (expected.count(i) ? expected[i] : 0.0f));
  }
  CHECK(tensor_nbytes(TensorType::I2_S, 2560, 2560 * 640) == uint64_t(409632));
  CHECK(tensor_nbytes(TensorType::TQ2_0, 256, 512) == uint64_t(132));
  CHECK(tensor_nbytes(TensorType::TQ1_0, 256, 512) == uint64_t(108));
  CHECK_FALSE(tensor_nbytes(TensorType::TQ2_0, 100, 100).has_value());
  CHECK_FALSE(tensor_nbytes(TensorType::I2_S, 100, 100).has_value());
}

TEST_CASE("formats: f16 <-> f32 conversions", "[formats]") {
  SECTION("decoding") {
    CHECK(f16_to_f32(0x3c00) == 1.0f);
    CHECK(f16_to_f32(0xc000) == -2.0f);
    CHECK(f16_to_f32(0x7bff) == 65504.0f);
    CHECK(f16_to_f32(0x0400) == std::ldexp(1.0f, -14));     // smallest normal
    CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));     // smallest subnormal
    CHECK(f16_to_f32(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
    CHECK(f16_to_f32(0x8001) == -std::ldexp(1.0f, -24));
    CHECK(bits(f16_to_f32(0x8000)) == 0x80000000u);
    CHECK(f16_to_f32(0x7c00) == INFINITY);
    CHECK(f16_to_f32(0xfc00) == -INFINITY);
    CHECK(std::isnan(f16_to_f32(0x7e00)));
    CHECK(std::isnan(f16_to_f32(0x7c01)));
  }
  SECTION("encoding, round to nearest even") {
    CHECK(f32_to_f16(1.0f) == 0x3c00);
    CHECK(f32_to_f16(-0.0f) == 0x8000);
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(65519.0f) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);  // tie rounds to the even neighbour, 65536 = inf
    CHECK(f32_to_f16(1e6f) == 0x7c00);
    CHECK(f32_to_f16(-INFINITY) == 0xfc00);
    uint16_t nan = f32_to_f16(NAN);
    CHECK((nan & 0x7c00) == 0x7c00);
    CHECK((nan & 0x03ff) != 0);
    CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);          // tie between 0 and 1 -> 0
    CHECK(f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001);          // above the tie
    CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);          // tie between 1 and 2 -> 2
    CHECK(f32_to_f16(std::ldexp(1.0f, -30)) == 0x0000);          // underflow
    CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);   // tie -> even mantissa
    CHECK(f32_to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);   // tie -> even mantissa
    CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);
    CHECK(f32_to_f16(std::ldexp(1023.5f, -24)) == 0x0400);  // largest subnormal rounds up into the normals
  }
  SECTION("every finite f16 survives f16 -> f32 -> f16") {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; ++h) {
      if ((h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0) continue;  // NaN payloads need not survive
      if (f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))) != h) ++bad;
    }
    CHECK(bad == 0);
  }
  SECTION("bf16") {
    CHECK(bf16_to_f32(0x3f80) == 1.0f);
    CHECK(bf16_to_f32(0xc040) == -3.0f);
  }
}

TEST_CASE("formats: ternary encoders round trip on random tensors", "[formats]") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> trit(-1, 1);
  for (int64_t n : {256, 1024, 256 * 7}) {
    std::vector<int8_t> t(static_cast<size_t>(n));
    for (auto& v : t) v = static_cast<int8_t>(trit(rng));
    const float scale = 0.3125f;  // exact in f16
    struct Case {
      TensorType type;
      void (*encode)(std::span<const int8_t>, float, uint8_t*);
    };
    for (auto c : {Case{TensorType::TQ1_0, encode_tq1_0}, Case{TensorType::TQ2_0, encode_tq2_0},
                   Case{TensorType::I2_S, encode_i2_s}}) {
      INFO(tensor_type_name(c.type) << " n=" << n);
      auto size = tensor_nbytes(c.type, 256, n);
      REQUIRE(size);
      std::vector<uint8_t> bytes(*size, 0xEE);
      c.encode(t, scale, bytes.data());
      auto x = decode(c.type, bytes, n);
      int64_t mismatches = 0;
      for (int64_t i = 0; i < n; ++i) mismatches += x[i] != static_cast<float>(t[i]) * scale;
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("formats: every golden tensor decodes identically in every format", "[formats]") {
  for (std::string model : {"p1-gqa", "p2-mha"}) {
    std::string dir = "golden/" + model + "/";
    if (!have_shared(dir + "model-f16.gguf")) return;
    auto ref = gguf::File::open(shared_testdata(dir + "model-f16.gguf"));
    std::vector<std::string> formats = {"f16", "tq1_0", "tq2_0", "i2_s"};
    if (model == "p1-gqa") formats.push_back("f32");
    for (auto& fmt : formats) {
      auto f = gguf::File::open(shared_testdata(dir + "model-" + fmt + ".gguf"));
      INFO(model << " " << fmt);
      REQUIRE(f.tensors().size() == ref.tensors().size());
      auto expected_type = tensor_type_from_name(fmt);
      REQUIRE(expected_type);
      for (auto& rt : ref.tensors()) {
        auto* t = f.tensor(rt.name);
        INFO("tensor " << rt.name);
        REQUIRE(t);
        CHECK(std::equal(t->ne, t->ne + 4, rt.ne));
        if (rt.name.find("attn_") != std::string::npos && rt.name.find("norm") == std::string::npos) {
          CHECK(t->type == *expected_type);
        }
        if (rt.name.find("ffn_") != std::string::npos && rt.name.find("norm") == std::string::npos) {
          CHECK(t->type == *expected_type);
        }
        auto a = decode_tensor(ref, rt);
        auto b = decode_tensor(f, *t);
        REQUIRE(a.size() == b.size());
        CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("formats: describe_model on the golden models", "[formats]") {
  struct Expect {
    std::string model;
    int64_t layers, heads, kv_heads, ffn;
    float rope;
  };
  for (auto e : {Expect{"p1-gqa", 2, 4, 2, 512, 500000.0f}, Expect{"p2-mha", 3, 8, 8, 768, 10000.0f}}) {
    for (std::string fmt : {"f16", "tq1_0", "tq2_0", "i2_s"}) {
      std::string rel = "golden/" + e.model + "/model-" + fmt + ".gguf";
      if (!have_shared(rel)) return;
      INFO(rel);
      auto f = gguf::File::open(shared_testdata(rel));
      auto d = describe_model(f);
      const HParams& h = d.hparams;
      CHECK(h.arch == "bitnet-b1.58");
      CHECK(h.n_vocab == 771);
      CHECK(h.n_ctx_train == 256);
      CHECK(h.n_embd == 256);
      CHECK(h.n_layer == e.layers);
      CHECK(h.n_head == e.heads);
      CHECK(h.n_head_kv == e.kv_heads);
      CHECK(h.head_dim == 256 / e.heads);
      CHECK(h.n_ff == e.ffn);
      CHECK(h.rms_eps == Approx(1e-5f));
      CHECK(h.rope_base == e.rope);
      CHECK(h.tied_head);
      CHECK(h.ffn_act == FfnActivation::Relu2);
      REQUIRE(d.tensors.layers.size() == static_cast<size_t>(e.layers));
      CHECK(d.tensors.output == nullptr);
      CHECK(d.tensors.token_embd->ne[1] == 771);
      CHECK(d.tensors.layers[0].attn_k->ne[1] == e.kv_heads * (256 / e.heads));
      CHECK(d.tensors.layers.back().ffn_down->ne[0] == e.ffn);
    }
  }
}

namespace {

// Copies `src` into a new GGUF with edits: keys to drop or to replace with a u32 / string, tensors to drop or
// to give another shape (zero-filled).
struct Edits {
  std::set<std::string> drop_keys, drop_tensors;
  std::map<std::string, uint32_t> u32;
  std::map<std::string, std::string> str;
  std::map<std::string, std::vector<int64_t>> reshape;
};

void rewrite(const gguf::File& src, const std::string& out, const Edits& e) {
  gguf::Writer w;
  for (auto& kv : src.metadata()) {
    const std::string& k = kv.key;
    if (e.drop_keys.count(k)) continue;
    if (e.u32.count(k)) {
      w.set_u32(k, e.u32.at(k));
      continue;
    }
    if (e.str.count(k)) {
      w.set_string(k, e.str.at(k));
      continue;
    }
    switch (kv.value.type) {
      case gguf::ValueType::STRING: w.set_string(k, *src.get_string(k)); break;
      case gguf::ValueType::U32: w.set_u32(k, static_cast<uint32_t>(*src.get_uint(k))); break;
      case gguf::ValueType::I32: w.set_i32(k, static_cast<int32_t>(*src.get_int(k))); break;
      case gguf::ValueType::F32: w.set_f32(k, static_cast<float>(*src.get_float(k))); break;
      case gguf::ValueType::BOOL: w.set_bool(k, *src.get_bool(k)); break;
      case gguf::ValueType::ARRAY:
        if (kv.value.elem_type == gguf::ValueType::STRING) w.set_string_array(k, *src.get_string_array(k));
        else if (kv.value.elem_type == gguf::ValueType::I32) w.set_i32_array(k, *src.get_i32_array(k));
        else w.set_f32_array(k, *src.get_f32_array(k));
        break;
      default: FAIL("rewrite: unexpected value type for " << k);
    }
  }
  for (auto& t : src.tensors()) {
    if (e.drop_tensors.count(t.name)) continue;
    if (e.reshape.count(t.name)) {
      auto shape = e.reshape.at(t.name);
      auto n = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
      auto nbytes = *tensor_nbytes(t.type, shape[0], n);
      w.add_tensor(t.name, t.type, shape, [nbytes](uint8_t* o) { std::memset(o, 0, nbytes); });
      continue;
    }
    std::vector<int64_t> shape(t.ne, t.ne + t.n_dims);
    const uint8_t* data = src.tensor_data(t);
    uint64_t nbytes = t.nbytes;
    w.add_tensor(t.name, t.type, shape, [data, nbytes](uint8_t* o) { std::memcpy(o, data, nbytes); });
  }
  w.write(out);
}

}  // namespace

TEST_CASE("formats: describe_model names the key or tensor it rejects", "[formats]") {
  TempDir dir("describe");
  SynthOptions o;
  o.shape = parse_synth_shape("hidden=256,layers=1,heads=4,kv-heads=2,ffn=256,vocab=300");
  o.type = TensorType::F16;
  o.vocab_path = local_testdata("llama3-vocab.gguf");
  synthesize_model(o, dir.file("base.gguf"));
  auto base = gguf::File::open(dir.file("base.gguf"));
  REQUIRE_NOTHROW(describe_model(base));

  auto rejected = [&](const Edits& e, std::vector<std::string> parts) {
    rewrite(base, dir.file("bad.gguf"), e);
    auto f = gguf::File::open(dir.file("bad.gguf"));
    std::string message;
    try {
      describe_model(f);
    } catch (const Error& err) {
      message = err.what();
    }
    INFO("message: " << message);
    REQUIRE(!message.empty());
    CHECK_THAT(message, Catch::Contains("bad.gguf"));
    for (auto& p : parts) CHECK_THAT(message, Catch::Contains(p));
  };
  const std::string a = "bitnet-b1.58.";
  SECTION("unchanged copy is accepted") {
    rewrite(base, dir.file("copy.gguf"), {});
    auto f = gguf::File::open(dir.file("copy.gguf"));
    CHECK(describe_model(f).hparams.n_head == 4);
  }
  SECTION("wrong architecture") {
    Edits e;
    e.str["general.architecture"] = "llama";
    rejected(e, {"general.architecture", "llama"});
  }
  SECTION("missing block_count") {
    Edits e;
    e.drop_keys.insert(a + "block_count");
    rejected(e, {a + "block_count", "missing"});
  }
  SECTION("heads do not divide hidden") {
    Edits e;
    e.u32[a + "attention.head_count"] = 3;
    rejected(e, {a + "attention.head_count", "3"});
  }
  SECTION("kv heads do not divide heads") {
    Edits e;
    e.u32[a + "attention.head_count_kv"] = 3;
    rejected(e, {a + "attention.head_count_kv", "3"});
  }
  SECTION("a tensor of the wrong shape") {
    Edits e;
    e.reshape["blk.0.attn_k.weight"] = {256, 256};
    rejected(e, {"blk.0.attn_k.weight", "shape"});
  }
  SECTION("a missing tensor") {
    Edits e;
    e.drop_tensors.insert("blk.0.ffn_up.weight");
    rejected(e, {"blk.0.ffn_up.weight", "missing"});
  }
  SECTION("a missing norm") {
    Edits e;
    e.drop_tensors.insert("output_norm.weight");
    rejected(e, {"output_norm.weight", "missing"});
  }
}

TEST_CASE("I2_S layouts: arm-64 and x86-1x4 decode what the spec says they store", "[formats]") {
  // Packers written from spec 2.5's words, independent of the decoder.
  const int64_t ne0 = 128, rows = 8, n = ne0 * rows;
  std::mt19937 rng(5);
  std::vector<int8_t> trits(n);
  for (auto& t : trits) t = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  const float scale = 0.75f;
  auto with_scale = [&](std::vector<uint8_t> bytes) {
    bytes.resize(n / 4 + 32, 0);
    std::memcpy(bytes.data() + n / 4, &scale, 4);
    return bytes;
  };
  std::vector<uint8_t> arm(n / 4, 0), interleaved(n / 4, 0);
  for (int64_t i = 0; i < n; ++i) {  // arm-64: element 16g+j of group k at bits 6-2g of byte 16k+j
    int64_t k = i / 64, g = (i % 64) / 16, j = i % 16;
    arm[16 * k + j] |= static_cast<uint8_t>((trits[i] + 1) << (6 - 2 * g));
  }
  for (int64_t r = 0; r < rows; ++r)  // x86-1x4: byte rg*ne0 + c = row 4rg << 6 | row 4rg+1 << 4 | ...
    for (int64_t c = 0; c < ne0; ++c) interleaved[(r / 4) * ne0 + c] |= static_cast<uint8_t>((trits[r * ne0 + c] + 1) << (6 - 2 * (r % 4)));
  for (auto [layout, bytes] : {std::pair{I2SLayout::Arm64, with_scale(arm)}, std::pair{I2SLayout::X86_1x4, with_scale(interleaved)}}) {
    std::vector<float> out(n);
    decode_i2_s(bytes.data(), ne0, n, layout, out.data());
    for (int64_t i = 0; i < n; ++i) REQUIRE(out[i] == trits[i] * scale);
  }
  CHECK(i2s_layout_from_name("x86-128") == I2SLayout::X86_128);
  CHECK_FALSE(i2s_layout_from_name("arm-128"));
}
