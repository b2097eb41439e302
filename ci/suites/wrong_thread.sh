#!/usr/bin/env bash
# A parallel call or an engine run from a thread that may not use MPI, on one process of
# several: that process cannot reach the others, who wait for it in the call's opening
# collective, so the job must end (non-zero, no timeout) with a message naming that process,
# and leave nothing running. Alone (one process), the same call returns normally or with a
# plain error. Needs $EXDIR (examples built with --features prism/mpi) and $MPIRUN.
set -uo pipefail
: "${EXDIR:?}" "${MPIRUN:=mpirun --oversubscribe}"
TASKING="$EXDIR/tasking_wrong_thread"
ENGINES="$EXDIR/engines_failing_job"
for p in "$TASKING" "$ENGINES"; do [ -x "$p" ] || { echo "missing $p"; exit 1; }; done
out=$(mktemp); trap 'rm -f "$out"' EXIT
failed=0
bad() { echo "FAIL: $*"; sed 's/^/    /' "$out"; failed=1; }
# run N PROG ARGS...: sets rc, output in $out.
run() { local n=$1; shift; timeout 120 $MPIRUN -n "$n" "$@" >"$out" 2>&1; rc=$?; }
# An aborted job: neither success nor the timeout, and the rank named with the reason.
aborted() {
  local what=$1 pattern=$2
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then bad "$what exited $rc"; return; fi
  grep -qE "$pattern" "$out" || bad "$what: no message matching: $pattern"
}

run 3 "$TASKING" ok
[ "$rc" -eq 0 ] && [ "$(grep -c ': ok$' "$out")" -eq 3 ] || bad "tasking ok with 3 ranks (rc $rc)"
run 1 "$TASKING" call-one
[ "$rc" -eq 0 ] && grep -q 'rank 0: ok$' "$out" || bad "tasking call-one alone (rc $rc)"

for n in 2 3; do
  last=$((n - 1))
  run "$n" "$TASKING" call-one
  aborted "tasking call-one, $n ranks" \
    "prism-tasking: rank $last: a parallel call was made from a thread other than the one that created the factory.*did not initialise MPI.*aborting the job"
  run "$n" "$TASKING" call-all
  aborted "tasking call-all, $n ranks" "prism-tasking: rank [0-9]+: a parallel call was made from a thread other"
  run "$n" "$TASKING" factory-one
  aborted "tasking factory-one, $n ranks" \
    "prism-tasking: rank $last: creating a ParallelFactory: .*did not initialise MPI.*aborting the job"
  run "$n" "$ENGINES" wrong-thread
  aborted "engines wrong-thread, $n processes" \
    "prism-engines: process $last: comparing task lists at the start of a run: .*did not initialise MPI.*aborting the job"
done
# After MPI's end (the Universe dropped) no one waits: the call returns its error, no abort.
# (A lone process's call needs no communication, and succeeds.)
for n in 2 3; do
  run "$n" "$TASKING" after-finalize
  [ "$rc" -eq 0 ] \
    && [ "$(grep -c 'error: communication failed: rank [0-9]: gather: MPI was already finalised' "$out")" -eq "$n" ] \
    && ! grep -q "aborting the job" "$out" || bad "tasking after-finalize, $n ranks (rc $rc)"
done
# Alone, the engine's run from another thread is a plain error (MPI is up, with one process).
run 1 "$ENGINES" wrong-thread
[ "$rc" -eq 3 ] && grep -q "process 0: error: .*did not initialise MPI" "$out" \
  || bad "engines wrong-thread alone (rc $rc)"

if pgrep -f "$TASKING|$ENGINES" >/dev/null; then
  echo "FAIL: processes left behind:"; pgrep -af "$TASKING|$ENGINES"; failed=1
fi
exit $failed
