#!/usr/bin/env bash
# The examples that are not mpitest_* programs, run as their users would (rsmpi's habit: every
# example also runs as a multi-process test): compare_engines in one process and under mpirun,
# balance_probe with the same checksum on every layout, and the tracer's cornell_box writing
# its four images. Needs $EXDIR (examples built with --features prism/mpi) and $MPIRUN.
set -euo pipefail
: "${EXDIR:?}" "${MPIRUN:=mpirun --oversubscribe}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The crate-level examples of comm, tasking and engines (each lib.rs shows its file, and
# `cargo test --doc` runs it in one process): under mpirun with 1-4 processes, as users will.
for ex in comm_crate_doc tasking_crate_doc engines_crate_doc; do
  for n in 1 2 3 4; do
    timeout 120 $MPIRUN -n "$n" "$EXDIR/$ex" >"$WORK/doc.out" 2>&1 || fail "$ex with $n processes: $(cat "$WORK/doc.out")"
  done
done
echo "ok: the crate-level examples of comm, tasking and engines with 1-4 processes"

# A single-process engine in a job of several processes: the job's rank 0 warns once, naming
# the way out; alone, or with local() (mpitest_engines' reference), nothing is said.
warning='prism-engines: warning: SerialEngine runs every task in this process, which a launcher started as one of'
for n in 1 3; do
  timeout 300 $MPIRUN -n "$n" "$EXDIR/mpitest_engines" >"$WORK/me$n.out" 2>&1 || fail "mpitest_engines with $n processes: $(cat "$WORK/me$n.out")"
done
[ "$(grep -o "$warning" "$WORK/me1.out" | wc -l)" -eq 0 ] || fail "a warning in one process: $(cat "$WORK/me1.out")"
[ "$(grep -o "$warning 3" "$WORK/me3.out" | wc -l)" -eq 1 ] && [ "$(grep -o 'prism-engines: warning' "$WORK/me3.out" | wc -l)" -eq 1 ] &&
  grep -q 'SerialEngine::local()' "$WORK/me3.out" || fail "not one warning with 3 processes: $(cat "$WORK/me3.out")"
echo "ok: a single-process engine in a job of 3 warns once; alone or local(), it does not"

# compare_engines: one round; its table names every engine it compared.
timeout 300 "$EXDIR/compare_engines" 1 >"$WORK/ce1.out" || fail "compare_engines in one process"
grep -q '^| threads(2) dynamic' "$WORK/ce1.out" || fail "compare_engines: no threads row: $(cat "$WORK/ce1.out")"
for n in 2 3; do
  timeout 300 $MPIRUN -n "$n" "$EXDIR/compare_engines" 1 >"$WORK/ce$n.out" || fail "compare_engines with $n processes"
  grep -q '^| mpi dynamic' "$WORK/ce$n.out" || fail "compare_engines -n $n: no mpi row: $(cat "$WORK/ce$n.out")"
done
echo "ok: compare_engines with 1, 2 and 3 processes"

# balance_probe: the same checksum whatever the layout (the work is per task, not per worker).
probe() { "$@" --tasks 96 --scale 2 --repeat 1 | sed -n 's/.* check \([0-9]*\)$/\1/p'; }
ref=$(probe timeout 120 "$EXDIR/balance_probe" --threads 1)
[ -n "$ref" ] || fail "balance_probe printed no checksum"
for layout in "1 2" "2 1" "3 1" "2 2"; do
  set -- $layout
  got=$(probe timeout 120 $MPIRUN -n "$1" "$EXDIR/balance_probe" --threads "$2")
  [ "$got" = "$ref" ] || fail "balance_probe $1 process(es) x $2 thread(s): checksum '$got', one thread '$ref'"
done
echo "ok: balance_probe checksum $ref on 1x1, 1x2, 2x1, 3x1 and 2x2"

# cornell_box: the tracer alone (rayon) writes PNG, EXR and the error images.
timeout 300 "$EXDIR/cornell_box" --size 32 --spp 2 --passes 2 --out "$WORK/cb" >"$WORK/cb.out" \
  || fail "cornell_box: $(cat "$WORK/cb.out")"
for f in cb.png cb.exr cb_error.png cb_error.exr; do
  [ -s "$WORK/$f" ] || fail "cornell_box did not write $f"
done
echo "ok: cornell_box wrote its four images"
