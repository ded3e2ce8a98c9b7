#!/usr/bin/env bash
# Crash-safe outputs: `bitnetc synth` and `bitnetc compile` are killed (SIGKILL) at several points while
# writing; afterwards the output path must hold either the previous file, byte for byte, or nothing — never
# a partial file. (A killed process cannot remove its `.tmp.<pid>` file; that path is never the output.)
# Usage: crash_safety.sh BUILD_DIR
set -u
BITNETC="$1/tools/bitnetc"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
SHAPE=hidden=1024,layers=6,heads=8,kv-heads=4,ffn=2048,vocab=32000,context=64
passed=0; failed=0

check() {  # check LABEL PATH OLD_SUM: PATH is absent or has OLD_SUM
  if [ ! -e "$2" ]; then [ -z "$3" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: $1: the old file vanished"; }
  elif [ "$(sha256sum < "$2")" = "$3" ]; then passed=$((passed + 1))
  else failed=$((failed + 1)); echo "FAIL: $1: $2 is neither the old file nor absent"; fi
}

"$BITNETC" synth --shape "$SHAPE" --type i2_s --seed 1 -o "$WORK/model.gguf" 2>/dev/null
for delay in 0.05 0.2 0.4 0.8; do
  # synth over an existing file (different seed: a finished write would change it)
  cp "$WORK/model.gguf" "$WORK/target.gguf"; old=$(sha256sum < "$WORK/target.gguf")
  "$BITNETC" synth --shape "$SHAPE" --type i2_s --seed 2 -o "$WORK/target.gguf" 2>/dev/null & pid=$!
  sleep "$delay"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  now=$(sha256sum < "$WORK/target.gguf")
  [ "$now" = "$old" ] || { "$BITNETC" inspect "$WORK/target.gguf" >/dev/null 2>&1 && old="$now"; }  # finished before the kill: a whole new file
  check "synth killed after ${delay}s" "$WORK/target.gguf" "$old"
  # synth to a new path
  rm -f "$WORK/fresh.gguf"
  "$BITNETC" synth --shape "$SHAPE" --type i2_s --seed 2 -o "$WORK/fresh.gguf" 2>/dev/null & pid=$!
  sleep "$delay"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  if [ -e "$WORK/fresh.gguf" ] && ! "$BITNETC" inspect "$WORK/fresh.gguf" >/dev/null 2>&1; then
    failed=$((failed + 1)); echo "FAIL: synth killed after ${delay}s left a partial new file"
  else passed=$((passed + 1)); fi
  # compile to a new path
  rm -f "$WORK/m.bundle"
  "$BITNETC" compile "$WORK/model.gguf" -o "$WORK/m.bundle" 2>/dev/null & pid=$!
  sleep "$delay"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  if [ -e "$WORK/m.bundle" ] && ! "$BITNETC" dump-ir "$WORK/m.bundle" >/dev/null 2>&1; then
    failed=$((failed + 1)); echo "FAIL: compile killed after ${delay}s left a partial bundle"
  else passed=$((passed + 1)); fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
