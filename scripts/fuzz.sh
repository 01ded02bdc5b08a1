#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for N seconds each, one after the other, and prints
# one summary line per target (see docs/FUZZING.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 300 seconds, every target
#
# Works on the stable toolchain (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags);
# FUZZ_TOOLCHAIN=nightly uses `cargo +nightly` instead; FUZZ_NO_BUILD=1 runs the binaries
# already built. Each target runs as one libFuzzer process (one core) at low priority.
# Seeds are read from fuzz/corpus/<target> (committed); what the fuzzer learns goes to
# fuzz/corpus-grown/<target>, logs to fuzz/logs/<target>.log, crashes to
# fuzz/artifacts/<target>/ (all three ignored by git). Exits non-zero if a target failed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

seconds="${1:-300}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^logward-fuzz$')
fi

cargo_fuzz=(cargo fuzz)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
    cargo_fuzz=(cargo "+$FUZZ_TOOLCHAIN" fuzz)
else
    export RUSTC_BOOTSTRAP=1
fi
if ! "${cargo_fuzz[@]}" --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
mkdir -p logs
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
    echo "building the fuzz targets (fuzz/logs/build.log)" >&2
    nice -n 10 "${cargo_fuzz[@]}" build -a >logs/build.log 2>&1 || {
        echo "build failed, see fuzz/logs/build.log" >&2
        tail -20 logs/build.log >&2
        exit 2
    }
fi
# Run the built binaries directly: `cargo fuzz run` would rebuild first whenever a
# workspace file changed, between every two targets.
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=0
printf '%-16s %8s %12s %8s %8s %8s  %s\n' target seconds execs cov ft corpus result
for t in "${targets[@]}"; do
    mkdir -p "corpus-grown/$t" "artifacts/$t"
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    set +e
    nice -n 10 "$bin/$t" "corpus-grown/$t" "corpus/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "${dict[@]}" >"logs/$t.log" 2>&1
    status=$?
    set -e
    # The last status line libFuzzer printed: `#N  ... cov: C ft: F corp: K/...`.
    last="$(grep -aE '^#[0-9]+' "logs/$t.log" | tail -1 || true)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
    corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $status): $(ls -t "artifacts/$t" 2>/dev/null | head -1)"
        failed=1
    fi
    printf '%-16s %8s %12s %8s %8s %8s  %s\n' "$t" "$seconds" "${execs:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$result"
done
exit "$failed"
