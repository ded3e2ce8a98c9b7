// Fuzz target: the bundle reader and the runtime's loader (sections, checksums, IR, tokenizer, plan). The
// checksum check would reject almost every mutation, so the target also re-seals the input: it recomputes
// every section's xxh64 in a copy before loading it, to reach the section parsers behind the check.
#include "ir/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "runtime/bundle.h"
#include "runtime/model.h"

#include <xxhash.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void load(std::vector<uint8_t> bytes) {
  try {
    auto model = bitnet::Model::from_bundle(bitnet::Bundle::from_memory(std::move(bytes), "fuzz.bundle"));
    bitnet::Engine engine(*model, 8, 1);
    int32_t token = 0, pos = 0, seq = 0;
    engine.step({&token, 1}, {&pos, 1}, {&seq, 1});
  } catch (const bitnet::Error&) {
  }
}

}  // namespace

FUZZ_ENTRY(bundle) {
  // An x86 bundle's 'x86_kernels' section is machine code, trusted like a shared library: mutating it
  // crashes by design, so the fuzzer exercises everything else with the intrinsics.
  setenv("BITNETC_X86_FUSED", "intrinsics", 1);
  std::vector<uint8_t> bytes(data, data + size);
  load(bytes);
  if (size >= 64) {  // re-seal: header is 64 bytes, then 40-byte entries {name[16], offset, size, hash}
    uint32_t count;
    std::memcpy(&count, bytes.data() + 12, 4);
    for (uint32_t i = 0; i < count && i < 64 && 64 + 40 * (i + 1) <= size; ++i) {
      uint8_t* e = bytes.data() + 64 + 40 * i;
      uint64_t offset, length;
      std::memcpy(&offset, e + 16, 8);
      std::memcpy(&length, e + 24, 8);
      if (offset > size || length > size - offset) continue;
      uint64_t hash = XXH64(bytes.data() + offset, length, 0);
      std::memcpy(e + 32, &hash, 8);
    }
    load(std::move(bytes));
  }
  return 0;
}
