#!/usr/bin/env bash
# test_gpu_check.sh: scripts/gpu_check.sh refuses to run where no GPU is usable, with one line
# on stderr, exit 2 and nothing written, whatever this machine has: it is run with PATH set so
# that nvidia-smi is missing, fails, or lists no device (fake programs).
# Also checks that --digest prints the same 16-hex-digit digest twice.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail=0

expect_refusal() { # expect_refusal WHAT PATH
  local what=$1 path=$2 out="$tmp/out-$RANDOM"
  local err rc
  err="$(PATH="$path" bash "$root/scripts/gpu_check.sh" "$out" 2>&1 >/dev/null)"
  rc=$?
  if [ "$rc" -ne 2 ] || ! printf '%s' "$err" | grep -q "^gpu_check: error: no usable GPU: $what"; then
    echo "FAIL ($what): exit $rc, stderr: $err"
    fail=1
  elif [ -e "$out" ]; then
    echo "FAIL ($what): wrote $out"
    fail=1
  else
    echo "ok: $what -> exit 2: $err"
  fi
}

# No nvidia-smi anywhere on PATH: only the basic tools, from a folder of links.
mkdir -p "$tmp/bin"
for t in bash dirname date mkdir grep head printf timeout cat sed awk find sort xargs \
         sha256sum cut env; do
  p="$(command -v "$t")" && ln -sf "$p" "$tmp/bin/$t"
done
expect_refusal "nvidia-smi not found" "$tmp/bin"

mkdir -p "$tmp/failing" "$tmp/empty"
printf '#!/bin/sh\necho "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver"\nexit 9\n' \
  >"$tmp/failing/nvidia-smi"
printf '#!/bin/sh\nexit 0\n' >"$tmp/empty/nvidia-smi"
chmod +x "$tmp/failing/nvidia-smi" "$tmp/empty/nvidia-smi"
expect_refusal "nvidia-smi -L failed" "$tmp/failing:$tmp/bin"
expect_refusal "nvidia-smi -L lists no device" "$tmp/empty:$tmp/bin"

d1="$(bash "$root/scripts/gpu_check.sh" --digest)" && d2="$(bash "$root/scripts/gpu_check.sh" --digest)"
if ! printf '%s' "$d1" | grep -Eq '^[0-9a-f]{16}$' || [ "$d1" != "$d2" ]; then
  echo "FAIL: --digest gave '$d1' then '$d2'"
  fail=1
else
  echo "ok: --digest $d1"
fi
exit $fail
