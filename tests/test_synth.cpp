// The model synthesizer: every --type round-trips through the GGUF reader and describe_model, BitLinear
// weights are ternary x one scale and identical across types for one seed, and bad shapes are refused.
#include "frontend/gguf.h"
#include "frontend/model.h"
#include "frontend/synth.h"
#include "frontend/tensor_types.h"
#include "ir/error.h"
#include "testdata.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

using namespace bitnet;
using bitnet::test::local_testdata;

namespace {

const char* kTinyShape = "hidden=256,layers=2,heads=4,kv-heads=2,ffn=256,vocab=300";
const char* kBitLinear[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

using bitnet::test::TempDir;

SynthOptions tiny(TensorType type, uint64_t seed = 1) {
  SynthOptions o;
  o.shape = parse_synth_shape(kTinyShape);
  o.type = type;
  o.seed = seed;
  o.vocab_path = local_testdata("llama3-vocab.gguf");
  return o;
}

std::vector<float> decode_tensor(const gguf::File& f, const std::string& name) {
  auto* t = f.tensor(name);
  REQUIRE(t);
  std::vector<float> out(static_cast<size_t>(t->n_elements()));
  decode_to_f32(t->type, f.tensor_data(*t), t->n_elements(), out.data());
  return out;
}

// Every BitLinear weight of the file, decoded, by name.
std::map<std::string, std::vector<float>> bitlinear_weights(const gguf::File& f, int64_t layers) {
  std::map<std::string, std::vector<float>> out;
  for (int64_t l = 0; l < layers; ++l) {
    for (auto* w : kBitLinear) {
      std::string name = "blk." + std::to_string(l) + "." + w + ".weight";
      out[name] = decode_tensor(f, name);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("synth: every type round-trips through File::open and describe_model", "[synth]") {
  TempDir dir("synth");
  std::map<std::string, std::vector<float>> reference;
  std::vector<float> embd_ref;
  for (TensorType type : {TensorType::I2_S, TensorType::TQ1_0, TensorType::TQ2_0, TensorType::F16, TensorType::F32}) {
    INFO("type " << tensor_type_name(type));
    auto path = dir.file(std::string("m-") + tensor_type_name(type) + ".gguf");
    synthesize_model(tiny(type), path);
    auto f = gguf::File::open(path);
    CHECK(f.tensors().size() == 2 + 11 * 2);
    CHECK(f.get_string("general.architecture") == std::string("bitnet-b1.58"));

    auto d = describe_model(f);
    CHECK(d.hparams.n_embd == 256);
    CHECK(d.hparams.n_layer == 2);
    CHECK(d.hparams.n_head == 4);
    CHECK(d.hparams.n_head_kv == 2);
    CHECK(d.hparams.head_dim == 64);
    CHECK(d.hparams.n_ff == 256);
    CHECK(d.hparams.n_vocab == 300);
    CHECK(d.hparams.tied_head);
    CHECK(d.tensors.token_embd->type == TensorType::F16);
    CHECK(d.tensors.output_norm->type == TensorType::F32);

    auto weights = bitlinear_weights(f, 2);
    for (auto& [name, w] : weights) {
      INFO("tensor " << name);
      CHECK(f.tensor(name)->type == type);
      // Exactly {-s, 0, +s} for one positive scale s.
      float s = 0;
      for (float x : w) s = std::max(s, std::fabs(x));
      REQUIRE(s > 0);
      std::set<float> values(w.begin(), w.end());
      CHECK(values == std::set<float>{-s, 0.0f, s});
    }
    if (reference.empty()) {
      reference = weights;
    } else {
      for (auto& [name, w] : weights) {
        INFO("tensor " << name << " differs from the i2_s model");
        CHECK(w == reference[name]);
      }
    }
    // Norms and the embedding do not depend on the type either.
    auto embd = decode_tensor(f, "token_embd.weight");
    if (embd_ref.empty()) embd_ref = embd;
    CHECK(embd == embd_ref);
  }
}

TEST_CASE("synth: the seed changes the weights and only the seed", "[synth]") {
  TempDir dir("seed");
  synthesize_model(tiny(TensorType::TQ2_0, 1), dir.file("a.gguf"));
  synthesize_model(tiny(TensorType::TQ2_0, 1), dir.file("a2.gguf"));
  synthesize_model(tiny(TensorType::TQ2_0, 2), dir.file("b.gguf"));
  auto a = gguf::File::open(dir.file("a.gguf"));
  auto a2 = gguf::File::open(dir.file("a2.gguf"));
  auto b = gguf::File::open(dir.file("b.gguf"));
  CHECK(bitlinear_weights(a, 2) == bitlinear_weights(a2, 2));
  auto wa = bitlinear_weights(a, 2), wb = bitlinear_weights(b, 2);
  for (auto& [name, w] : wa) {
    INFO("tensor " << name);
    CHECK(w != wb[name]);
  }
  CHECK(decode_tensor(a, "token_embd.weight") != decode_tensor(b, "token_embd.weight"));
}

TEST_CASE("synth: shape strings", "[synth]") {
  SECTION("named presets and defaults") {
    auto s = parse_synth_shape("2b4t");
    CHECK(s.hidden == 2560);
    CHECK(s.layers == 30);
    CHECK(s.kv_heads == 5);
    auto p = parse_synth_shape("layers=3");
    CHECK(p.layers == 3);
    CHECK(p.hidden == 2560);
    CHECK_NOTHROW(parse_synth_shape("tiny"));
  }
  SECTION("a value that is not a number") {
    REQUIRE_THROWS_WITH(parse_synth_shape("hidden=abc"), Catch::Contains("hidden") && Catch::Contains("abc"));
  }
  SECTION("an unknown field") {
    REQUIRE_THROWS_WITH(parse_synth_shape("hidden=256,depth=3"), Catch::Contains("depth"));
  }
  SECTION("an item without '='") {
    REQUIRE_THROWS_WITH(parse_synth_shape("hidden"), Catch::Contains("hidden"));
  }
  SECTION("zero or negative") {
    REQUIRE_THROWS_WITH(parse_synth_shape("layers=0"), Catch::Contains("layers"));
    REQUIRE_THROWS_WITH(parse_synth_shape("heads=-4"), Catch::Contains("heads"));
  }
}

TEST_CASE("synth: inconsistent shapes are refused before anything is written", "[synth]") {
  TempDir dir("badshape");
  auto refused = [&](const std::string& shape, std::vector<std::string> parts) {
    auto o = tiny(TensorType::I2_S);
    o.shape = parse_synth_shape(shape);
    auto out = dir.file("x.gguf");
    std::string message;
    try {
      synthesize_model(o, out);
    } catch (const Error& e) {
      message = e.what();
    }
    INFO("message: " << message);
    REQUIRE(!message.empty());
    for (auto& p : parts) CHECK_THAT(message, Catch::Contains(p));
    CHECK(std::filesystem::is_empty(dir.path));
  };
  SECTION("heads do not divide hidden") { refused("hidden=256,layers=1,heads=3,kv-heads=1,ffn=256,vocab=300", {"heads=3", "hidden=256"}); }
  SECTION("kv heads do not divide heads") { refused("hidden=256,layers=1,heads=4,kv-heads=3,ffn=256,vocab=300", {"kv-heads=3"}); }
  SECTION("ffn not a multiple of the block") { refused("hidden=256,layers=1,heads=4,kv-heads=2,ffn=200,vocab=300", {"ffn=200"}); }
  SECTION("vocab too small") { refused("hidden=256,layers=1,heads=4,kv-heads=2,ffn=256,vocab=10", {"vocab=10"}); }
}

TEST_CASE("synth: an output path in a missing directory fails and leaves nothing", "[synth]") {
  TempDir dir("missing");
  auto out = dir.file("no/such/dir/model.gguf");
  REQUIRE_THROWS_WITH(synthesize_model(tiny(TensorType::TQ1_0), out), Catch::Contains(out));
  CHECK_FALSE(std::filesystem::exists(dir.path / "no"));
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("synth: no tokenizer source is an error", "[synth]") {
  TempDir dir("novocab");
  auto o = tiny(TensorType::I2_S);
  o.vocab_path.clear();
  REQUIRE_THROWS_WITH(synthesize_model(o, dir.file("m.gguf")), Catch::Contains("vocab"));
  o.vocab_path = dir.file("absent.gguf");
  REQUIRE_THROWS_WITH(synthesize_model(o, dir.file("m.gguf")), Catch::Contains("absent.gguf"));
}
