#!/usr/bin/env bash
# test_dist_faults.sh: faults of a 2-rank CPU training under mpirun (CTest label mpi).
#
#   bash tests/mpi/test_dist_faults.sh QTRAIN MPIRUN [WORKDIR]
#
# 1. kill -9 of rank 1 mid-training, mpirun's default: the job ends non-zero within the
#    timeout, a message names rank 1, and the last checkpoint (written every 5 steps) is
#    intact (qtrain eval reads it, checksum included).
# 2. The same under `mpirun --enable-recovery`, where the launcher keeps the survivor alive:
#    qtrain's own watchdog must end rank 0 non-zero within dist.timeout_s (3 s) + the 5 s
#    ping window, naming rank 1 as lost.
# 3. SIGINT to mpirun (Ctrl-C), with a 5 s grace period before mpirun's SIGKILL: both ranks stop
#    after the same step and exit with the same signal status (130 for SIGINT, 143 for SIGTERM:
#    Open MPI's mpirun relays Ctrl-C to its ranks as SIGTERM), rank 0 writes one checkpoint, and
#    resuming it continues at the next step.
# Exit 0 when all hold, 1 naming the first that does not.
set -uo pipefail
qtrain="${1:?usage: test_dist_faults.sh QTRAIN MPIRUN [WORKDIR]}"
mpirun="${2:?usage: test_dist_faults.sh QTRAIN MPIRUN [WORKDIR]}"
work="$(mktemp -d "${3:-${TMPDIR:-/tmp}}/qtrain-faults-XXXXXX")"
# On the way out, no rank is left behind (a failed case may leave one running).
cleanup() {
  for f in "$work"/pid.*; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1

fail() { echo "test_dist_faults: FAIL: $*" >&2; exit 1; }
now() { date +%s.%N; }

# Synthetic shards (llm.c format, 257-token vocabulary), as tests/testutil.c writes them.
python3 - "$work/data" <<'EOF'
import os, struct, sys
d = sys.argv[1]; os.makedirs(d, exist_ok=True)
tok, state = [1], 12345
for i in range(1, 20000):
    state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
    tok.append((state >> 40) % 64 if (state >> 60) == 0 else (tok[-1] * 5 + 3) % 64)
for name, part in (("train_000.bin", tok[:16000]), ("val_000.bin", tok[16000:])):
    hdr = [20240520, 1, len(part)] + [0] * 253
    with open(os.path.join(d, name), "wb") as f:
        f.write(struct.pack("<256i", *hdr)); f.write(struct.pack(f"<{len(part)}H", *part))
EOF

# Each rank runs through this wrapper: qtrain's pid and exit status land in files. qtrain is
# its child (so that its status can be recorded); SIGTERM and SIGINT from mpirun are passed on.
# With WRAP=exec the wrapper becomes qtrain (mpirun then sees qtrain itself die).
cat >"$work/rank.sh" <<EOF
#!/usr/bin/env bash
if [ "\${WRAP:-}" = exec ]; then
  echo \$\$ >"$work/pid.\$OMPI_COMM_WORLD_RANK"
  exec "\$@"
fi
"\$@" &
child=\$!
echo \$child >"$work/pid.\$OMPI_COMM_WORLD_RANK"
trap 'kill -TERM \$child 2>/dev/null' TERM
trap 'kill -INT \$child 2>/dev/null' INT
while :; do
  wait \$child
  rc=\$?
  kill -0 \$child 2>/dev/null || break
done
echo \$rc >"$work/rc.\$OMPI_COMM_WORLD_RANK"
exit \$rc
EOF
chmod +x "$work/rank.sh"

config=(--set model.n_layer=2 --set model.d_model=32 --set model.n_head=2 --set model.d_ff=64
        --set model.max_seq_len=16 --set model.vocab_size=257 --set train.batch_size=2
        --set train.seq_len=16 --set train.warmup_steps=2 --set train.log_every=100
        --set train.eval_every=0 --set train.eval_batches=1 --set train.threads=1
        --set "data.dir=$work/data" --device cpu)

# Starts a 2-rank run into $work/$1 in the background (extra mpirun flags in MPIFLAGS). A
# training line every 100 steps: mpirun stops reading the ranks' output once it is told to
# stop, and a rank that fills the pipe would block before it can finish its last step.
start() {
  local out="$work/$1"; shift
  rm -f "$work"/pid.* "$work"/rc.*
  "$mpirun" -np 2 --oversubscribe --bind-to none ${MPIFLAGS:-} "$work/rank.sh" "$qtrain" train \
    "${config[@]}" --out "$out" "$@" >"$out.log" 2>&1 &
  job=$!
}

# Waits until $1/metrics.jsonl logs step >= $2 (at most 60 s).
wait_step() {
  local deadline=$(( $(date +%s) + 60 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    local s
    s=$(grep -o '"type":"train","step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -1 |
        grep -o '[0-9]*$')
    [ -n "$s" ] && [ "$s" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# Waits for pid $1 at most $2 seconds; the exit status in $rc, or fails.
wait_exit() {
  local deadline
  deadline=$(python3 -c "import time; print(time.time() + $2)")
  while kill -0 "$1" 2>/dev/null; do
    python3 -c "import sys, time; sys.exit(time.time() > $deadline)" || {
      kill -9 "$1" 2>/dev/null; fail "$3: still running after $2 s"; }
    sleep 0.1
  done
  wait "$1"; rc=$?
}

# ---- 1. rank 1 killed, mpirun's default -----------------------------------------------------
# mpirun ends the job as soon as a rank dies and names it ("process rank 1 ... exited on
# signal 9"); rank 0 is ended by the launcher before its own timeout.
WRAP=exec start kill --set train.max_steps=100000 --set train.ckpt_every=5 --set dist.timeout_s=10
wait_step "$work/kill" 7 || fail "kill: no step 7 logged (see $work/kill.log)"
t0=$(now)
kill -9 "$(cat "$work/pid.1")"
wait_exit "$job" 30 "kill"
t1=$(now)
[ "$rc" -ne 0 ] || fail "kill: mpirun exited 0 after rank 1 was killed"
grep -q "rank 1 with PID" "$work/kill.log" ||
  { cat "$work/kill.log" >&2; fail "kill: no message names rank 1"; }
"$qtrain" eval --ckpt "$work/kill/ckpt.bin" --batches 1 >"$work/kill.eval" 2>&1 ||
  { cat "$work/kill.eval" >&2; fail "kill: the checkpoint left behind does not load"; }
echo "test_dist_faults: kill -9 of rank 1 under mpirun: job ended with status $rc after" \
     "$(python3 -c "print(f'{$t1 - $t0:.1f}')") s; message: $(grep -m1 "rank 1 with PID" "$work/kill.log")"

# ---- 2. rank 1 killed, the launcher keeps rank 0 alive: qtrain's watchdog --------------------
MPIFLAGS="--enable-recovery" start lost --set train.max_steps=100000 --set dist.timeout_s=3
wait_step "$work/lost" 4 || fail "lost: no step 4 logged (see $work/lost.log)"
t0=$(now)
kill -9 "$(cat "$work/pid.1")"
# rank 0 must exit within dist.timeout_s (3) + the ping window (5) + slack.
deadline=$(python3 -c "print($t0 + 20)")
while [ ! -s "$work/rc.0" ]; do
  python3 -c "import sys, time; sys.exit(time.time() > $deadline)" || {
    kill -9 "$job" "$(cat "$work/pid.0")" 2>/dev/null; cat "$work/lost.log" >&2
    fail "lost: rank 0 still running 20 s after rank 1 was killed"; }
  sleep 0.1
done
t1=$(now)
wait "$job" 2>/dev/null
[ "$(cat "$work/rc.0")" -ne 0 ] || fail "lost: rank 0 exited 0 after losing rank 1"
grep -q "rank 1 lost" "$work/lost.log" ||
  { cat "$work/lost.log" >&2; fail "lost: rank 0's message does not name rank 1 as lost"; }
echo "test_dist_faults: rank 1 killed, launcher kept rank 0: rank 0 exited" \
     "$(cat "$work/rc.0") after $(python3 -c "print(f'{$t1 - $t0:.1f}')") s:" \
     "$(grep -m1 "rank 1 lost" "$work/lost.log" | cut -c1-160)"

# ---- 3. Ctrl-C on mpirun ------------------------------------------------------------------------
# Open MPI 4.1's mpirun, on SIGINT, waits odls_base_sigkill_timeout seconds (default 1), sends
# SIGTERM to the ranks, waits as long again, then sends SIGKILL: the ranks have that long to
# agree on a last step and write the checkpoint (or, killed, leave the previous one intact).
# MPI_Finalize alone takes about 2 s once mpirun is ending the job: 5 s leaves room.
MPIFLAGS="--mca odls_base_sigkill_timeout 5" start int --set train.max_steps=100000
wait_step "$work/int" 3 || fail "int: no step 3 logged (see $work/int.log)"
kill -INT "$job"
wait_exit "$job" 60 "int"
rc0=$(cat "$work/rc.0" 2>/dev/null)
case "$rc0" in 130 | 143) ;; *)
  cat "$work/int.log" >&2; fail "int: rank 0 exited '$rc0', not 130 (SIGINT) or 143 (SIGTERM)" ;;
esac
[ "$(cat "$work/rc.1" 2>/dev/null)" = "$rc0" ] ||
  { cat "$work/int.log" >&2; fail "int: rank 1 exited '$(cat "$work/rc.1" 2>/dev/null)', rank 0 $rc0"; }
[ "$(grep -cE "stopped by SIG(INT|TERM)" "$work/int.log")" = 1 ] ||
  { cat "$work/int.log" >&2; fail "int: not exactly one 'stopped by SIGINT/SIGTERM' line"; }
stopped=$(grep -oE "stopped by SIG(INT|TERM) after step [0-9]*" "$work/int.log" | grep -o '[0-9]*$')
last=$(grep -o '"type":"train","step":[0-9]*' "$work/int/metrics.jsonl" | tail -1 | grep -o '[0-9]*$')
[ "$stopped" = "$last" ] || fail "int: stopped after step $stopped, but the log ends at $last"
start int --resume "$work/int/ckpt.bin" --set "train.max_steps=$((stopped + 1))"
wait_exit "$job" 60 "int resume"
[ "$rc" -eq 0 ] || { cat "$work/int.log" >&2; fail "int: resuming the checkpoint failed"; }
next=$(grep -o '"type":"train","step":[0-9]*' "$work/int/metrics.jsonl" | tail -1 | grep -o '[0-9]*$')
[ "$next" = "$((stopped + 1))" ] || fail "int: the resumed run logged step $next, not $((stopped + 1))"
echo "test_dist_faults: SIGINT to mpirun: both ranks stopped after step $stopped and exited 0;" \
     "the checkpoint resumed at step $next"
echo "test_dist_faults: all passed"
