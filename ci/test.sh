#!/usr/bin/env bash
# prism's whole test run: installs what a bare Debian machine lacks, then checks formatting and
# lints, runs the unit and integration tests with and without MPI, and runs the multi-process
# suites under a real mpirun with 1-4 ranks. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
step() { echo; echo "=== [$(( $(date +%s) - START ))s] $*"; }

# ---- 1. what the machine needs -------------------------------------------------------------
need=()
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
# rsmpi's bindgen needs libclang itself; libclang-cpp (which some images carry without it)
# does not do.
has_libclang() {
  local d
  for d in /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu; do
    ls "$d"/libclang.so* "$d"/libclang-[0-9]*.so* >/dev/null 2>&1 && return 0
  done
  return 1
}
has_libclang || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
  step "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Open MPI as root, more ranks than cores, and no noisy probing of absent fabrics.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe
export OMPI_MCA_btl="self,vader" OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_mpi_yield_when_idle=1
export CARGO_TERM_COLOR=never
export MPIRUN="mpirun --oversubscribe"

# ---- 2. formatting, lints, unit tests, both builds -----------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "layering: each crate pulls in only the prism crates its layer allows"
# crate, then the prism crates it must not pull in (docs/architecture.md has the table).
while read -r crate forbidden; do
  deps=$(cargo tree -p "$crate" -e normal --all-features --prefix none) \
    || { echo "FAIL: cargo tree -p $crate"; exit 1; }
  if grep -E "^prism(-($forbidden))? " <<<"$deps"; then
    echo "FAIL: $crate depends on a prism crate outside its layer"; exit 1
  fi
done <<'LAYERS'
prism-comm tasking|engines|tracer
prism-tasking engines|tracer
prism-engines tracer
prism-tracer comm|tasking|engines
LAYERS

step "cargo doc: every intra-doc link resolves"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

for feat in "" "--features prism/mpi"; do
  step "cargo clippy --workspace --all-targets $feat -D warnings"
  cargo clippy --workspace --all-targets $feat -- -D warnings
  step "cargo test --workspace $feat"
  cargo test --workspace --no-fail-fast $feat
done

# ---- 3. multi-process suites under a real mpirun ------------------------------------------
# Every example named mpitest_* in any crate is a multi-process test program: it checks its
# results on every rank and exits non-zero on a mismatch. Each runs with 1, 2, 3 and 4 ranks.
step "building the prism command and the multi-process test programs (--features prism/mpi)"
cargo build --workspace --bins --examples --features prism/mpi

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
EXDIR="$TARGET_DIR/debug/examples"
export EXDIR
export PRISM_BIN="$TARGET_DIR/debug/prism"
failed=0
for prog in $(ls "$EXDIR" | grep -E '^mpitest_[a-z0-9_]+$' | sort); do
  for n in 1 2 3 4; do
    step "mpirun -n $n $prog"
    if ! timeout 300 $MPIRUN -n "$n" "$EXDIR/$prog"; then
      echo "FAIL: $prog with $n ranks"; failed=1
    fi
  done
done

# Suites with their own launch patterns (signals, virtual nodes, bit-identical outputs).
for suite in ci/suites/*.sh; do
  [ -e "$suite" ] || continue
  step "suite $suite"
  if ! bash "$suite"; then echo "FAIL: $suite"; failed=1; fi
done

step "done"
if [ "$failed" -ne 0 ]; then echo "some multi-process suites failed"; exit 1; fi
echo "all suites passed"
