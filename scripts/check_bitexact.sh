#!/usr/bin/env bash
# Checks that a refactor changed no arithmetic: trains the default model for STEPS steps on the
# CPU backend with the qtrain built from REV and with the one built from the working tree, and
# compares the per-step training losses bit for bit (the JSON of metrics.jsonl carries every
# float with 9 significant digits, enough to round-trip it).
#
#   bash scripts/check_bitexact.sh REV [STEPS]      (STEPS: 20)
#
# REV is built CPU-only in a temporary worktree (git worktree add --detach; removed afterwards);
# the working tree is built CPU-only into build-bitexact/. Both runs use the prepared King James
# corpus (data/kjv, made as scripts/main.sh makes it) and the same seed and thread count (the
# machine's, or OMP_NUM_THREADS when set).
# Exit 0 when every loss matches, 1 naming the first step that differs.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:?usage: scripts/check_bitexact.sh REV [STEPS]}"
steps="${2:-20}"
root="$PWD"
tmp="$(mktemp -d)"
cleanup() {
  git -C "$root" worktree remove --force "$tmp/rev" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

git rev-parse --verify --quiet "$rev^{commit}" >/dev/null ||
  { echo "check_bitexact: $rev is not a commit here" >&2; exit 2; }
[ -s data/kjv.txt ] || bash scripts/get_corpus.sh
cpu_only=(-DCMAKE_BUILD_TYPE=Release -DQT_CUDA=OFF -DQT_SANITIZER_TESTS=OFF)

git worktree add --detach "$tmp/rev" "$rev" >/dev/null
echo "check_bitexact: building $rev ($(git rev-parse --short "$rev")) and the working tree" >&2
cmake -S "$tmp/rev" -B "$tmp/rev/build" "${cpu_only[@]}" >/dev/null
cmake --build "$tmp/rev/build" -j "$(nproc)" --target qtrain >/dev/null
cmake -S . -B build-bitexact "${cpu_only[@]}" >/dev/null
cmake --build build-bitexact -j "$(nproc)" --target qtrain >/dev/null
[ -s data/kjv/tokenizer.bin ] || ./build-bitexact/qtrain prepare --input data/kjv.txt --out data/kjv

run() { # run <qtrain> <out> <tree>: <tree>'s own configs/default.conf (a newer tree may
       # list keys the older qtrain does not know); the log goes to <out>.log
  "$1" train --config "$3/configs/default.conf" --device cpu --out "$2" \
    --set "train.max_steps=$steps" --set train.log_every=1 --set train.eval_every=100000 \
    --set train.ckpt_every=100000 >"$2.log" 2>&1 || { cat "$2.log" >&2; exit 1; }
}
run "$tmp/rev/build/qtrain" "$tmp/run_rev" "$tmp/rev"
run ./build-bitexact/qtrain "$tmp/run_new" "$root"

python3 - "$tmp/run_rev/metrics.jsonl" "$tmp/run_new/metrics.jsonl" "$rev" <<'EOF'
import json, sys
def losses(path):
    return [(j["step"], j["loss"]) for j in map(json.loads, open(path)) if j.get("type") == "train"]
a, b = losses(sys.argv[1]), losses(sys.argv[2])
if len(a) != len(b) or not a:
    sys.exit(f"check_bitexact: {len(a)} losses from {sys.argv[3]}, {len(b)} from the working tree")
for (sa, la), (sb, lb) in zip(a, b):
    if sa != sb or la != lb:
        sys.exit(f"check_bitexact: step {sa}: loss {la!r} with {sys.argv[3]}, {lb!r} now")
print(f"check_bitexact: {len(a)} training losses bit-identical to {sys.argv[3]} "
      f"(first {a[0][1]!r}, last {a[-1][1]!r})")
EOF
