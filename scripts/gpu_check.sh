#!/usr/bin/env bash
# gpu_check.sh [OUTDIR]: builds qtrain's CUDA backend on a GPU machine, runs its gpu tests and
# CUDA benchmarks, times a short fp16 training run of OPT-125m with qtrain and the same model
# and batch in PyTorch, and writes one summary. For a lent, bare CUDA machine (no apt, no
# network): run scripts/gpu_bundle.sh beforehand where apt works and carry .gpu_bundle, which
# brings OpenBLAS and Check (sourced from .gpu_bundle/env.sh; without it the system's copies
# are used, if any).
#
# OUTDIR (default $OUT if set, else results/gpu-<UTC date>) receives only these files (a
# device run brings back at most 8):
#   summary.md   the table (also printed last on stdout)
#   build.log    system facts, bundle, configure and build
#   ctest.log    ctest -L gpu output; if any did not pass, those again with CK_FORK=no (Check
#                forks per test case, and CUDA does not survive a fork once initialized);
#                then every test's full log (Testing/Temporary/LastTest.log)
#   bench.log    the CUDA kernel benchmarks (qtrain bench --device cuda: table, then JSON)
#   train.log    qtrain train's output and its metrics.jsonl
#   torch.log    scripts/gpu_torch_ref.py's output
# Scratch (data shards, the run's checkpoint, deleted) goes to build-gpu/gpu_check/, never to
# OUTDIR.
#
# gpu_check.sh --digest: prints the digest of the sources that the summary names (computed
# here, it says whether a summary came from this tree).
#
# Without a usable GPU (nvidia-smi missing or failing, or listing no device) it prints one
# line on stderr and exits 2 before doing anything else.
#
# Time: every phase runs under `timeout` with a cap, shrunk so the whole script ends within
# QT_GPU_CHECK_BUDGET seconds (default 470: under 8 minutes); a phase that fails or times out
# is recorded and the next one runs. Knobs (environment): QT_TRAIN_STEPS (default 40) and
# QT_TIMED_FROM (default 10: steps 1..10 are warmup, left out of tokens/s) for both trainers,
# QT_TORCH_COMPILE=1 to torch.compile the PyTorch model (adds about a minute of compile),
# QT_CUDA_ARCH to build for another architecture than the GPU's (e.g. "90a"; default: its
# compute capability from nvidia-smi).
#
# MFU, by llm.c's convention (train_gpt2.cu, gpt2_estimate_mfu): FLOPs per token = 6 N +
# 6 L C T, with N all parameters (the tied embedding once), L layers, C = d_model, T the
# sequence length (the second term is the attention matmuls, causal: half of the full
# 12 L C T); MFU = FLOPs per token x tokens/s / peak. Peak: the datasheet's dense fp16/bf16
# tensor-core rate, chosen by GPU name: H100/H200 SXM 989 TFLOP/s, H100/H200 NVL 835,
# H100 PCIe 756, A100 312; another GPU gets no MFU.
set -uo pipefail

# A digest of the sources the build reads (every file under these folders, by path and
# content), so a result names the exact tree it ran on.
source_digest() {
  (cd "$(dirname "$0")/.." &&
    find base kernels host include tests bench cmake configs scripts CMakeLists.txt -type f \
      ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
}
if [ "${1:-}" = "--digest" ]; then
  source_digest
  exit 0
fi
cd "$(dirname "$0")/.." || exit 2
repo="$(pwd)"

fail_no_gpu() {
  echo "gpu_check: error: no usable GPU: $*; run this on a CUDA machine" >&2
  exit 2
}
command -v nvidia-smi >/dev/null 2>&1 || fail_no_gpu "nvidia-smi not found"
gpu_list="$(timeout 60 nvidia-smi -L 2>&1)" ||
  fail_no_gpu "nvidia-smi -L failed ($(printf '%s' "$gpu_list" | head -n 1))"
printf '%s\n' "$gpu_list" | grep -q '^GPU [0-9]' || fail_no_gpu "nvidia-smi -L lists no device"

t_start=$(date +%s)
budget="${QT_GPU_CHECK_BUDGET:-470}"
deadline=$((t_start + budget))
steps="${QT_TRAIN_STEPS:-40}"
timed_from="${QT_TIMED_FROM:-10}"
B=16
T=512
out="${1:-${OUT:-results/gpu-$(date -u +%Y%m%d-%H%M%S)}}"
mkdir -p "$out" || exit 2
out="$(cd "$out" && pwd)"
bdir="$repo/build-gpu"
scratch="$bdir/gpu_check"
build_log="$out/build.log"
ctest_log="$out/ctest.log"
bench_log="$out/bench.log"
train_log="$out/train.log"
torch_log="$out/torch.log"
summary="$out/summary.md"
: >"$build_log"

# ---- phases --------------------------------------------------------------------------------
phase_names=()
declare -A phase_status phase_secs phase_log

# cap_for CAP RESERVE: the phase's timeout: CAP, or less so that RESERVE seconds remain for
# the phases after it; at least 5.
cap_for() {
  local left=$((deadline - $(date +%s) - $2))
  local c=$1
  [ "$left" -lt "$c" ] && c=$left
  [ "$c" -lt 5 ] && c=5
  echo "$c"
}

# phase NAME CAP RESERVE LOG CMD...: runs CMD under timeout, appending to LOG; records
# ok / failed (rc N) / timeout (N s) and the seconds taken. Returns CMD's status.
phase() {
  local name=$1 cap log=$4 t0 rc
  cap=$(cap_for "$2" "$3")
  shift 4
  phase_names+=("$name")
  phase_log[$name]=$log
  t0=$(date +%s)
  echo "== $name (timeout ${cap}s): $*" | tee -a "$log"
  timeout -k 15 "$cap" "$@" >>"$log" 2>&1
  rc=$?
  phase_secs[$name]=$(($(date +%s) - t0))
  case $rc in
    0) phase_status[$name]=ok ;;
    124 | 137) phase_status[$name]="timeout (${cap} s)" ;;
    *) phase_status[$name]="failed (rc $rc)" ;;
  esac
  echo "== $name: ${phase_status[$name]} after ${phase_secs[$name]} s" | tee -a "$log"
  return $rc
}
skip_phase() {
  phase_names+=("$1")
  phase_status[$1]="skipped: $2"
  phase_secs[$1]=0
  echo "== $1: skipped: $2"
}

# ---- 1. the machine --------------------------------------------------------------------------
gpu_name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')"
gpu_mem="$(nvidia-smi --query-gpu=memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
if [ -n "${QT_CUDA_ARCH:-}" ]; then
  arch="$QT_CUDA_ARCH"
elif [[ "$cc" =~ ^[0-9]+\.[0-9]+$ ]]; then
  arch="${cc/./}"
else
  arch=native # CMake >= 3.24 asks the driver
fi
nvcc_bin="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
nvcc_ver="$("$nvcc_bin" --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*' || echo 'nvcc not found')"
run_date="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
cpu="$(grep -m 1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')"
ncpu="$(nproc)"
{
  echo "date: $run_date"
  echo "$gpu_list"
  echo "gpu: $gpu_name, driver $driver, compute capability $cc, $gpu_mem"
  echo "nvcc: $("$nvcc_bin" --version 2>&1 | tail -n 2 | tr '\n' ' ')"
  echo "cmake: $(cmake --version 2>&1 | head -n 1); ninja: $(ninja --version 2>&1 || echo none)"
  echo "cc: $(cc --version 2>&1 | head -n 1)"
  echo "cpu: $cpu x $ncpu; $(uname -srm)"
  echo "git: $(git -C "$repo" log -1 --format='%h %s' 2>/dev/null || echo 'not a git checkout')"
  nvidia-smi 2>&1
} >>"$build_log"

# ---- 2. dependencies: the bundle ---------------------------------------------------------
orig_ld="${LD_LIBRARY_PATH:-}"
deps="system packages"
if [ -f "$repo/.gpu_bundle/env.sh" ]; then
  # shellcheck disable=SC1091 # written by scripts/gpu_bundle.sh
  if source "$repo/.gpu_bundle/env.sh" >>"$build_log" 2>&1; then
    deps="bundle ($QT_DEPS_PREFIX: $(cut -d' ' -f1,2 "$repo/.gpu_bundle/packages.txt" | tr '\n' ';' | sed 's/;$//; s/;/, /g'))"
  else
    deps="bundle failed to unpack; system packages"
  fi
fi
echo "dependencies: $deps" >>"$build_log"
qt_ld="${LD_LIBRARY_PATH:-}"

# ---- 3. configure and build only the CUDA targets ------------------------------------------
# Keep going past a target that fails to build (ninja -k 0, make -k), so the others still run.
gen=()
keep_going=(-- -k)
if command -v ninja >/dev/null 2>&1; then
  gen=(-G Ninja)
  keep_going=(-- -k 0)
fi
cfg_args=(-S "$repo" -B "$bdir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DQT_SANITIZER_TESTS=OFF
          "-DCMAKE_CUDA_ARCHITECTURES=$arch")
[ -n "${QT_DEPS_PREFIX:-}" ] && cfg_args+=("-DQT_DEPS_PREFIX=$QT_DEPS_PREFIX")
built=no
werror_first=""
targets=()
if phase configure 120 380 "$build_log" cmake "${cfg_args[@]}"; then
  # The gpu tests by their CTest names (= their targets), the CUDA benchmarks, the program.
  # (test_cli_bench_gpu is the test_cli_bench program run with --cuda.)
  mapfile -t targets < <(ctest --test-dir "$bdir" -N -L gpu 2>/dev/null |
    awk '/Test +#/ {print $3}' | sed 's/^test_cli_bench_gpu$/test_cli_bench/')
  targets=(qtrain "${targets[@]}")
  echo "targets: ${targets[*]}" >>"$build_log"
  grep -q 'qtrain: CUDA .* at ' "$build_log" ||
    echo "WARNING: the configure found no CUDA toolkit: no CUDA backend" | tee -a "$build_log"
  if phase build 240 330 "$build_log" cmake --build "$bdir" -j "$ncpu" --target "${targets[@]}" \
    "${keep_going[@]}"; then
    built=yes
  elif grep -q '\[-Werror' "$build_log"; then
    # This machine's compiler warns where the CI's does not, and the project's -Werror makes
    # that fatal. Record the first of them, then configure and build again through compiler
    # wrappers that append -Wno-error: CMake's C and C++ compilers, and first in PATH as
    # gcc/g++/cc/c++ for nvcc, which calls its host compiler from PATH. The tests and the
    # timings still run.
    werror_first="$(grep -m 1 '\[-Werror' "$build_log" | cut -c1-240 | tr '|' '/')"
    wrap="$scratch/nowerror"
    mkdir -p "$wrap"
    real_cc="$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$bdir/CMakeCache.txt")"
    real_cxx="$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$bdir/CMakeCache.txt")"
    # A build tree left by an earlier such run names the wrappers themselves.
    case "$real_cc" in "$wrap"/*) real_cc="" ;; esac
    case "$real_cxx" in "$wrap"/*) real_cxx="" ;; esac
    for w in cc:"${real_cc:-$(command -v cc)}" c++:"${real_cxx:-$(command -v c++)}" \
             gcc:"$(command -v gcc)" g++:"$(command -v g++)"; do
      [ -n "${w#*:}" ] || continue
      printf '#!/bin/sh\nexec %s "$@" -Wno-error\n' "${w#*:}" >"$wrap/${w%%:*}"
      chmod +x "$wrap/${w%%:*}"
    done
    rm -rf "$bdir/CMakeCache.txt" "$bdir/CMakeFiles"
    if PATH="$wrap:$PATH" phase configure_nowerror 120 300 "$build_log" cmake "${cfg_args[@]}" \
         "-DCMAKE_C_COMPILER=$wrap/cc" "-DCMAKE_CXX_COMPILER=$wrap/c++" \
         "-DCMAKE_CUDA_HOST_COMPILER=$wrap/g++" &&
       PATH="$wrap:$PATH" phase build_nowerror 240 270 "$build_log" cmake --build "$bdir" \
         -j "$ncpu" --target "${targets[@]}" "${keep_going[@]}"; then
      built="yes, with -Wno-error"
    fi
  fi
  if [ "$built" = no ] && [ -x "$bdir/qtrain" ]; then
    built=partial
  fi
else
  skip_phase build "configure failed"
fi

# ---- 4. the gpu tests -------------------------------------------------------------------------
# ctest_counts LOG: "passed skipped not-passed-names" of the ctest run in LOG.
ctest_counts() {
  local pass skip names
  pass=$(grep -cE 'Test +#[0-9]+: .* +Passed ' "$1")
  skip=$(grep -cE 'Test +#[0-9]+: .*\*\*\*Skipped' "$1")
  names=$(grep -E 'Test +#[0-9]+: ' "$1" | grep -vE ' Passed |\*\*\*Skipped' | awk '{print $4}' |
          sort -u | tr '\n' ' ')
  echo "$pass $skip $names"
}
n_total=0 n_pass=0 n_skip=0 n_fail=0 failed_names="" rerun=""
if [ "$built" != no ]; then
  n_total=$(ctest --test-dir "$bdir" -N -L gpu 2>/dev/null | awk '/Test +#/ {n++} END {print n + 0}')
  phase ctest 150 240 "$ctest_log" ctest --test-dir "$bdir" -L gpu -j 4 --timeout 120 \
    --output-on-failure
  read -r n_pass n_skip failed_names <<<"$(ctest_counts "$ctest_log")"
  n_fail=$((n_total - n_pass - n_skip)) # failed, timed out, crashed or not run
  mkdir -p "$scratch"
  cp "$bdir/Testing/Temporary/LastTest.log" "$scratch/LastTest.log" 2>/dev/null
  # Check runs each test case in a fork()ed child (CK_FORK), but every gpu suite first asks
  # cudaGetDeviceCount in the parent (qt_ct_require_device), and CUDA does not survive a fork
  # once initialized. So failures are run again without forking, to tell the two apart.
  if [ "$n_fail" -gt 0 ]; then
    rerun_log="$scratch/ctest_nofork.log"
    : >"$rerun_log"
    CK_FORK=no phase ctest_nofork 120 240 "$rerun_log" ctest --test-dir "$bdir" --rerun-failed \
      -j 4 --timeout 120 --output-on-failure
    read -r r_pass r_skip r_names <<<"$(ctest_counts "$rerun_log")"
    rerun="; the $n_fail not passed, again with CK_FORK=no: $r_pass passed, $r_skip skipped${r_names:+, not passed: $r_names}"
    { echo; echo "==== the tests that did not pass, again with CK_FORK=no ===="; cat "$rerun_log"
      echo; echo "==== their logs with CK_FORK=no (LastTest.log) ===="
      cat "$bdir/Testing/Temporary/LastTest.log" 2>/dev/null; } >>"$ctest_log"
  fi
  if [ -f "$scratch/LastTest.log" ]; then
    { echo; echo "==== every test's log, first run (LastTest.log) ===="; cat "$scratch/LastTest.log"; } >>"$ctest_log"
  fi
else
  skip_phase ctest "nothing built"
fi

# ---- 5. CUDA kernel benchmarks ------------------------------------------------------------------
# `qtrain bench --device cuda`: every op family's CUDA kernels timed with events, against the
# GEMM peak and copy bandwidth measured in the same run; the table, then its JSON lines.
: >"$bench_log"
if [ -x "$bdir/qtrain" ]; then
  LD_LIBRARY_PATH="$qt_ld" phase bench 120 210 "$bench_log" "$bdir/qtrain" bench --device cuda
  LD_LIBRARY_PATH="$qt_ld" phase bench_json 120 180 "$bench_log" "$bdir/qtrain" bench \
    --device cuda --json
else
  skip_phase bench "no qtrain program built"
fi

# ---- 6. synthetic data ----------------------------------------------------------------------
# llm.c shards (int32 header[256] = {20240520, 1, n}, then n uint16 tokens), uniform random
# tokens below the vocabulary: `qtrain train` reads only train_*.bin and val_*.bin from data.dir
# and checks their headers, sizes and that every token < model.vocab_size (no tokenizer).
mkdir -p "$scratch"
data_dir="$scratch/data"
vocab=$(awk -F= '/^model.vocab_size/ {gsub(/[ \t]|#.*/, "", $2); print $2}' "$repo/configs/opt-125m.conf")
phase data 60 200 "$train_log" python3 - "$data_dir" "$vocab" <<'PY'
import os, random, struct, sys
from array import array
d, V = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
rng = random.Random(1234)
for split, n in (("train", 2_000_000), ("val", 65_536)):
    toks = array("H", (rng.randrange(V) for _ in range(n)))
    if sys.byteorder != "little":
        toks.byteswap()
    with open(os.path.join(d, f"{split}_000000.bin"), "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
        f.write(toks.tobytes())
    print(f"{split}: {n} random tokens below {V}")
PY

# ---- 7. qtrain: OPT-125m, fp16 -------------------------------------------------------------
params="" q_tok="" q_ms="" q_loss="" q_skipped=""
if [ -x "$bdir/qtrain" ] && [ "${phase_status[data]}" = ok ]; then
  rm -rf "$scratch/run"
  # On timeout (SIGTERM) qtrain finishes the step, checkpoints and exits, so the lines logged
  # so far still give a rate. It stops (--stop-at) long before train.max_steps, the only
  # evaluation with train.eval_every = 0: none runs.
  LD_LIBRARY_PATH="$qt_ld" phase qtrain_train 150 100 "$train_log" \
    "$bdir/qtrain" train --config "$repo/configs/opt-125m.conf" --device cuda \
    --out "$scratch/run" --stop-at "$steps" --set "data.dir=$data_dir" \
    --set train.precision=fp16 --set "train.batch_size=$B" --set "train.seq_len=$T" \
    --set train.grad_accum=1 --set train.log_every=1 --set train.eval_every=0
  if [ -f "$scratch/run/metrics.jsonl" ]; then
    { echo "==== metrics.jsonl ===="; cat "$scratch/run/metrics.jsonl"; } >>"$train_log"
    rm -f "$scratch/run/ckpt.bin" # 1.5 GB of disk, not needed
    params=$(grep -oE 'qtrain: [0-9]+ parameters' "$train_log" | tail -n 1 | grep -oE '[0-9]+')
    # tokens/s from the elapsed_s of step QT_TIMED_FROM to that of the last step logged.
    q_vals=$(python3 - "$scratch/run/metrics.jsonl" "$timed_from" "$B" "$T" <<'PY'
import json, sys
path, w, B, T = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(path) if '"type":"train"' in l]
at = {r["step"]: r for r in rows}
last = rows[-1] if rows else None
if not last or w not in at or last["step"] <= w:
    print("- - - -")
else:
    dt = last["elapsed_s"] - at[w]["elapsed_s"]
    n = last["step"] - w
    print(f"{B * T * n / dt:.0f} {1e3 * dt / n:.1f} {last['loss']:.4f} {last['skipped_steps']}")
PY
    )
    read -r q_tok q_ms q_loss q_skipped <<<"$q_vals"
  fi
else
  skip_phase qtrain_train "no qtrain program or no data"
fi

# ---- 8. PyTorch, same model and batch -------------------------------------------------------
t_tok="" t_ms="" t_params="" t_ver="" t_loss=""
torch_args=()
[ "${QT_TORCH_COMPILE:-0}" = 1 ] && torch_args+=(--compile)
# The same shards as qtrain; random tokens if they could not be written.
[ "${phase_status[data]}" = ok ] && torch_args+=(--data "$data_dir")
LD_LIBRARY_PATH="$orig_ld" PYTHONUNBUFFERED=1 phase torch_ref 180 10 "$torch_log" \
  python3 "$repo/scripts/gpu_torch_ref.py" --device cuda --steps "$steps" --warmup "$timed_from" \
  --batch "$B" --seq "$T" "${torch_args[@]}"
if json_line=$(grep '^{' "$torch_log" | tail -n 1) && [ -n "$json_line" ]; then
  t_vals=$(python3 - "$json_line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print("%.0f %.1f %d %s %.4f" % (r["tokens_per_s"], r["ms_per_step"], r["params"], r["torch"], r["loss"]))
PY
  )
  read -r t_tok t_ms t_params t_ver t_loss <<<"$t_vals"
fi

# ---- 9. summary -------------------------------------------------------------------------------
peak=""
case "$gpu_name" in
  *H100*PCIe* | *H100*PCIE*) peak=756 ;;
  *H100*NVL* | *H200*NVL*) peak=835 ;;
  *H100* | *H200*) peak=989 ;; # GH200 too
  *A100*) peak=312 ;;
esac
read -r L C < <(awk -F= '/^model.n_layer/ {gsub(/[ \t]|#.*/, "", $2); l=$2}
                         /^model.d_model/ {gsub(/[ \t]|#.*/, "", $2); c=$2}
                         END {print l, c}' "$repo/configs/opt-125m.conf")
mfu() { # mfu TOKENS_PER_S PARAMS -> percent, or "n/a"
  if [ -z "$1" ] || [ "$1" = - ] || [ -z "$2" ] || [ -z "$peak" ]; then echo "n/a"; return; fi
  awk -v tok="$1" -v n="$2" -v l="$L" -v c="$C" -v t="$T" -v p="$peak" \
    'BEGIN {printf "%.1f%%", 100 * (6 * n + 6 * l * c * t) * tok / (p * 1e12)}'
}
q_mfu=$(mfu "$q_tok" "$params")
t_mfu=$(mfu "$t_tok" "$t_params")
ratio="n/a"
if [[ "$q_tok" =~ ^[0-9]+$ && "$t_tok" =~ ^[0-9]+$ && "$t_tok" -gt 0 ]]; then
  ratio=$(awk -v a="$q_tok" -v b="$t_tok" 'BEGIN {printf "%.3f", a / b}')
fi
total_s=$(($(date +%s) - t_start))
{
  echo "# qtrain GPU check, $run_date"
  echo
  echo "| | |"
  echo "| --- | --- |"
  echo "| GPU | $gpu_name ($gpu_mem), compute capability $cc, driver $driver |"
  echo "| toolkit | nvcc $nvcc_ver; CUDA architectures built: $arch |"
  echo "| host | $cpu, $ncpu cores |"
  # The device's copy of the tree may carry an older .git than its files: name the sources by
  # their digest (`bash scripts/gpu_check.sh --digest` prints the same here).
  echo "| sources | digest $(source_digest) (git there says: $(git -C "$repo" log -1 --format='%h' 2>/dev/null || echo unknown)) |"
  echo "| CPU dependencies | $deps |"
  echo "| build | $built: ${phase_status[build]:-not run} (${phase_secs[build]:-0} s; targets: ${#targets[@]})${werror_first:+; with -Werror it failed first on: $werror_first} |"
  echo "| gpu tests (ctest -L gpu) | $n_pass passed, $n_fail failed, $n_skip skipped of $n_total${failed_names:+ (not passed: $failed_names)}$rerun |"
  echo "| qtrain tokens/s | ${q_tok:-n/a} (${q_ms:-n/a} ms/step) |"
  echo "| qtrain MFU | $q_mfu |"
  echo "| PyTorch${t_ver:+ $t_ver} tokens/s | ${t_tok:-n/a} (${t_ms:-n/a} ms/step)$([ "${QT_TORCH_COMPILE:-0}" = 1 ] && echo ', torch.compile') |"
  echo "| PyTorch MFU | $t_mfu |"
  echo "| qtrain / PyTorch | $ratio |"
  echo "| parameters | qtrain ${params:-n/a}, PyTorch ${t_params:-n/a} |"
  echo "| final loss (step $steps) | qtrain ${q_loss:-n/a} (${q_skipped:-n/a} skipped steps), PyTorch ${t_loss:-n/a}; random tokens: ln($vocab) = $(awk -v v="$vocab" 'BEGIN {printf "%.2f", log(v)}') |"
  echo "| wall time | $total_s s |"
  echo
  echo "Training: configs/opt-125m.conf (12 layers, d_model 768, 12 heads, d_ff 3072, vocabulary $vocab,"
  echo "tied head), fp16 with fp32 masters and dynamic loss scaling, B $B x T $T, grad_accum 1,"
  echo "$steps steps; tokens/s over steps $((timed_from + 1))..$steps (the first $timed_from are warmup), one loss"
  echo "read-back per step in both. The data is SYNTHETIC: uniform random tokens in llm.c shards"
  echo "(throughput does not depend on the token values). PyTorch: eager$([ "${QT_TORCH_COMPILE:-0}" = 1 ] && echo ' + torch.compile'), autocast fp16,"
  echo "GradScaler, SDPA is_causal, fused AdamW, clip 1.0 (scripts/gpu_torch_ref.py)."
  echo "MFU (llm.c's convention): (6 N + 6 L C T) x tokens/s / peak, N all parameters, L $L, C $C,"
  echo "T $T; peak ${peak:-unknown for this GPU} TFLOP/s, the datasheet's dense fp16 tensor-core rate."
  echo
  echo "| phase | status | seconds |"
  echo "| --- | --- | --- |"
  for n in "${phase_names[@]}"; do
    note=""
    case "${phase_status[$n]}" in
      ok | skipped*) ;;
      *) # the phase's last line of output, e.g. qtrain's one-line error
        note=$(sed -n "/^== $n (timeout/,/^== $n: /p" "${phase_log[$n]}" | grep -v '^== ' |
               grep -v '^[[:space:]]*$' | tail -n 1 | cut -c1-200 | tr '|' '/') ;;
    esac
    echo "| $n | ${phase_status[$n]}${note:+: $note} | ${phase_secs[$n]} |"
  done
  if [ -s "$bench_log" ]; then
    echo
    echo "CUDA kernel benchmarks (bench.log, the table; its JSON lines follow it there):"
    echo
    echo '```'
    sed -n '/^== bench (/,/^== bench:/p' "$bench_log" | grep -v '^== '
    echo '```'
  fi
} >"$summary"

# A file over 16 MiB would not come back from a device run: keep the head and tail of any log
# past 15 MiB.
for f in "$out"/*.log; do
  [ -f "$f" ] || continue
  if [ "$(stat -c %s "$f")" -gt $((15 << 20)) ]; then
    { head -c $((7 << 20)) "$f"; printf '\n[... cut to fit the 16 MiB limit ...]\n'; tail -c $((7 << 20)) "$f"; } >"$f.cut"
    mv "$f.cut" "$f"
  fi
done
cat "$summary"
