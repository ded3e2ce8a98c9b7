// bitnet-tokenizer-bench: how fast the tokenizer encodes and decodes. Loads the vocabulary from a GGUF,
// repeats the text file until it is at least 1 MB (short files would time mostly the per-call setup),
// encodes it several times and reports the median throughput, plus the token count and a decode round-trip
// check so a fast but wrong tokenizer cannot post a number.
//
//   bitnet-tokenizer-bench <vocab.gguf> <text file> [--json]
#include "frontend/gguf.h"
#include "frontend/tokenizer_gguf.h"
#include "ir/error.h"
#include "runtime/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

namespace {

constexpr size_t kMinBytes = 1 << 20;
constexpr int kRuns = 7;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int run(int argc, char** argv) {
  bool json = false;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) json = true;
    else paths.emplace_back(argv[i]);
  }
  if (paths.size() != 2) {
    fmt::print(stderr, "usage: bitnet-tokenizer-bench <vocab.gguf> <text file> [--json]\n");
    return 2;
  }

  auto start = std::chrono::steady_clock::now();
  bitnet::Tokenizer tokenizer(bitnet::read_tokenizer_vocab(bitnet::gguf::File::open(paths[0])));
  double load_s = seconds_since(start);
  if (!json)
    for (const auto& note : tokenizer.notes()) fmt::print(stderr, "{}\n", note);

  std::ifstream in(paths[1], std::ios::binary);
  if (!in) bitnet::fail("{}: cannot open text file", paths[1]);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string original = buffer.str();
  if (original.empty()) bitnet::fail("{}: text file is empty", paths[1]);
  std::string text = original;
  while (text.size() < kMinBytes) text += original;
  const double megabytes = static_cast<double>(text.size()) / 1e6;

  std::vector<int32_t> ids = tokenizer.encode(text, false, false);  // warm-up, and the ids to check
  std::vector<double> encode_mbps, decode_mbps;
  for (int r = 0; r < kRuns; ++r) {
    start = std::chrono::steady_clock::now();
    std::vector<int32_t> again = tokenizer.encode(text, false, false);
    encode_mbps.push_back(megabytes / seconds_since(start));
    if (again != ids) bitnet::fail("encode is not deterministic");
    start = std::chrono::steady_clock::now();
    std::string back = tokenizer.decode(ids, false);
    decode_mbps.push_back(megabytes / seconds_since(start));
    if (back != text) bitnet::fail("decode(encode(text)) differs from the text");
  }

  if (json) {
    fmt::print("{{\"vocab\": \"{}\", \"text\": \"{}\", \"bytes\": {}, \"tokens\": {}, \"bytes_per_token\": {:.3f}, "
               "\"runs\": {}, \"encode_mb_per_s\": {:.2f}, \"decode_mb_per_s\": {:.2f}, \"load_s\": {:.3f}}}\n",
               paths[0], paths[1], text.size(), ids.size(), static_cast<double>(text.size()) / ids.size(), kRuns,
               median(encode_mbps), median(decode_mbps), load_s);
  } else {
    fmt::print("vocab {} ({} tokens, pre-tokenizer {}) loaded in {:.3f} s\n", paths[0], tokenizer.vocab_size(),
               tokenizer.pre_tokenizer(), load_s);
    fmt::print("text {}: {} bytes ({} repeats), {} tokens, {:.2f} bytes/token\n", paths[1], text.size(),
               text.size() / original.size(), ids.size(), static_cast<double>(text.size()) / ids.size());
    fmt::print("encode: {:.2f} MB/s (median of {}), decode: {:.2f} MB/s; round trip ok\n", median(encode_mbps), kRuns,
               median(decode_mbps));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const bitnet::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
