#!/usr/bin/env bash
# A failing render or update in a multi-process run: every process reports the same error
# naming the process and the task, the job exits non-zero, nothing hangs (timeout) and no
# process is left behind. A panic in render is the same error on every process, also with
# abort_on_panic installed (the engine catches it through prism_comm::catch_panic).
# Needs $EXDIR (examples built with --features prism/mpi) and $MPIRUN; see ci/test.sh.
set -uo pipefail
: "${EXDIR:?}" "${MPIRUN:=mpirun --oversubscribe}"
PROG="$EXDIR/engines_failing_job"
[ -x "$PROG" ] || { echo "missing $PROG"; exit 1; }
out=$(mktemp); trap 'rm -f "$out"' EXIT
failed=0
bad() { echo "FAIL: $*"; sed 's/^/    /' "$out"; failed=1; }

for n in 1 2 3; do
  timeout 120 $MPIRUN -n "$n" "$PROG" ok >"$out" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || bad "ok with $n processes exited $rc"
  [ "$(grep -c ': ok$' "$out")" -eq "$n" ] || bad "ok with $n processes: not every process finished"
done

for n in 2 3; do
  last=$((n - 1))
  timeout 120 $MPIRUN -n "$n" "$PROG" render >"$out" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then bad "render failure with $n processes exited $rc"; fi
  task=$((2 * n - 1))
  errs=$(grep -c "error: render failed on task $task (process $last, thread 1): cannot shade task $task\$" "$out")
  [ "$errs" -eq "$n" ] || bad "render failure with $n processes: $errs of $n processes report it"

  timeout 120 $MPIRUN -n "$n" "$PROG" update >"$out" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then bad "update failure with $n processes exited $rc"; fi
  errs=$(grep -c "error: update failed on the result of task 42 (process 0): cannot write" "$out")
  [ "$errs" -eq "$n" ] || bad "update failure with $n processes: $errs of $n processes report it"

  timeout 120 $MPIRUN -n "$n" "$PROG" panic >"$out" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then bad "panic with $n processes exited $rc"; fi
  errs=$(grep -c "error: render panicked on task $task (process $last, thread 1): render panicked on task $task\$" "$out")
  [ "$errs" -eq "$n" ] || bad "panic with $n processes: $errs of $n processes report it"
  ! grep -q MPI_Abort "$out" || bad "panic with $n processes: the job was aborted"
done

# Nothing of ours is left running.
if pgrep -f "$PROG" >/dev/null; then
  echo "FAIL: processes left behind:"; pgrep -af "$PROG"; failed=1
fi
exit $failed
