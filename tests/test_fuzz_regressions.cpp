// Every input a fuzzer ever crashed on stays here as a regression test: each file under
// tests/data/fuzz/<target>/ goes through the same code as the fuzz target (tests/fuzz/fuzz_<target>.cpp).
// Refusing the input is fine; crashing is not (the sanitizer build also catches undefined behaviour).
#include "tests/testdata.h"

#include <filesystem>
#include <fstream>
#include <vector>

int fuzz_gguf(const uint8_t* data, size_t size);
int fuzz_ir(const uint8_t* data, size_t size);
int fuzz_bundle(const uint8_t* data, size_t size);
int fuzz_tokenizer(const uint8_t* data, size_t size);

namespace {

size_t run_all(const std::string& target, int (*fuzz)(const uint8_t*, size_t)) {
  size_t n = 0;
  auto dir = bitnet::test::local_testdata("fuzz/" + target);
  if (!std::filesystem::exists(dir)) return 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
    INFO(entry.path().string());
    CHECK(fuzz(bytes.data(), bytes.size()) == 0);
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz regressions: saved crash inputs no longer crash", "[fuzz]") {
  size_t total = run_all("gguf", fuzz_gguf) + run_all("ir", fuzz_ir) + run_all("bundle", fuzz_bundle) + run_all("tokenizer", fuzz_tokenizer);
  CHECK(total >= 1);
}
