// `bitnetc import` (frontend/import.h): a tokenizer JSON and a weight dump built here in C++ import into every
// BitLinear type and decode to the same trit × scale weights; bad dumps and tokenizers fail with the file and
// the field in the message and leave no output; the committed trained models in models/ load and their I2_S
// and TQ2_0 files hold identical weights.
#include "frontend/gguf.h"
#include "frontend/import.h"
#include "frontend/model.h"
#include "frontend/tensor_types.h"
#include "frontend/tokenizer_gguf.h"
#include "ir/error.h"
#include "runtime/tokenizer.h"
#include "testdata.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace bitnet;
using bitnet::test::TempDir;
using nlohmann::json;

namespace {

const char* kBitLinear[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// GPT-2's byte → code point table (spec 5.2), as UTF-8.
std::string byte_token(int b) {
  bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int k = 0;
    for (int x = 0; x < b; ++x) {
      bool p = (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
      if (!p) ++k;
    }
    cp = 0x100 + k;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// 256 byte tokens, three merges (Ġ t, h e, Ġt he), three specials: 262 tokens.
json tokenizer_json() {
  json tokens = json::array();
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_token(b));
  const std::string space = byte_token(' ');
  for (std::string t : {space + "t", std::string("he"), space + "the"}) tokens.push_back(t);
  for (const char* s : {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"}) tokens.push_back(s);
  return {{"format", "bitnetc-bpe-v1"}, {"model", "gpt2"}, {"pre", "llama-bpe"}, {"tokens", tokens},
          {"merges", {space + " t", "h e", space + "t he"}}, {"bos_id", 259}, {"eos_id", 260}, {"eot_id", 261}};
}

struct Config {
  int64_t hidden = 256, layers = 2, heads = 4, kv_heads = 2, ffn = 256, vocab = 262, context = 64;
};

// What the dump holds, decoded: the reference every imported GGUF must reproduce.
struct Expected {
  std::map<std::string, std::vector<float>> weights;  // by GGUF name, row-major
};

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Writes DIR/manifest.json + DIR/weights.bin for `c` with deterministic values: trits cycle through a small
// LCG, scales are f16-exact, norms f32, the embedding f16. `edit` may change the manifest before it is saved.
Expected write_dump(const std::string& dir, const Config& c, const std::function<void(json&)>& edit = {}) {
  std::filesystem::create_directories(dir);
  Expected e;
  std::string data;
  json tensors = json::object();
  uint32_t state = 12345;
  auto next = [&state] { return state = state * 1664525u + 1013904223u; };
  auto add_float = [&](const std::string& name, std::vector<int64_t> shape, bool f16) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> values(n);
    tensors[name] = {{"dtype", f16 ? "f16" : "f32"}, {"shape", shape}, {"offset", data.size()}};
    for (int64_t i = 0; i < n; ++i) {
      float v = (static_cast<float>(next() >> 8) / 16777216.0f - 0.5f) * (f16 ? 0.2f : 1.0f) + (f16 ? 0.0f : 1.0f);
      if (f16) {
        uint16_t h = f32_to_f16(v);
        data.append(reinterpret_cast<const char*>(&h), 2);
        v = f16_to_f32(h);
      } else {
        data.append(reinterpret_cast<const char*>(&v), 4);
      }
      values[i] = v;
    }
    e.weights[name] = values;
  };
  auto add_trits = [&](const std::string& name, int64_t in, int64_t out, float scale) {
    int64_t n = in * out;
    tensors[name] = {{"dtype", "trit2"}, {"shape", {in, out}}, {"offset", data.size()}, {"scale", scale}};
    std::vector<float> values(n);
    std::string packed((n + 3) / 4, '\0');
    for (int64_t i = 0; i < n; ++i) {
      int trit = static_cast<int>(next() >> 16) % 3 - 1;
      packed[i / 4] = static_cast<char>(packed[i / 4] | ((trit + 1) << (2 * (i % 4))));
      values[i] = static_cast<float>(trit) * scale;
    }
    data += packed;
    e.weights[name] = values;
  };
  const int64_t kv_dim = c.kv_heads * (c.hidden / c.heads);
  add_float("token_embd.weight", {c.hidden, c.vocab}, true);
  add_float("output_norm.weight", {c.hidden}, false);
  for (int64_t l = 0; l < c.layers; ++l) {
    auto name = [l](const char* what) { return "blk." + std::to_string(l) + "." + what + ".weight"; };
    for (const char* norm : {"attn_norm", "attn_sub_norm", "ffn_norm"}) add_float(name(norm), {c.hidden}, false);
    add_float(name("ffn_sub_norm"), {c.ffn}, false);
    float scale = 0.03125f * static_cast<float>(l + 1);  // exact in f16
    add_trits(name("attn_q"), c.hidden, c.hidden, scale);
    add_trits(name("attn_k"), c.hidden, kv_dim, scale * 1.5f);
    add_trits(name("attn_v"), c.hidden, kv_dim, scale * 0.75f);
    add_trits(name("attn_output"), c.hidden, c.hidden, scale * 1.25f);
    add_trits(name("ffn_gate"), c.hidden, c.ffn, scale * 0.5f);
    add_trits(name("ffn_up"), c.hidden, c.ffn, scale * 0.625f);
    add_trits(name("ffn_down"), c.ffn, c.hidden, scale * 0.875f);
  }
  json manifest = {{"format", "bitnetc-weights-v1"},
                   {"name", "test-import"},
                   {"config", {{"hidden", c.hidden}, {"layers", c.layers}, {"heads", c.heads}, {"kv_heads", c.kv_heads},
                               {"ffn", c.ffn}, {"vocab", c.vocab}, {"context", c.context}, {"rope_base", 10000.0},
                               {"rms_eps", 1e-5}}},
                   {"data", "weights.bin"},
                   {"tensors", tensors}};
  if (edit) edit(manifest);
  write_file(dir + "/manifest.json", manifest.dump(1));
  write_file(dir + "/weights.bin", data);
  return e;
}

std::vector<float> decode_tensor(const gguf::File& f, const std::string& name) {
  auto* t = f.tensor(name);
  REQUIRE(t);
  std::vector<float> out(static_cast<size_t>(t->n_elements()));
  decode_to_f32(t->type, f.tensor_data(*t), t->n_elements(), out.data());
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("import: a dump imports into every type and decodes to the same trit x scale weights", "[import]") {
  TempDir dir("import");
  write_file(dir.file("tok.json"), tokenizer_json().dump());
  Config c;
  Expected e = write_dump(dir.file("dump"), c);
  for (TensorType type : {TensorType::I2_S, TensorType::TQ1_0, TensorType::TQ2_0, TensorType::F16, TensorType::F32}) {
    INFO("type " << tensor_type_name(type));
    auto path = dir.file(std::string("m-") + tensor_type_name(type) + ".gguf");
    ImportSummary s = import_model(dir.file("tok.json"), dir.file("dump"), type, path);
    CHECK(s.scales_rounded == 0);
    auto f = gguf::File::open(path);
    CHECK(f.tensors().size() == 2 + 11 * 2);
    CHECK(f.get_string("general.architecture") == std::string("bitnet-b1.58"));
    CHECK(f.get_string("general.name") == std::string("test-import"));
    CHECK(f.get_uint("tokenizer.ggml.eot_token_id") == 261u);
    CHECK(f.get_float("bitnet-b1.58.rope.freq_base") == 10000.0);
    auto d = describe_model(f);
    CHECK(d.hparams.n_embd == 256);
    CHECK(d.hparams.n_layer == 2);
    CHECK(d.hparams.n_head_kv == 2);
    CHECK(d.hparams.n_vocab == 262);
    CHECK(d.hparams.n_ctx_train == 64);
    CHECK(d.hparams.tied_head);
    CHECK(d.tensors.token_embd->type == TensorType::F16);
    CHECK(d.tensors.output_norm->type == TensorType::F32);
    for (auto& [name, values] : e.weights) {
      INFO("tensor " << name);
      CHECK(decode_tensor(f, name) == values);
    }
    for (int l = 0; l < 2; ++l) {
      for (auto* w : kBitLinear) CHECK(f.tensor("blk." + std::to_string(l) + "." + w + ".weight")->type == type);
    }
    // The imported tokenizer works on the model file.
    Tokenizer tok(read_tokenizer_vocab(f));
    CHECK(tok.encode(" the", true, false) == std::vector<int32_t>{259, 258});
  }
}

TEST_CASE("import: vocabulary-only GGUF", "[import]") {
  TempDir dir("import-vocab");
  write_file(dir.file("tok.json"), tokenizer_json().dump());
  write_vocab_gguf(read_tokenizer_json(dir.file("tok.json")), dir.file("vocab.gguf"));
  auto f = gguf::File::open(dir.file("vocab.gguf"));
  CHECK(f.tensors().empty());
  CHECK(f.get_uint("bitnet-b1.58.vocab_size") == 262u);
  auto vocab = read_tokenizer_vocab(f);
  CHECK(vocab.bos_id == 259);
  CHECK(vocab.eos_id == 260);
  CHECK(vocab.token_types[261] == static_cast<int32_t>(TokenType::Control));
  CHECK(vocab.token_types[100] == static_cast<int32_t>(TokenType::Normal));
  Tokenizer tok(std::move(vocab));
  CHECK(tok.encode("he the", false, false) == std::vector<int32_t>{257, 258});
  CHECK(tok.encode("<|eot_id|>", false, true) == std::vector<int32_t>{261});
}

TEST_CASE("import: scales that are not f16-exact are rounded the same for every type", "[import]") {
  TempDir dir("import-round");
  write_file(dir.file("tok.json"), tokenizer_json().dump());
  const float odd = 0.0123456789f;
  write_dump(dir.file("dump"), Config{}, [&](json& m) { m["tensors"]["blk.0.attn_q.weight"]["scale"] = odd; });
  auto s = import_model(dir.file("tok.json"), dir.file("dump"), TensorType::I2_S, dir.file("a.gguf"));
  CHECK(s.scales_rounded == 1);
  import_model(dir.file("tok.json"), dir.file("dump"), TensorType::TQ2_0, dir.file("b.gguf"));
  auto a = gguf::File::open(dir.file("a.gguf"));
  auto b = gguf::File::open(dir.file("b.gguf"));
  auto wa = decode_tensor(a, "blk.0.attn_q.weight");
  CHECK(wa == decode_tensor(b, "blk.0.attn_q.weight"));
  float s_max = 0;
  for (float x : wa) s_max = std::max(s_max, std::fabs(x));
  CHECK(s_max == f16_to_f32(f32_to_f16(odd)));
}

TEST_CASE("import: bad dumps and tokenizers fail naming the file and the field, and write nothing", "[import]") {
  TempDir dir("import-bad");
  write_file(dir.file("tok.json"), tokenizer_json().dump());
  const std::string out = dir.file("out.gguf");
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    std::vector<std::string> expect;  // substrings of the message
    TensorType type = TensorType::I2_S;
  };
  std::vector<Case> cases = {
      {"wrong format", [](json& m) { m["format"] = "v0"; }, {"manifest.json.format", "v0"}},
      {"heads do not divide hidden", [](json& m) { m["config"]["heads"] = 3; }, {"manifest.json.config.heads", "3"}},
      {"zero layers", [](json& m) { m["config"]["layers"] = 0; }, {"config.layers", "outside"}},
      {"huge hidden", [](json& m) { m["config"]["hidden"] = 18446744073709551615ull; }, {"config.hidden", "outside"}},
      {"kv_heads not an integer", [](json& m) { m["config"]["kv_heads"] = "two"; }, {"config.kv_heads", "integer"}},
      {"missing config field", [](json& m) { m["config"].erase("ffn"); }, {"config.ffn", "missing"}},
      {"eps out of range", [](json& m) { m["config"]["rms_eps"] = 0.5; }, {"config.rms_eps"}},
      {"vocab differs from the tokenizer", [](json& m) { m["config"]["vocab"] = 300; }, {"config.vocab", "tok.json"}},
      {"missing tensor", [](json& m) { m["tensors"].erase("blk.1.ffn_up.weight"); },
       {"manifest.json: tensors.blk.1.ffn_up.weight: missing"}},
      {"extra tensor", [](json& m) { m["tensors"]["output.weight"] = m["tensors"]["token_embd.weight"]; },
       {"tensors.output.weight", "not a tensor of this model"}},
      {"wrong shape", [](json& m) { m["tensors"]["blk.0.attn_k.weight"]["shape"] = {256, 256}; },
       {"tensors.blk.0.attn_k.weight.shape", "[256,128]"}},
      {"float BitLinear", [](json& m) { m["tensors"]["blk.0.attn_q.weight"]["dtype"] = "f32"; },
       {"tensors.blk.0.attn_q.weight.dtype", "trit2"}},
      {"unknown dtype", [](json& m) { m["tensors"]["output_norm.weight"]["dtype"] = "bf16"; },
       {"tensors.output_norm.weight.dtype", "bf16"}},
      {"offset past the end", [](json& m) { m["tensors"]["blk.1.ffn_down.weight"]["offset"] = 100000000; },
       {"tensors.blk.1.ffn_down.weight.offset", "weights.bin"}},
      {"negative offset", [](json& m) { m["tensors"]["output_norm.weight"]["offset"] = -4; },
       {"tensors.output_norm.weight.offset", "-4"}},
      {"zero scale", [](json& m) { m["tensors"]["blk.0.ffn_gate.weight"]["scale"] = 0.0; },
       {"tensors.blk.0.ffn_gate.weight.scale"}},
      {"missing scale", [](json& m) { m["tensors"]["blk.0.ffn_gate.weight"].erase("scale"); },
       {"tensors.blk.0.ffn_gate.weight.scale", "missing"}},
      {"scale on a norm", [](json& m) { m["tensors"]["output_norm.weight"]["scale"] = 1.0; },
       {"tensors.output_norm.weight.scale"}},
      {"data file outside the folder", [](json& m) { m["data"] = "../weights.bin"; }, {"manifest.json.data"}},
      {"data file missing", [](json& m) { m["data"] = "nothing.bin"; }, {"nothing.bin"}},
      {"hidden not a multiple of the TQ block", [](json& m) { m["config"]["hidden"] = 128; m["config"]["heads"] = 2; },
       {"config.hidden", "256", "TQ2_0"}, TensorType::TQ2_0},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    TempDir d(std::string("import-bad-case"));
    write_dump(d.file("dump"), Config{}, c.edit);
    std::string message = error_of([&] { import_model(dir.file("tok.json"), d.file("dump"), c.type, out); });
    INFO(message);
    for (const auto& s : c.expect) CHECK(message.find(s) != std::string::npos);
    CHECK(!std::filesystem::exists(out));
  }

  SECTION("bad bytes in the data file") {
    TempDir d("import-bytes");
    Expected e = write_dump(d.file("dump"), Config{});
    json m = json::parse(std::ifstream(d.file("dump/manifest.json")));
    std::fstream data(d.file("dump/weights.bin"), std::ios::in | std::ios::out | std::ios::binary);
    // Code 3 in the first byte of blk.0.attn_v.weight.
    data.seekp(m["tensors"]["blk.0.attn_v.weight"]["offset"].get<int64_t>());
    data.put(static_cast<char>(0x03));
    // NaN as element 5 of blk.1.ffn_norm.weight.
    data.seekp(m["tensors"]["blk.1.ffn_norm.weight"]["offset"].get<int64_t>() + 5 * 4);
    float nan = std::nanf("");
    data.write(reinterpret_cast<const char*>(&nan), 4);
    data.close();
    std::string message = error_of([&] { import_model(dir.file("tok.json"), d.file("dump"), TensorType::I2_S, out); });
    CHECK(message.find("tensors.blk.0.attn_v.weight") != std::string::npos);
    CHECK(message.find("code 3") != std::string::npos);
    // Repair the code; the NaN is next.
    data.open(d.file("dump/weights.bin"), std::ios::in | std::ios::out | std::ios::binary);
    data.seekp(m["tensors"]["blk.0.attn_v.weight"]["offset"].get<int64_t>());
    data.put(static_cast<char>(0x00));
    data.close();
    message = error_of([&] { import_model(dir.file("tok.json"), d.file("dump"), TensorType::I2_S, out); });
    CHECK(message.find("tensors.blk.1.ffn_norm.weight") != std::string::npos);
    CHECK(message.find("element 5") != std::string::npos);
    CHECK(!std::filesystem::exists(out));
  }

  SECTION("missing manifest and broken JSON") {
    std::string message = error_of([&] { import_model(dir.file("tok.json"), dir.file("nowhere"), TensorType::I2_S, out); });
    CHECK(message.find("nowhere/manifest.json") != std::string::npos);
    CHECK(message.find("cannot open") != std::string::npos);
    std::filesystem::create_directories(dir.file("broken"));
    write_file(dir.file("broken/manifest.json"), "{\"format\": ");
    message = error_of([&] { import_model(dir.file("tok.json"), dir.file("broken"), TensorType::I2_S, out); });
    CHECK(message.find("broken/manifest.json") != std::string::npos);
    CHECK(message.find("not valid JSON") != std::string::npos);
  }

  SECTION("bad tokenizers") {
    struct TokCase {
      const char* what;
      std::function<void(json&)> edit;
      std::vector<std::string> expect;
    };
    std::vector<TokCase> tok_cases = {
        {"format", [](json& t) { t["format"] = "hf"; }, {"bad-tok.json.format", "hf"}},
        {"model", [](json& t) { t["model"] = "llama"; }, {"bad-tok.json.model", "llama"}},
        {"bos out of range", [](json& t) { t["bos_id"] = 262; }, {"bad-tok.json.bos_id", "262"}},
        {"missing eos", [](json& t) { t.erase("eos_id"); }, {"bad-tok.json.eos_id", "missing"}},
        {"token not a string", [](json& t) { t["tokens"][7] = 7; }, {"bad-tok.json.tokens[7]"}},
        {"merge of unknown tokens", [](json& t) { t["merges"].push_back("xyz q"); }, {"bad-tok.json", "xyz"}},
    };
    for (const TokCase& c : tok_cases) {
      INFO(c.what);
      json t = tokenizer_json();
      c.edit(t);
      write_file(dir.file("bad-tok.json"), t.dump());
      std::string message = error_of([&] { read_tokenizer_json(dir.file("bad-tok.json")); });
      INFO(message);
      for (const auto& s : c.expect) CHECK(message.find(s) != std::string::npos);
    }
  }
}

TEST_CASE("import: the committed trained models load and their I2_S and TQ2_0 files hold the same weights", "[import]") {
  const std::string models = std::string(BITNETC_SOURCE_DIR) + "/models/";
  const std::string i2s = models + "bitnet-brown-23m-i2_s.gguf", tq2 = models + "bitnet-brown-23m-tq2_0.gguf";
  REQUIRE(std::filesystem::exists(i2s));
  REQUIRE(std::filesystem::exists(tq2));
  auto a = gguf::File::open(i2s);
  auto b = gguf::File::open(tq2);
  auto da = describe_model(a);
  auto db = describe_model(b);
  CHECK(da.hparams.arch == "bitnet-b1.58");
  CHECK(da.hparams.tied_head);
  CHECK(da.hparams.n_layer == db.hparams.n_layer);
  CHECK(da.hparams.n_vocab == 4096);
  CHECK(da.tensors.layers[0].attn_q->type == TensorType::I2_S);
  CHECK(db.tensors.layers[0].attn_q->type == TensorType::TQ2_0);
  REQUIRE(a.tensors().size() == b.tensors().size());
  for (const auto& t : a.tensors()) {
    INFO("tensor " << t.name);
    auto wa = decode_tensor(a, t.name);
    CHECK(wa == decode_tensor(b, t.name));
    if (t.type == TensorType::I2_S) {
      // Ternary x one scale, with both signs present.
      float s = 0;
      for (float x : wa) s = std::max(s, std::fabs(x));
      bool ternary = true;
      for (float x : wa) ternary = ternary && (x == 0.0f || x == s || x == -s);
      CHECK(ternary);
      CHECK(s > 0);
    }
  }
  // The vocabulary is the project's trained one: 4093 BPE tokens and the three specials.
  Tokenizer tok(read_tokenizer_vocab(a));
  CHECK(tok.bos() == 4093);
  CHECK(tok.encode("The jury said", false, false).size() <= 4);
}
