#!/usr/bin/env bash
# prism-tasking examples under their own launch patterns:
#  1. mcrt_slab (Monte Carlo radiative transfer) prints bit-identical tallies with 1 thread,
#     2 threads, 3 processes and 2 processes x 2 threads, and for pure absorption its
#     transmitted fraction agrees with e^-tau within 4 standard deviations;
#  2. groups_orb (worker groups over ORB subdomains) resumes after an interrupted run (a
#     simulated crash that aborts the job) and after a failed task, and ends with the same
#     total as an uninterrupted run;
#  3. groups_orb: a second job on a state directory a running job holds is refused on every
#     rank without touching the first job's tasks, and once the first job is killed (SIGKILL
#     of its root, which holds the directory's lock) a rerun resumes and completes.
# Uses $EXDIR (debug examples built with --features prism/mpi) and $MPIRUN. Exits non-zero
# on failure.
set -euo pipefail
EXDIR=${EXDIR:?EXDIR must point at the debug examples directory}
MPIRUN=${MPIRUN:-mpirun --oversubscribe}
MCRT="$EXDIR/mcrt_slab"
ORB="$EXDIR/groups_orb"
for p in "$MCRT" "$ORB"; do [ -x "$p" ] || { echo "FAIL: $p not built"; exit 1; }; done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PRISM_PROGRESS=log PRISM_PROGRESS_INTERVAL=2
fail() { echo "FAIL: $*"; exit 1; }

# ---- 1. mcrt_slab: identical tallies for every split -------------------------------------
ARGS=(--photons 60000 --tau 1.5 --albedo 0.6 --seed 7)
tallies() { grep -E '^(transmitted|reflected|absorbed|scatterings|absorption profile) ' "$1"; }
timeout 120 "$MCRT" "${ARGS[@]}" --threads 1 >"$WORK/t1.out" || fail "mcrt_slab 1 thread"
timeout 120 "$MCRT" "${ARGS[@]}" --threads 2 >"$WORK/t2.out" || fail "mcrt_slab 2 threads"
timeout 120 $MPIRUN -n 3 "$MCRT" "${ARGS[@]}" --threads 1 >"$WORK/p3.out" || fail "mcrt_slab 3 processes"
timeout 120 $MPIRUN -n 2 "$MCRT" "${ARGS[@]}" --threads 2 >"$WORK/p2t2.out" || fail "mcrt_slab 2 processes x 2 threads"
grep -q 'MultiProcess' "$WORK/p3.out" || fail "3 processes did not run MultiProcess: $(head -1 "$WORK/p3.out")"
grep -q 'MultiHybrid' "$WORK/p2t2.out" || fail "2x2 did not run MultiHybrid: $(head -1 "$WORK/p2t2.out")"
tallies "$WORK/t1.out" >"$WORK/ref"
[ "$(wc -l <"$WORK/ref")" -eq 5 ] || fail "mcrt_slab printed no tallies: $(cat "$WORK/t1.out")"
for run in t2 p3 p2t2; do
  tallies "$WORK/$run.out" | cmp -s - "$WORK/ref" || {
    echo "--- 1 thread:"; cat "$WORK/ref"; echo "--- $run:"; tallies "$WORK/$run.out"
    fail "mcrt_slab tallies of $run differ from 1 thread"
  }
done
echo "ok: mcrt_slab tallies bit-identical for 1 thread, 2 threads, 3 processes, 2 processes x 2 threads"
cat "$WORK/ref"

# Pure absorption: e^-tau within 4 sigma, and identical across splits too.
timeout 120 $MPIRUN -n 2 "$MCRT" --photons 100000 --tau 2 --albedo 0 --threads 2 >"$WORK/abs.out" || fail "mcrt_slab pure absorption"
timeout 120 "$MCRT" --photons 100000 --tau 2 --albedo 0 --threads 1 >"$WORK/abs1.out" || fail "mcrt_slab pure absorption, 1 thread"
grep '^pure absorption' "$WORK/abs.out" || fail "no pure-absorption line"
grep -q 'within-4-sigma yes' "$WORK/abs.out" || fail "transmitted fraction disagrees with e^-tau"
diff <(tallies "$WORK/abs.out") <(tallies "$WORK/abs1.out") >/dev/null || fail "pure absorption tallies differ between 2x2 and 1 thread"
echo "ok: pure absorption agrees with e^-tau"

# ---- 2. groups_orb: interruption, failure, resume ----------------------------------------
run_orb() { timeout 120 $MPIRUN -n 4 "$ORB" --particles 3000 --subdomains 7 --group-size 2 "$@"; }
# Reference: one uninterrupted run.
run_orb --dir "$WORK/clean" >"$WORK/clean.out" || fail "groups_orb clean run"
REF=$(grep '^total energy' "$WORK/clean.out") || fail "clean run printed no total: $(cat "$WORK/clean.out")"

# An interrupted run (the job aborts when subdomain 3 starts), then a rerun that completes it.
if run_orb --dir "$WORK/crash" --crash-task 3 >"$WORK/crash.out" 2>"$WORK/crash.err"; then
  fail "the crashing run exited 0"
fi
grep -q 'RUNNING' "$WORK/crash/subdomain_03/state" || fail "the interrupted task is not recorded as running"
run_orb --dir "$WORK/crash" >"$WORK/resumed.out" 2>&1 || fail "rerun after the crash"
GOT=$(grep '^total energy' "$WORK/resumed.out") || fail "resumed run printed no total: $(cat "$WORK/resumed.out")"
[ "$GOT" = "$REF" ] || fail "total after a crash and a rerun '$GOT' differs from clean '$REF'"
echo "ok: groups_orb resumed after an interrupted run"

# A failed task is recorded, kept on a rerun, interrupted on a retry, and completed after.
run_orb --dir "$WORK/fail" --fail-task 6 >"$WORK/fail.out" 2>&1 || fail "run with a failing task"
grep -q 'FAILED' "$WORK/fail/subdomain_06/state" || fail "subdomain_06 not recorded as failed"
grep -q 'simulated failure' "$WORK/fail/subdomain_06/failure" || fail "no failure message file"
grep -q '^incomplete' "$WORK/fail.out" || fail "an incomplete run printed a total: $(cat "$WORK/fail.out")"
run_orb --dir "$WORK/fail" >"$WORK/keep.out" 2>&1 || fail "rerun keeping the failure"
grep -q 'done 6 failed 1 open 0 | this run: skipped done 6, kept failed 1, failures 0' "$WORK/keep.out" \
  || fail "rerun did not skip done and keep failed: $(cat "$WORK/keep.out")"
if run_orb --dir "$WORK/fail" --retry --crash-task 6 >"$WORK/retry-crash.out" 2>&1; then
  fail "the crashing retry exited 0"
fi
grep -q 'RUNNING' "$WORK/fail/subdomain_06/state" || fail "the interrupted retry is not recorded as running"
run_orb --dir "$WORK/fail" >"$WORK/final.out" 2>&1 || fail "final rerun"
GOT=$(grep '^total energy' "$WORK/final.out") || fail "final rerun printed no total: $(cat "$WORK/final.out")"
[ "$GOT" = "$REF" ] || fail "resumed total '$GOT' differs from clean '$REF'"
echo "ok: groups_orb recorded, kept, retried and completed a failed task; $GOT"

# ---- 3. groups_orb: one job per state directory ------------------------------------------
BUSY="$WORK/busy"
count_states() { cat "$BUSY"/subdomain_*/state 2>/dev/null | grep -c "$1" || true; }
# Job A: every task sleeps a minute, so its two groups hold two RUNNING tasks for that long.
# Started directly (not through run_orb) so that $! is timeout's pid: killing it ends the job.
timeout 300 $MPIRUN -n 4 "$ORB" --particles 3000 --subdomains 7 --group-size 2 --dir "$BUSY" \
  --task-ms 60000 >"$WORK/busyA.out" 2>"$WORK/busyA.err" &
APID=$!
stop_a() { kill "$APID" 2>/dev/null || true; wait "$APID" 2>/dev/null || true; }
trap 'stop_a; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do [ "$(count_states RUNNING)" -eq 2 ] && break; sleep 0.2; done
[ "$(count_states RUNNING)" -eq 2 ] || fail "job A did not start its tasks: $(cat "$WORK/busyA.err")"
BEFORE=$(grep -H . "$BUSY"/subdomain_*/state)
# Job B on the same directory: refused on every rank, naming the directory.
if run_orb --dir "$BUSY" >"$WORK/busyB.out" 2>&1; then
  fail "a second job on a busy state directory exited 0: $(cat "$WORK/busyB.out")"
fi
# Counted as occurrences, not lines: two processes' lines may still share one line of output.
REFUSED=$(grep -o "state directory $BUSY: another job is using it" "$WORK/busyB.out" | wc -l)
[ "$REFUSED" -eq 4 ] || fail "job B not refused on all 4 ranks: $(cat "$WORK/busyB.out")"
AFTER=$(grep -H . "$BUSY"/subdomain_*/state)
[ "$BEFORE" = "$AFTER" ] || fail "job B changed job A's states: $BEFORE / $AFTER"
echo "ok: a second job on a busy state directory is refused on every rank"
# SIGKILL of A's root, which holds the lock: the kernel releases it, and a rerun resumes.
ROOTPID=$(sed -n 's/^# root pid //p' "$WORK/busyA.out")
[ -n "$ROOTPID" ] || fail "job A printed no root pid"
kill -9 "$ROOTPID"
if wait "$APID"; then fail "job A exited 0 after SIGKILL of its root"; fi
run_orb --dir "$BUSY" >"$WORK/busyC.out" 2>&1 || fail "rerun after the killed job: $(cat "$WORK/busyC.out")"
GOT=$(grep '^total energy' "$WORK/busyC.out") || fail "rerun after the kill printed no total: $(cat "$WORK/busyC.out")"
[ "$GOT" = "$REF" ] || fail "total after the killed job '$GOT' differs from clean '$REF'"
echo "ok: after SIGKILL of the job holding it, the state directory resumes and completes"
