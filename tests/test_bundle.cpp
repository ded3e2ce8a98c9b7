// The bundle container (runtime/bundle.h): a compiled golden model opens; any corrupted byte, truncation,
// foreign magic, newer version or foreign target is refused by name. Also the IR text format: print/parse
// round trip on every golden model and parser errors that name the line.
#include "frontend/compile.h"
#include "ir/error.h"
#include "ir/ir.h"
#include "runtime/bundle.h"
#include "runtime/model.h"
#include "testdata.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

using namespace bitnet;
using bitnet::test::have_shared;
using bitnet::test::shared_testdata;

namespace {

using bitnet::test::TempDir;

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The section table as the file states it (header 64 bytes, then 40-byte entries: name[16], offset, size, hash).
struct Entry {
  std::string name;
  uint64_t offset, size;
};
std::vector<Entry> section_table(const std::vector<uint8_t>& b) {
  uint32_t count;
  std::memcpy(&count, b.data() + 12, 4);
  std::vector<Entry> out;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = b.data() + 64 + 40 * i;
    Entry entry;
    entry.name = std::string(reinterpret_cast<const char*>(e), strnlen(reinterpret_cast<const char*>(e), 16));
    std::memcpy(&entry.offset, e + 16, 8);
    std::memcpy(&entry.size, e + 24, 8);
    out.push_back(entry);
  }
  return out;
}

std::string open_error(const std::string& path) {
  try {
    Bundle::open(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const char* kModels[] = {"p1-gqa", "p2-mha"};
const char* kFormats[] = {"f32", "f16", "tq1_0", "tq2_0", "i2_s"};

}  // namespace

TEST_CASE("bundle: a compiled golden model opens and corruption is refused", "[bundle]") {
  const std::string rel = "golden/p1-gqa/model-i2_s.gguf";
  if (!have_shared(rel)) return;
  TempDir dir("bundle");
  const auto good = dir.file("m.bnc");
  auto report = compile_gguf(shared_testdata(rel), good, CompileOptions{});
  CHECK(report.bundle_bytes == std::filesystem::file_size(good));
  // merge-matmuls stacks Q/K/V into one weight and gate/up into one: 11 - 3 per layer.
  CHECK(report.n_weights == 2 + (11 - 3) * 2);

  {
    auto b = Bundle::open(good);
    CHECK(b.target() == "ref");
    for (auto* s : {"meta", "tokenizer", "ir", "plan", "weights"}) {
      INFO("section " << s);
      CHECK(b.has(s));
      CHECK(!b.section(s).empty());
    }
    CHECK_FALSE(b.has("nope"));
    REQUIRE_THROWS_WITH(b.section("nope"), Catch::Contains("nope") && Catch::Contains("missing"));
    CHECK_NOTHROW(ir::parse(b.section_text("ir"), "<bundle>"));
  }
  REQUIRE_NOTHROW(Model::load(good));

  const auto bytes = read_all(good);
  const auto table = section_table(bytes);
  REQUIRE(table.size() == 5);
  const auto bad = dir.file("bad.bnc");

  SECTION("one flipped byte in any section fails its checksum") {
    for (auto& s : table) {
      for (uint64_t at : {s.offset, s.offset + s.size / 2, s.offset + s.size - 1}) {
        INFO("section " << s.name << " byte " << at);
        auto copy = bytes;
        copy[at] ^= 0x20;
        write_all(bad, copy);
        auto message = open_error(bad);
        CHECK_THAT(message, Catch::Contains(bad) && Catch::Contains("'" + s.name + "'") && Catch::Contains("checksum"));
      }
    }
  }
  SECTION("truncation") {
    for (uint64_t n : {uint64_t(0), uint64_t(10), uint64_t(63), uint64_t(64), uint64_t(100), table.back().offset,
                       uint64_t(bytes.size() - 1)}) {
      INFO("truncated to " << n << " bytes");
      write_all(bad, std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
      CHECK_THAT(open_error(bad), Catch::Contains(bad));
    }
  }
  SECTION("bad magic") {
    auto copy = bytes;
    copy[0] = 'X';
    write_all(bad, copy);
    CHECK_THAT(open_error(bad), Catch::Contains(bad) && Catch::Contains("magic"));
  }
  SECTION("a newer format version") {
    auto copy = bytes;
    uint32_t v = 2;
    std::memcpy(copy.data() + 8, &v, 4);
    write_all(bad, copy);
    CHECK_THAT(open_error(bad), Catch::Contains("version") && Catch::Contains("newer"));
    v = 0;
    std::memcpy(copy.data() + 8, &v, 4);
    write_all(bad, copy);
    CHECK_THAT(open_error(bad), Catch::Contains("version"));
  }
  SECTION("a misaligned section offset") {
    auto copy = bytes;
    uint64_t off = table[0].offset + 8;
    std::memcpy(copy.data() + 64 + 16, &off, 8);
    write_all(bad, copy);
    CHECK_THAT(open_error(bad), Catch::Contains("'" + table[0].name + "'") && Catch::Contains("aligned"));
  }
  SECTION("a section past the end") {
    auto copy = bytes;
    uint64_t size = bytes.size();
    std::memcpy(copy.data() + 64 + 40 * 4 + 24, &size, 8);
    write_all(bad, copy);
    CHECK_THAT(open_error(bad), Catch::Contains("'" + table[4].name + "'") && Catch::Contains("past the end"));
  }
  SECTION("a bundle for another target") {
    auto copy = bytes;
    std::memset(copy.data() + 16, 0, 16);
    std::memcpy(copy.data() + 16, "cuda", 4);
    write_all(bad, copy);
    CHECK(Bundle::open(bad).target() == "cuda");  // the container is fine; the runtime refuses it
    REQUIRE_THROWS_WITH(Model::load(bad), Catch::Contains(bad) && Catch::Contains("cuda") && Catch::Contains("target"));
  }
  SECTION("a file that does not exist") {
    REQUIRE_THROWS_WITH(Bundle::open(dir.file("absent.bnc")), Catch::Contains("absent.bnc"));
  }
}

TEST_CASE("ir: print(parse(text)) reproduces the IR of every golden model", "[bundle][ir]") {
  for (auto* model : kModels) {
    for (auto* fmt : kFormats) {
      std::string rel = std::string("golden/") + model + "/model-" + fmt + ".gguf";
      if (std::string(model) == "p2-mha" && std::string(fmt) == "f32") continue;  // no such file
      if (!have_shared(rel)) return;
      for (std::string act : {"int8_token", "none"}) {
        INFO(rel << " act_quant=" << act);
        LowerOptions options;
        options.act_quant = act;
        std::string text = lowered_ir_text(shared_testdata(rel), options);
        REQUIRE(!text.empty());
        CHECK(text.find("act_quant = \"" + act + "\"") != std::string::npos);
        CHECK(ir::print(ir::parse(text, "x")) == text);
      }
    }
  }
}

namespace {

// A small valid module; the error tests below break one line of it.
const std::string kSmallIr =
    "weight @w : f32[4]\n"                                                   // line 1
    "weight @e : f16[10, 4]\n"                                               // line 2
    "\n"                                                                     // line 3
    "func @step(%tokens: i32[T], %pos: i32[T], %seq: i32[T]) -> f32[T, 10] {\n"  // line 4
    "  %x = embed(%tokens, @e) : f32[T, 4]\n"                                // line 5
    "  %n = rmsnorm(%x, @w) {eps = 1e-05} : f32[T, 4]\n"                     // line 6
    "  %s = add(%x, %n) : f32[T, 4]\n"                                       // line 7
    "  %l = matmul(%s, @e) : f32[T, 10]\n"                                   // line 8
    "  return %l\n"                                                          // line 9
    "}\n";

std::string replace(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("ir: the small module parses and prints back", "[bundle][ir]") {
  auto m = ir::parse(kSmallIr, "small.ir");
  CHECK(m.nodes.size() == 4);
  CHECK(m.weights.size() == 2);
  CHECK(ir::print(m) == kSmallIr);
}

TEST_CASE("ir: parser errors name the source and the line", "[bundle][ir]") {
  SECTION("unknown op") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "add(%x, %n)", "frobnicate(%x, %n)"), "x.ir"),
                        Catch::Contains("x.ir:7:") && Catch::Contains("frobnicate"));
  }
  SECTION("wrong arity") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "add(%x, %n)", "add(%x)"), "x.ir"),
                        Catch::Contains("x.ir:7:") && Catch::Contains("add"));
  }
  SECTION("declared result type does not match") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "add(%x, %n) : f32[T, 4]", "add(%x, %n) : f32[T, 5]"), "x.ir"),
                        Catch::Contains("x.ir:7:") && Catch::Contains("%s"));
  }
  SECTION("use before definition (a cycle)") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "add(%x, %n)", "add(%x, %s)"), "x.ir"),
                        Catch::Contains("x.ir:7:") && Catch::Contains("%s"));
  }
  SECTION("use of a value defined later") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "rmsnorm(%x, @w)", "rmsnorm(%s, @w)"), "x.ir"),
                        Catch::Contains("x.ir:6:") && Catch::Contains("%s"));
  }
  SECTION("unknown weight") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "rmsnorm(%x, @w)", "rmsnorm(%x, @nope)"), "x.ir"),
                        Catch::Contains("x.ir:6:") && Catch::Contains("@nope"));
  }
  SECTION("unknown attribute") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "{eps = 1e-05}", "{epsilon = 1e-05}"), "x.ir"),
                        Catch::Contains("x.ir:6:") && Catch::Contains("epsilon"));
  }
  SECTION("unknown dtype") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "weight @w : f32[4]", "weight @w : q9[4]"), "x.ir"),
                        Catch::Contains("x.ir:1:") && Catch::Contains("q9"));
  }
  SECTION("a weight declared twice") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "weight @e", "weight @w"), "x.ir"),
                        Catch::Contains("x.ir:2:") && Catch::Contains("@w"));
  }
  SECTION("a value defined twice") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "%s = add", "%n = add"), "x.ir"), Catch::Contains("%n"));
  }
  SECTION("declared return type does not match") {
    REQUIRE_THROWS_WITH(ir::parse(replace(kSmallIr, "-> f32[T, 10]", "-> f32[T, 4]"), "x.ir"),
                        Catch::Contains("x.ir:") && Catch::Contains("return"));
  }
}
