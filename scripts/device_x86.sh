#!/usr/bin/env bash
# The x86 backend on the device machine's CPU (a Xeon with AVX-512 VNNI and AMX): build from the Debian
# packages that `scripts/device_cuda.sh prepare` put in .cudadeps/ (carried), without CUDA and LLVM (the
# machine has neither's development files, so its bundles run the intrinsics fallback of the fused
# kernels), run the x86 tests and the kernel microbenchmarks, then synthesize the 2B4T shape and bench it.
# Results go to $OUT (default ./device-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/device-out}" root=/tmp/bitnetc-deps
mkdir -p "$out" "$root"
for deb in .cudadeps/debs/*.deb; do dpkg -x "$deb" "$root"; done
lib="$root/usr/lib/x86_64-linux-gnu"
export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$lib/pkgconfig:$root/usr/share/pkgconfig" LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
{ lscpu | grep -E "Model name|^CPU\(s\)|Flags" | cut -c1-400; } > "$out/machine.txt"
cmake -S . -B build-x86 -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$root/usr" -DPKG_CONFIG_EXECUTABLE="$root/usr/bin/pkgconf" \
      -DBITNETC_CUDA=OFF -DBITNETC_LLVM=OFF -DBITNETC_TESTDATA="$PWD/.cudadeps/testdata" > "$out/configure.log" 2>&1 || { tail -20 "$out/configure.log"; exit 1; }
ninja -C build-x86 -j"$(nproc)" bitnetc bitnet-run bitnetc_tests > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
build-x86/tests/bitnetc_tests "[x86]" > "$out/tests.log" 2>&1; echo "x86 tests: exit $?"; tail -3 "$out/tests.log"
build-x86/tests/bitnetc_tests "[.x86-bench]" -s 2>&1 | grep -E '^\{' | tee "$out/kernels.jsonl"
model=/tmp/2b4t.gguf bundle=/tmp/2b4t.bundle
build-x86/tools/bitnetc synth --shape 2b4t --type i2_s -o "$model" --vocab tests/data/llama3-vocab.gguf > /dev/null 2>&1
build-x86/tools/bitnetc compile "$model" -o "$bundle" > /dev/null 2>&1 || { echo "compile failed"; exit 1; }
for t in ${THREADS:-16 2}; do
  build-x86/tools/bitnet-run bench "$bundle" -p 512 -n 128 -r 3 -t "$t" --json > "$out/bench_t$t.json" 2> /dev/null
  python3 -c "import json; d=json.load(open('$out/bench_t$t.json')); print($t, [(r['test'], round(r['tok_s_median'], 1), round(r['tok_s_stddev'], 1)) for r in d['results']], round(d['read_bandwidth_gb_s'], 1), d['peak_rss_mb'])"
done
