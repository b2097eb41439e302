#!/usr/bin/env bash
# The same scene and seed give byte-identical images with every engine and rank count:
# serial, threads (2), mpi (3 ranks) and hybrid (2 ranks x 2 threads). Also checks that bad
# arguments fail with one clear message and a non-zero status, and that a failure on one rank
# ends the job instead of hanging, said once.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${PRISM_BIN:-target/debug/prism}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ARGS=(render cornell --width 48 --height 36 --spp 4 --passes 3 --seed 7 --quiet)

run() { echo "+ $*"; timeout 300 "$@"; }
run "$BIN" "${ARGS[@]}" --engine serial --out "$OUT/serial.png" --exr "$OUT/serial.exr"
run "$BIN" "${ARGS[@]}" --engine threads --threads 2 --out "$OUT/threads.png" --exr "$OUT/threads.exr"
run $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --engine mpi --out "$OUT/mpi.png" --exr "$OUT/mpi.exr"
run $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --engine hybrid --threads 2 --out "$OUT/hybrid.png" --exr "$OUT/hybrid.exr"
run $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --engine mpi --schedule static --out "$OUT/static.png" --exr "$OUT/static.exr"
run $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --engine mpi --render-thread --out "$OUT/own.png" --exr "$OUT/own.exr"
for e in threads mpi hybrid static own; do
  cmp "$OUT/serial.png" "$OUT/$e.png"
  cmp "$OUT/serial.exr" "$OUT/$e.exr"
done
echo "byte-identical PNG and EXR from serial, threads, mpi, hybrid, static and mpi with render threads"

# `prism info` under mpirun: the root reports the whole job, once.
info=$(timeout 120 $MPIRUN -n 3 "$BIN" info)
for want in "mpi: yes" "ranks: 3" "nodes: 1" "ranks per node: 3" "threads per rank: 1" \
            "huge pages for scenes of 2 MiB or more:" "engine auto: mpi"; do
  if ! grep -qF -- "$want" <<<"$info"; then echo "FAIL: prism info under mpirun -n 3 lacks '$want':"; echo "$info"; exit 1; fi
done
if [ "$(grep -c '^prism ' <<<"$info")" -ne 1 ] || [ "$(grep -c 'built or cached:' <<<"$info")" -ne 1 ]; then
  echo "FAIL: prism info under mpirun -n 3 reported more than once:"; echo "$info"; exit 1
fi
echo "ok: prism info under mpirun -n 3"

# A scene shared by two ranks through node-shared memory: the run's statistics say how large its
# geometry is and how much of it the root holds in huge pages (0 where /dev/shm gives none).
run $MPIRUN -n 2 "$BIN" render crates/tracer/data/bunny.ply --engine mpi --width 16 --height 16 \
  --spp 1 --passes 1 --quiet --out "$OUT/bunny.png" --stats-json "$OUT/bunny.json"
if ! grep -Eq '"geometry_bytes": [1-9][0-9]{6},' "$OUT/bunny.json" ||
   ! grep -Eq '"geometry_huge_page_bytes": [0-9]+' "$OUT/bunny.json"; then
  echo "FAIL: no geometry size or huge-page count in the statistics:"; cat "$OUT/bunny.json"; exit 1
fi
echo "ok: $(grep -E '"geometry' "$OUT/bunny.json" | tr -d '\n ')"

# Bad input: one clear message, non-zero status.
expect_fail() {
  local want=$1; shift
  set +e; msg=$(timeout 120 "$@" 2>&1); code=$?; set -e
  if [ "$code" -eq 0 ]; then echo "FAIL: '$*' succeeded"; exit 1; fi
  if ! grep -qi -- "$want" <<<"$msg"; then echo "FAIL: '$*' said: $msg (wanted '$want')"; exit 1; fi
  echo "ok: '$*' failed with: $(head -n 1 <<<"$msg")"
}
expect_fail "width" "$BIN" render --width 0 --out "$OUT/x.png"
expect_fail "missing.toml" "$BIN" render missing.toml --out "$OUT/x.png"
expect_fail "render-thread" "$BIN" render --engine threads --render-thread --out "$OUT/x.png"
expect_fail "one render thread" "$BIN" render --engine hybrid --threads 2 --render-thread --out "$OUT/x.png"
printf '[camera]\nposition = [0, 0, 1]\nbogus = 3\n' > "$OUT/bad.toml"
expect_fail "bogus" "$BIN" render "$OUT/bad.toml" --out "$OUT/x.png"
# A launcher's rank variable left over in a lone process (no size given, so no rank 0 exists
# to speak): the process says what is wrong rather than exiting silently.
expect_fail "error" env PMI_RANK=1 "$BIN" render --width 0 --out "$OUT/x.png"
expect_fail "error" env PMI_RANK=1 "$BIN" render --bogus
# An srun step that this MPI cannot see: refused (not N lone copies of the whole job).
expect_fail "MPI sees a world of 1 process" env SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=0 "$BIN" info
# A rank that fails must end the job with a non-zero status, not hang.
expect_fail "rank 1" $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --engine mpi --out "$OUT/x.png" --fail-on-rank 1

# In a job of several ranks, an error every rank holds is printed once (by rank 0, before MPI
# ends, so the launcher cannot cut it off), never once per rank or interleaved.
expect_once() {
  local want=$1; shift
  set +e; msg=$(timeout 120 "$@" 2>&1); code=$?; set -e
  if [ "$code" -eq 0 ]; then echo "FAIL: '$*' succeeded"; exit 1; fi
  lines=$(grep -c "prism: error" <<<"$msg" || true)
  if [ "$lines" -ne 1 ] || ! grep -q -- "$want" <<<"$msg"; then
    echo "FAIL: '$*' printed $lines error lines (wanted one with '$want'):"; echo "$msg"; exit 1
  fi
  echo "ok: '$*' said once: $(grep "prism: error" <<<"$msg")"
}
# A benchmark of one thread refuses to run as N copies, and says so once.
expect_once "run it without mpirun" $MPIRUN -n 2 "$BIN" bench trace --mesh crates/tracer/tests/data/cube.obj
for attempt in 1 2 3; do
  expect_once "--width must be at least 1" $MPIRUN -n 3 "$BIN" render --width 0 --out "$OUT/x.png"
  expect_once "process 2" $MPIRUN -n 3 "$BIN" "${ARGS[@]}" --engine mpi --out "$OUT/x.png" --fail-on-rank 2
  expect_once "process 0" $MPIRUN -n 2 "$BIN" "${ARGS[@]}" --engine hybrid --threads 2 --out "$OUT/x.png" --fail-on-rank 0
done
# What only the root checks (it alone writes) is the job's answer: said once, as a lone process
# says it, and the job ends on every rank without MPI_Abort.
for out in /sys/x.png "$OUT/no/such/dir/x.png"; do
  expect_once "prism: error: --out $out: " $MPIRUN -n 3 "$BIN" render --width 8 --height 8 --out "$out"
  if grep -q "MPI_ABORT\|ORTE_ERROR_LOG" <<<"$msg"; then
    echo "FAIL: a refused --out $out went through MPI_Abort:"; echo "$msg"; exit 1
  fi
done
# A command line that does not parse (each rank gets the same one) is answered by rank 0 alone.
set +e; msg=$(timeout 120 $MPIRUN -n 3 "$BIN" render --bogus --time-limit 58 2>&1); code=$?; set -e
[ "$code" -ne 0 ] || { echo "FAIL: an unknown option was accepted"; exit 1; }
if [ "$(grep -c "unexpected argument '--bogus'" <<<"$msg")" -ne 1 ]; then
  echo "FAIL: a bad command line under mpirun -n 3 was not answered once:"; echo "$msg"; exit 1
fi
echo "ok: a bad command line under mpirun -n 3 answered once"
# Ranks launched with different command lines (MPMD): one rank's bad argument, or another
# command, would leave the others waiting in a collective; every rank stops at the start and
# rank 0 names the rank once.
GOOD=(render --width 8 --height 8 --spp 1 --passes 1 --quiet --out "$OUT/x.png")
expect_once "error on rank 1: --width must be at least 1" \
  $MPIRUN -n 1 "$BIN" "${GOOD[@]}" : -n 2 "$BIN" render --width 0 --out "$OUT/y.png"
expect_once "error on rank 2: unexpected argument '--widthx'" \
  $MPIRUN -n 2 "$BIN" "${GOOD[@]}" : -n 1 "$BIN" render --widthx 3
expect_once "different command lines: rank 0 \`render .*\`, rank 1 \`info\`" \
  $MPIRUN -n 1 "$BIN" "${GOOD[@]}" : -n 1 "$BIN" info
expect_once "rank 1 \`render .* --passes 3\`" $MPIRUN -n 1 "$BIN" "${GOOD[@]}" : -n 1 "$BIN" "${GOOD[@]}" --passes 3
expect_once "rank 1 was asked for the help or the version" $MPIRUN -n 1 "$BIN" info : -n 1 "$BIN" --help
# The help asked for by every rank: printed once, status 0.
set +e; msg=$(timeout 120 $MPIRUN -n 2 "$BIN" --version 2>&1); code=$?; set -e
if [ "$code" -ne 0 ] || [ "$(grep -c '^prism [0-9]' <<<"$msg")" -ne 1 ]; then
  echo "FAIL: mpirun -n 2 prism --version (status $code):"; echo "$msg"; exit 1
fi
echo "render suite passed"
