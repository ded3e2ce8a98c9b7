#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-16 (ASan + UBSan) and runs each for a time or a number of
# executions, from seed corpora made out of the test data. Prints executions and crashes per target; a
# crash's input is kept in fuzz-out/<target>/crashes/ (make it a regression test under tests/data/fuzz/).
# Usage: scripts/fuzz.sh [seconds-per-target | -runs=N] [targets...]   (default: 60 s, all four)
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT="${1:-60}"; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(gguf ir bundle tokenizer)
if ! command -v clang++-16 >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-16 libfuzzer-16-dev >/dev/null
fi
scripts/setup.sh build >/dev/null   # the normal build makes the seed models
CC=clang-16 CXX=clang++-16 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBITNETC_FUZZ=ON -DBITNETC_SANITIZE=ON -DBITNETC_BUILD_TESTS=OFF >/dev/null
ninja -C build-fuzz $(printf 'fuzz_%s ' "${TARGETS[@]}") >/dev/null

OUT=fuzz-out; mkdir -p "$OUT"
seed() {  # seed TARGET: fills $OUT/TARGET/corpus
  local dir="$OUT/$1/corpus"; mkdir -p "$dir"
  case "$1" in
    gguf|bundle)
      build/tools/bitnetc synth -o "$OUT/seed.gguf" --type f16 --shape hidden=32,layers=1,heads=2,kv-heads=1,ffn=32,vocab=260,context=16 2>/dev/null
      if [ "$1" = gguf ]; then cp "$OUT/seed.gguf" "$dir/"; cp tests/data/fuzz/gguf/* "$dir/" 2>/dev/null || true
      else build/tools/bitnetc compile "$OUT/seed.gguf" -o "$dir/seed.bundle" 2>/dev/null; fi ;;
    ir) cp tests/ir/*.bir "$dir/" ;;
    tokenizer) awk -v d="$dir" 'BEGIN{RS="\n__ggml_vocab_test__\n"} {f=d "/t" NR; printf "%s", $0 > f; close(f)}' tests/data/llama3-vocab.gguf.inp ;;
  esac
}
for t in "${TARGETS[@]}"; do
  seed "$t"
  mkdir -p "$OUT/$t/crashes"
  start_marker="$OUT/$t/started"; touch "$start_marker"   # crashes are counted from this run only
  case "$LIMIT" in -runs=*) budget="$LIMIT" ;; *) budget="-max_total_time=$LIMIT" ;; esac
  log="$OUT/$t/log.txt"
  build-fuzz/tests/fuzz/fuzz_$t "$OUT/$t/corpus" $budget -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$OUT/$t/crashes/" -print_final_stats=1 >"$log" 2>&1 || true
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(find "$OUT/$t/crashes" -type f -newer "$start_marker" | wc -l)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "fuzz_$t: $execs executions, $crashes crashes, coverage $cov edges (log: $log)"
done
