// One source per fuzz target serves two builds: with libFuzzer (scripts/fuzz.sh) the body is
// LLVMFuzzerTestOneInput; in the test suite (BITNETC_FUZZ_REGRESSION) it is fuzz_<name>(), which
// tests/test_fuzz_regressions.cpp runs on every saved crash input under tests/data/fuzz/<name>/.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef BITNETC_FUZZ_REGRESSION
#define FUZZ_ENTRY(name) int fuzz_##name(const uint8_t* data, size_t size)
#else
#define FUZZ_ENTRY(name) extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
#endif
