#!/usr/bin/env bash
# prism-comm: node-shared arrays leave nothing in /dev/shm however a job ends — normal exit, a
# panic on one rank, SIGTERM or SIGINT to one rank of a 2-rank job. Uses the `shm_hold`
# example (built with --features mpi in $EXDIR). Exits non-zero on failure.
set -euo pipefail
EXDIR=${EXDIR:?EXDIR must point at the debug examples directory}
MPIRUN=${MPIRUN:-mpirun --oversubscribe}
PROG="$EXDIR/shm_hold"
[ -x "$PROG" ] || { echo "FAIL: $PROG not built"; exit 1; }
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

count() { find /dev/shm -maxdepth 1 -name 'prism-*' 2>/dev/null | wc -l; }
pids_of_job() { sed -n 's/^shm_hold: rank [0-9]* pid \([0-9]*\) ready.*/\1/p' "$LOG"; }
fail() { echo "FAIL: $*"; cat "$LOG"; exit 1; }

# No segment named after one of the job's processes, and no more prism segments than before.
check_clean() {
  local what=$1 before=$2
  for pid in $(pids_of_job); do
    if ls /dev/shm/prism-"$pid"-* >/dev/null 2>&1; then fail "$what: segment of pid $pid left in /dev/shm"; fi
  done
  local after; after=$(count)
  [ "$after" -le "$before" ] || fail "$what: $before prism segments in /dev/shm before, $after after"
  echo "ok: $what leaves /dev/shm clean ($before before, $after after)"
}

wait_ready() {
  local n=$1
  for _ in $(seq 1 600); do
    [ "$(grep -c ' ready ' "$LOG" || true)" -ge "$n" ] && return 0
    sleep 0.1
  done
  fail "the ranks did not get ready"
}

# 1. Normal exit.
before=$(count)
timeout 120 $MPIRUN -n 2 "$PROG" exit >"$LOG" 2>&1 || fail "normal run failed"
[ "$(grep -c ' ready (node shared: true)' "$LOG")" -eq 2 ] || fail "the array was not node-shared"
check_clean "a normal exit" "$before"

# 2. A panic on one rank ends the job (no hang) and leaves nothing behind.
before=$(count)
set +e
timeout 120 $MPIRUN -n 2 "$PROG" panic >"$LOG" 2>&1
rc=$?
set -e
[ "$rc" -ne 124 ] || fail "the job hung after a panic"
[ "$rc" -ne 0 ] || fail "a panicking job exited with 0"
grep -q "deliberate panic" "$LOG" || fail "no panic message"
check_clean "a panic on one rank" "$before"

# 2b. A Lock dropped on a thread that may not call MPI: its free is collective, so the job
# must end with a message naming the mistake rather than leave the other rank in MPI_Win_free.
before=$(count)
set +e
timeout 120 $MPIRUN -n 2 "$PROG" lock-elsewhere >"$LOG" 2>&1
rc=$?
set -e
[ "$rc" -ne 124 ] || fail "the job hung after a Lock was dropped on another thread"
[ "$rc" -ne 0 ] || fail "a job that dropped a Lock on another thread exited with 0"
grep -q "a Lock was dropped on a thread" "$LOG" || { cat "$LOG"; fail "no message about the Lock"; }
check_clean "a Lock dropped on another thread" "$before"

# 3. SIGTERM and SIGINT to one rank while every rank holds the array.
for sig in TERM INT; do
  before=$(count)
  # Emptied here, not by the background job's redirection, which may come after wait_ready's
  # first look and let it count the previous job's lines.
  : >"$LOG"
  timeout 120 $MPIRUN -n 2 "$PROG" hold 60 >>"$LOG" 2>&1 &
  job=$!
  wait_ready 2
  victim=$(sed -n 's/^shm_hold: rank 1 pid \([0-9]*\) ready.*/\1/p' "$LOG")
  [ -n "$victim" ] || fail "no pid for rank 1"
  # The memory is mapped (a deleted /dev/shm file) but has no name.
  grep -q '/dev/shm/prism-.*(deleted)' "/proc/$victim/maps" || fail "rank 1 maps no deleted prism segment"
  kill -"$sig" "$victim"
  set +e
  wait "$job"
  rc=$?
  set -e
  [ "$rc" -ne 124 ] || fail "the job hung after SIG$sig to one rank"
  [ "$rc" -ne 0 ] || fail "the job exited with 0 after SIG$sig to one rank"
  check_clean "SIG$sig to one rank" "$before"
done
# 4. The fallback route (the name kept until every rank has attached) also works and cleans up.
before=$(count)
PRISM_COMM_SHM_ROUTE=name timeout 120 $MPIRUN -x PRISM_COMM_SHM_ROUTE -n 3 "$EXDIR/mpitest_shared" >"$LOG" 2>&1 \
  || fail "mpitest_shared through named segments failed"
check_clean "the named-segment route" "$before"
echo "comm_sigterm: all passed"
