#!/usr/bin/env bash
# Install, build and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
ctest --test-dir build --output-on-failure -j"$(nproc)"

# The same suite again under AddressSanitizer + UndefinedBehaviorSanitizer (any report fails the run). It
# fits CI's 90 minutes on 2 cores (about 5 minutes here), so the whole suite runs, not a reduced set.
echo "== sanitizer build (ASan + UBSan) =="
scripts/setup.sh build-asan -DBITNETC_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)"
