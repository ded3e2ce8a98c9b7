#!/usr/bin/env bash
# Bad input at the command line: every case must exit non-zero with one clear line naming the file or flag,
# and leave no output file behind. Usage: cli_errors.sh BUILD_DIR TESTDATA_DIR
set -u
BUILD="$1"; DATA="$2"
BITNETC="$BUILD/tools/bitnetc"; RUN="$BUILD/tools/bitnet-run"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
passed=0; failed=0

expect_error() {  # expect_error "description" "text the message must contain" command...
  local what="$1" needle="$2"; shift 2
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$needle" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $what (exit $rc): $out"
  fi
}

"$BITNETC" synth --shape tiny --type i2_s -o "$WORK/tiny.gguf" 2>/dev/null
"$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/tiny.bundle" 2>/dev/null
head -c 100 "$WORK/tiny.gguf" > "$WORK/trunc.gguf"
printf 'this is not a model file, just some text' > "$WORK/junk.gguf"

expect_error "missing file" "$WORK/none.gguf" "$BITNETC" inspect "$WORK/none.gguf"
expect_error "not a GGUF" "magic" "$BITNETC" inspect "$WORK/junk.gguf"
expect_error "truncated GGUF" "trunc.gguf: n_kv" "$BITNETC" compile "$WORK/trunc.gguf" -o "$WORK/out.bundle"
expect_error "output folder missing" "$WORK/no/such" "$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/no/such/out.bundle"
expect_error "unknown target" "--target" "$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/t.bundle" --target tpu
expect_error "bad act-quant" "--act-quant" "$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/t.bundle" --act-quant int4
expect_error "--dump-kernels for ref" "--dump-kernels" "$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/t.bundle" --target ref --dump-kernels "$WORK/k.txt"
expect_error "--sm for x86" "--sm" "$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/t.bundle" --sm 80
expect_error "bad synth type" "--type" "$BITNETC" synth -o "$WORK/s.gguf" --type q4_0
expect_error "bad synth shape" "--shape" "$BITNETC" synth -o "$WORK/s.gguf" --shape hidden=abc
expect_error "unknown flag" "--bogus" "$RUN" "$WORK/tiny.bundle" --bogus
expect_error "negative -n" "-n" "$RUN" "$WORK/tiny.bundle" -p hi -n -5
expect_error "prompt longer than context" "context" "$RUN" "$WORK/tiny.bundle" -p "one two three four five six seven eight nine ten" -c 4
expect_error "invalid UTF-8 prompt" "UTF-8" "$RUN" "$WORK/tiny.bundle" -p $'\xff\xfe'
expect_error "-p and -f together" "-f" "$RUN" "$WORK/tiny.bundle" -p hi -f "$WORK/tiny.gguf"
expect_error "prompt id out of range" "--prompt-ids" "$RUN" "$WORK/tiny.bundle" --prompt-ids 1,999999
expect_error "prompt ids not numbers" "--prompt-ids" "$RUN" "$WORK/tiny.bundle" --prompt-ids 1,x
expect_error "top-p out of range" "--top-p" "$RUN" "$WORK/tiny.bundle" -p hi --top-p 1.5
expect_error "bundle given to inspect" "magic" "$BITNETC" inspect "$WORK/tiny.bundle"
expect_error "GGUF given as bundle to dump-ir of junk" "junk.gguf" "$BITNETC" dump-ir "$WORK/junk.gguf"
expect_error "missing prompt file" "-f" "$RUN" "$WORK/tiny.bundle" -f "$WORK/none.txt"
printf 'not json at all' > "$WORK/junk.json"
printf 'a few words' > "$WORK/short.txt"
expect_error "import: missing tokenizer" "none.json" "$BITNETC" import --tokenizer "$WORK/none.json" -o "$WORK/v.gguf"
expect_error "import: tokenizer not JSON" "junk.json" "$BITNETC" import --tokenizer "$WORK/junk.json" -o "$WORK/v.gguf"
expect_error "bad --lm-head" "--lm-head" "$BITNETC" compile "$WORK/tiny.gguf" -o "$WORK/t.bundle" --lm-head int4
expect_error "bad --isa" "--isa" "$RUN" "$WORK/tiny.bundle" -p hi --isa sse2
expect_error "--perplexity without -f" "--perplexity" "$RUN" "$WORK/tiny.bundle" --perplexity
expect_error "--perplexity on a text shorter than a chunk" "short.txt" "$RUN" "$WORK/tiny.bundle" --perplexity -f "$WORK/short.txt" -c 64
expect_error "bench: zero repetitions" "-r" "$RUN" bench "$WORK/tiny.bundle" -r 0
expect_error "bench: missing bundle" "none.bundle" "$RUN" bench "$WORK/none.bundle" -p 8 -n 8
expect_error "bench: zero sequences" "-b/--batch" "$RUN" bench "$WORK/tiny.bundle" -p 8 -n 8 -b 4,0

# The hostile-input table (tests/hostile/make_hostile.py): each file must be refused with exit != 0 and
# exactly one line on stderr that names the file and the field.
"$BITNETC" synth --shape hidden=32,layers=1,heads=2,kv-heads=1,ffn=32,vocab=260,context=16 --type f16 -o "$WORK/valid16.gguf" 2>/dev/null
"$BITNETC" synth --shape hidden=128,layers=1,heads=2,kv-heads=1,ffn=128,vocab=260,context=16 --type i2_s -o "$WORK/validi2s.gguf" 2>/dev/null
mkdir -p "$WORK/hostile"
BITNETC="$BITNETC" python3 "$(dirname "$0")/hostile/make_hostile.py" "$WORK/hostile" "$WORK/valid16.gguf" "$WORK/validi2s.gguf" "$WORK/tiny.bundle" > "$WORK/hostile.tsv"
while IFS=$'\t' read -r file command needle; do
  case "$command" in
    inspect) cmd=("$BITNETC" inspect "$file") ;;
    compile) cmd=("$BITNETC" compile "$file" -o "$WORK/hostile-out.bundle") ;;
    run) cmd=("$RUN" "$file" -p hi -n 1) ;;
    opt) cmd=("$BITNETC" opt "$file" -p "") ;;
  esac
  err=$("${cmd[@]}" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$err" | grep -c .)
  if [ $rc -ne 0 ] && [ "$lines" -eq 1 ] && grep -qF -- "$file" <<<"$err" && grep -qF -- "$needle" <<<"$err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: hostile $(basename "$file") (exit $rc, $lines lines, wants '$needle'): $err"
  fi
done < "$WORK/hostile.tsv"
[ -e "$WORK/hostile-out.bundle" ] && { failed=$((failed + 1)); echo "FAIL: a refused compile left an output"; }

ls "$WORK"/*.tmp.* >/dev/null 2>&1 && { failed=$((failed + 1)); echo "FAIL: a temporary file was left behind"; }
[ -e "$WORK/out.bundle" ] && { failed=$((failed + 1)); echo "FAIL: a failed compile left an output"; }
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
