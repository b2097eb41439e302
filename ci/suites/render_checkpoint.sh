#!/usr/bin/env bash
# A render stopped mid-run and resumed from its --checkpoint ends with the same bytes as one
# never stopped: a 2-rank job is sent SIGTERM (a job's time limit) once its first checkpoint
# is written, then resumed by a job of another shape (3 ranks, then hybrid 2 x 2 with more
# passes). The stopped job must end (no hang) and leave nothing in /dev/shm. Also jobs that
# --time-limit, and SIGUSR1 forwarded by mpirun, end between passes, resumed the same way.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PRISM_BIN:-target/debug/prism}
MPIRUN=${MPIRUN:-mpirun --oversubscribe}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Every pass re-samples every pixel (--fraction 1), so that passes stay long enough for the
# signal to land mid-run.
ARGS=(render cornell --width 96 --height 96 --spp 16 --seed 13 --tile 8 --fraction 1)
shm() { find /dev/shm -maxdepth 1 -name 'prism-*' 2>/dev/null | wc -l; }
# wait_for_checkpoint FILE JOB LOG: until the background job JOB has written FILE (fails if it
# ends or a minute passes first).
wait_for_checkpoint() {
  for _ in $(seq 1 1200); do
    [ -e "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.05
  done
  cat "$3"; fail "no checkpoint $1 was written"
}

# The reference: every pass at once, one process.
timeout 300 "$BIN" "${ARGS[@]}" --passes 30 --engine threads --quiet --out "$OUT/ref.png" --exr "$OUT/ref.exr"
timeout 300 "$BIN" "${ARGS[@]}" --passes 36 --engine threads --quiet --out "$OUT/ref36.png" --exr "$OUT/ref36.exr"

# Stopped: SIGTERM to the launcher as soon as the first checkpoint exists.
before=$(shm)
$MPIRUN -n 2 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --quiet --out "$OUT/run.png" \
  --exr "$OUT/run.exr" --checkpoint "$OUT/run.ckpt" >"$OUT/stopped.log" 2>&1 &
job=$!
wait_for_checkpoint "$OUT/run.ckpt" "$job" "$OUT/stopped.log"
kill -TERM "$job" 2>/dev/null || true
stopped=0
for _ in $(seq 1 600); do
  kill -0 "$job" 2>/dev/null || { stopped=1; break; }
  sleep 0.1
done
[ "$stopped" -eq 1 ] || { kill -KILL "$job"; fail "the job did not end within 60 s of SIGTERM"; }
wait "$job" && fail "the stopped job exited 0: it finished before SIGTERM reached it, so nothing was resumed" || true
sleep 1
[ "$(shm)" -le "$before" ] || fail "the stopped job left segments in /dev/shm"
echo "ok: the job ended on SIGTERM; /dev/shm clean"

# Resumed by 3 ranks: the passes done are not rendered again, and the image is the reference's.
said=$(timeout 300 $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --out "$OUT/run.png" \
  --exr "$OUT/run.exr" --checkpoint "$OUT/run.ckpt" 2>&1) || { echo "$said"; fail "the resumed job failed"; }
grep -q "going on with pass" <<<"$said" || { echo "$said"; fail "the job did not resume mid-run"; }
[ "$(grep -c 'resuming from' <<<"$said")" -eq 1 ] || { echo "$said"; fail "the resume note was not said once"; }
cmp "$OUT/ref.exr" "$OUT/run.exr" || fail "the resumed EXR differs from the uninterrupted one"
cmp "$OUT/ref.png" "$OUT/run.png" || fail "the resumed PNG differs from the uninterrupted one"
echo "ok: $(grep 'resuming from' <<<"$said"); byte-identical to the render never stopped"

# More passes later, by a hybrid job of 2 ranks x 2 threads.
timeout 300 $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --passes 36 --engine hybrid --threads 2 --quiet \
  --out "$OUT/run.png" --exr "$OUT/run.exr" --checkpoint "$OUT/run.ckpt"
cmp "$OUT/ref36.exr" "$OUT/run.exr" || fail "six more passes differ from the uninterrupted 36"
echo "ok: 6 more passes by hybrid 2 x 2 match the uninterrupted 36"

# --time-limit under mpirun: the job stops between passes with status 0, says so once, and
# the next job goes on to the reference image.
said=$(timeout 300 $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --quiet --time-limit 0.001s \
  --out "$OUT/tl.png" --exr "$OUT/tl.exr" --checkpoint "$OUT/tl.ckpt" 2>&1) || { echo "$said"; fail "the job with a time limit failed"; }
[ "$(grep -c 'stopped after pass 1 of 30' <<<"$said")" -eq 1 ] || { echo "$said"; fail "the time limit's note was not said once"; }
timeout 300 $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --quiet --time-limit 1h \
  --out "$OUT/tl.png" --exr "$OUT/tl.exr" --checkpoint "$OUT/tl.ckpt"
cmp "$OUT/ref.exr" "$OUT/tl.exr" || fail "the render stopped by --time-limit and resumed differs"
echo "ok: $(grep 'stopped after' <<<"$said" | cut -c1-80)...; resumed byte-identical"

# SIGUSR1 to the launcher (a batch system's warning; mpirun forwards it to every rank): the job
# ends after the pass in progress with status 0, says so once, and the next job goes on.
$MPIRUN -n 2 "$BIN" "${ARGS[@]}" --passes 30 --engine hybrid --threads 2 --quiet \
  --out "$OUT/u.png" --exr "$OUT/u.exr" --checkpoint "$OUT/u.ckpt" >"$OUT/usr1.log" 2>&1 &
job=$!
wait_for_checkpoint "$OUT/u.ckpt" "$job" "$OUT/usr1.log"
# Meanwhile a second job given the same checkpoint is refused once, on every rank, at once.
set +e
said=$(timeout 120 $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --quiet \
  --out "$OUT/second.png" --checkpoint "$OUT/u.ckpt" 2>&1)
code=$?
set -e
[ "$code" -ne 0 ] && [ "$code" -ne 124 ] || { echo "$said"; fail "a second job on a checkpoint in use ran or hung (status $code)"; }
[ "$(grep -c 'prism: error' <<<"$said")" -eq 1 ] && grep -q "u.ckpt: in use by another run (process" <<<"$said" ||
  { echo "$said"; fail "the second job's refusal was not said once"; }
[ ! -e "$OUT/second.png" ] || fail "the refused job wrote an image"
echo "ok: a second job on the checkpoint in use: $(grep 'prism: error' <<<"$said" | cut -c1-110)..."
kill -USR1 "$job"
wait "$job" || { cat "$OUT/usr1.log"; fail "the job stopped by SIGUSR1 did not exit 0"; }
[ ! -e "$OUT/u.ckpt.lock" ] || fail "the job that ended left its checkpoint's lock file"
[ "$(grep -c 'stopped after pass [0-9]* of 30: SIGUSR1 asked for a stop' "$OUT/usr1.log")" -eq 1 ] ||
  { cat "$OUT/usr1.log"; fail "the SIGUSR1 stop was not said once"; }
grep -q "in 30 passes" "$OUT/usr1.log" && fail "SIGUSR1 came too late to stop anything"
timeout 300 $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --quiet \
  --out "$OUT/u.png" --exr "$OUT/u.exr" --checkpoint "$OUT/u.ckpt"
cmp "$OUT/ref.exr" "$OUT/u.exr" || fail "the render stopped by SIGUSR1 and resumed differs"
echo "ok: $(grep 'stopped after' "$OUT/usr1.log" | cut -c1-70)...; resumed byte-identical"

# SIGUSR1 to one rank other than the root (a user's `kill -USR1` on the prism process that
# `ps` showed): the whole job stops after the pass in progress, as above.
$MPIRUN -n 3 "$BIN" "${ARGS[@]}" --passes 30 --engine mpi --quiet \
  --out "$OUT/r.png" --checkpoint "$OUT/r.ckpt" >"$OUT/rank2.log" 2>&1 &
job=$!
wait_for_checkpoint "$OUT/r.ckpt" "$job" "$OUT/rank2.log"
rank2=""
for pid in $(pgrep -f "$OUT/r.ckpt"); do
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=2'; then rank2=$pid; fi
done
[ -n "$rank2" ] || { kill -KILL "$job"; fail "rank 2 of the job was not found"; }
kill -USR1 "$rank2"
wait "$job" || { cat "$OUT/rank2.log"; fail "the job whose rank 2 got SIGUSR1 did not exit 0"; }
grep -q 'stopped after pass [0-9]* of 30: SIGUSR1 asked for a stop' "$OUT/rank2.log" ||
  { cat "$OUT/rank2.log"; fail "SIGUSR1 to rank 2 did not stop the job"; }
echo "ok: SIGUSR1 to rank 2 alone stopped the whole job between passes"

# Another render's checkpoint under mpirun: refused once, and kept.
cp "$OUT/run.ckpt" "$OUT/kept.ckpt"
set +e
said=$(timeout 120 $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --max-depth 4 --passes 36 --engine mpi --quiet \
  --out "$OUT/x.png" --checkpoint "$OUT/run.ckpt" 2>&1)
code=$?
set -e
[ "$code" -ne 0 ] || fail "a checkpoint of --max-depth 8 resumed a render of --max-depth 4"
[ "$(grep -c 'prism: error' <<<"$said")" -eq 1 ] && grep -q -- "--max-depth 8 there, 4 here" <<<"$said" ||
  { echo "$said"; fail "the refusal was not said once, naming --max-depth"; }
cmp "$OUT/kept.ckpt" "$OUT/run.ckpt" || fail "a refused checkpoint was changed"
echo "ok: $(grep 'prism: error' <<<"$said")"
echo "checkpoint suite passed"
