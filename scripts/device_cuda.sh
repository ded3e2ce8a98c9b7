#!/usr/bin/env bash
# The CUDA backend on a GPU machine that has the CUDA toolkit, CMake and ninja but none of bitnetc's other
# build dependencies and no network (the team's device machine).
#
#   scripts/device_cuda.sh prepare   here (Debian 12, network): downloads the dependency packages (.deb) and
#                                    copies the golden test data into .cudadeps/ (git-ignored, ~20 MB)
#   scripts/device_cuda.sh run       there, with .cudadeps carried: unpacks the packages, builds with them
#                                    (cmake -G Ninja, -j$JOBS, default 16), runs the [cuda] GPU tests,
#                                    synthesizes the 2B4T-shaped model, compiles it with --target cuda and
#                                    benchmarks it; every log and result goes to $OUT (default: ./device-out).
#                                    BUILD_ONLY=1 stops after the build (to check the recipe without a GPU);
#                                    STAGE=test stops after the GPU tests and STAGE=bench does only what
#                                    follows them, with the build of an earlier run (one command of the
#                                    device machine may run 10 minutes: two calls on a warm machine).
#
# The packages are unpacked into a prefix that CMake (CMAKE_PREFIX_PATH) and pkg-config (a sysroot) search
# before the system, so whatever the machine has installed does not matter. Steps after the build go on
# when one fails, so one run reports as much as it can; the exit status is that of the worst step.
set -uo pipefail
cd "$(dirname "$0")/.."
DEPS=.cudadeps
PACKAGES=(libfmt-dev libfmt9 nlohmann-json3-dev libcli11-dev libxxhash-dev libxxhash0 libpcre2-dev libpcre2-8-0 libxbyak-dev
          catch2 libboost1.74-dev libboost-graph1.74-dev pkgconf pkgconf-bin libpkgconf3)

prepare() {
  set -e
  mkdir -p "$DEPS/debs" "$DEPS/testdata/golden"
  grep -qx "/$DEPS/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/$DEPS/" >> .git/info/exclude; }
  (cd "$DEPS/debs" && apt-get download "${PACKAGES[@]}")
  local shared=../shared/testdata/golden
  for model in p1-gqa p2-mha; do
    mkdir -p "$DEPS/testdata/golden/$model"
    cp "$shared/$model"/{config.json,meta.json,prompt_ids.json,model-i2_s.gguf,model-tq2_0.gguf,model-tq1_0.gguf} "$DEPS/testdata/golden/$model/"
    # test_cuda.cpp's synthetic model borrows p1's 771-token vocabulary from its f32 file
    [ "$model" = p1-gqa ] && cp "$shared/$model/model-f32.gguf" "$DEPS/testdata/golden/$model/"
    cp -r "$shared/$model"/{float,act_int8} "$DEPS/testdata/golden/$model/"
  done
  du -sh "$DEPS"
}

run() {
  local out="${OUT:-$PWD/device-out}" status=0 root=/tmp/bitnetc-deps
  mkdir -p "$out"
  step() {  # step NAME SECONDS command...: runs with a time limit, appends its log to $out/steps.log
    local name="$1" limit="$2"; shift 2
    local t0=$SECONDS log="/tmp/bitnetc-step-$name.log"
    timeout -k 5 "$limit" "$@" > "$log" 2>&1
    local rc=$?
    echo "== $name: exit $rc, $((SECONDS - t0)) s"
    { echo "===== $name: $* (exit $rc, $((SECONDS - t0)) s)"; cat "$log"; } >> "$out/steps.log"
    [ $rc -ne 0 ] && { status=$rc; tail -n 40 "$log"; }
    return $rc
  }
  {
    echo "== machine"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
    nproc; g++ --version | head -1; cmake --version | head -1; ninja --version; /usr/local/cuda/bin/nvcc --version | tail -1
  } > "$out/machine.txt" 2>&1
  cat "$out/machine.txt"

  # Dependencies: the carried packages, unpacked (dpkg -x, or ar + tar where there is no dpkg).
  rm -rf "$root"; mkdir -p "$root"
  for deb in "$DEPS"/debs/*.deb; do
    if command -v dpkg > /dev/null; then
      dpkg -x "$deb" "$root"
    else
      (t=$(mktemp -d) && cd "$t" && ar x "$OLDPWD/$deb" && tar -xf data.tar.* -C "$root" && rm -rf "$t")
    fi
  done
  local lib="$root/usr/lib/x86_64-linux-gnu"
  export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_LIBDIR="$lib/pkgconfig:$root/usr/share/pkgconfig" LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"
  local pkgconfig=(); command -v pkg-config > /dev/null || pkgconfig=(-DPKG_CONFIG_EXECUTABLE="$root/usr/bin/pkgconf")

  local stage="${STAGE:-all}"
  if [ "$stage" != bench ]; then
    step configure 120 cmake -S . -B build-device -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$root/usr" \
        -DBITNETC_TESTDATA="$PWD/$DEPS/testdata" "${pkgconfig[@]}" || { echo "status $status"; return $status; }
    grep -E "BITNETC_CUDA:|CMAKE_CXX_COMPILER:" build-device/CMakeCache.txt
    step build 300 ninja -C build-device -j"${JOBS:-16}" bitnetc bitnet-run bitnetc_tests || { echo "status $status"; return $status; }
    if [ -n "${BUILD_ONLY:-}" ]; then echo "status $status"; return $status; fi

    # Correctness on the GPU: parity with the HF goldens, graphs = eager = no PDL, batches of 8 and 16.
    step gpu_tests 300 build-device/tests/bitnetc_tests "[gpu]" -d yes
  fi
  if [ "$stage" = test ]; then echo "status $status"; return $status; fi

  # Speed on the 2B4T shape: llama-bench style with bitnet-run bench, then batched decode, graphs on and off,
  # time to first token and device memory at a 4096 context.
  local model=/tmp/bitnetc-2b4t.gguf bundle=/tmp/bitnetc-2b4t.bundle
  step synth 60 build-device/tools/bitnetc synth --shape 2b4t --type i2_s -o "$model" --vocab tests/data/llama3-vocab.gguf
  step compile 90 build-device/tools/bitnetc compile "$model" -o "$bundle" --target cuda
  # Prefill, decode of 1, 8 and 64 sequences (op by op, graphs for steps of up to 8 tokens), then decode
  # with the persistent step kernel; a per-op profile of prefill and of decode at batch 1 and 64.
  step bench 240 bash -c "build-device/tools/bitnet-run bench '$bundle' -p 512 -n 128 -b 1,8,64 -r 5 --json > '$out/bench_2b4t.json'"
  cat "$out/bench_2b4t.json"
  step bench_step 120 bash -c "BITNETC_CUDA_PERSISTENT=1 build-device/tools/bitnet-run bench '$bundle' -p 0 -n 128 -r 3 --json > '$out/bench_2b4t_step.json'"
  cat "$out/bench_2b4t_step.json"
  step profile 120 env BITNETC_CUDA_PROFILE=1 build-device/tools/bitnet-run bench "$bundle" -p 512 -n 32 -b 1,64 -r 1
  grep -A80 "cuda profile" /tmp/bitnetc-step-profile.log > "$out/profile.txt"
  step cuda_bench 240 env BITNETC_CUDA_BENCH_BUNDLE="$bundle" build-device/tests/bitnetc_tests "[.cuda-bench]" -s
  grep -E "^\{" /tmp/bitnetc-step-cuda_bench.log > "$out/cuda_bench.jsonl"
  cat "$out/cuda_bench.jsonl"
  echo "status $status"
  return $status
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
