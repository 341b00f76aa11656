#!/bin/sh
# Runs every fuzz target under fuzz/ (cargo-fuzz, libFuzzer, AddressSanitizer) for SECONDS
# each (default 60), FUZZ_JOBS targets at a time (default 2), starting from the committed
# seed corpus in fuzz/corpus/TARGET/ (which is never written to: new inputs go to a
# scratch directory), then prints how many inputs each target ran.
#
#   sudo ./scripts/fuzz.sh            # 60 s per target, two at a time (what test.sh runs)
#   sudo ./scripts/fuzz.sh 3600       # an hour per target
#   sudo FUZZ_JOBS=8 ./scripts/fuzz.sh 86400
#
# A crash, panic, failed assertion, leak or timeout fails the script; the input that caused
# it is left in fuzz/artifacts/TARGET/ (replay it with
# `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-…`).
#
# cargo-fuzz needs nightly compiler flags (-Z sanitizer, sanitizer coverage); this uses
# the stable toolchain with RUSTC_BOOTSTRAP=1, which unlocks them. Needs root: it installs
# packages, and the store_rows target makes root-owned stores (the store refuses others).
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "installs packages and makes root-owned stores" "$@"

secs="${1:-60}"
jobs="${FUZZ_JOBS:-2}"
case "$secs" in '' | *[!0-9]*) die "usage: $0 [SECONDS]" ;; esac
case "$jobs" in '' | *[!0-9]* | 0) die "FUZZ_JOBS must be a positive number" ;; esac

# libfuzzer-sys compiles libFuzzer itself, which is C++.
apt_install $BUILD_PACKAGES g++
ensure_cargo
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "Installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
targets=$(cargo fuzz list)
cargo fuzz build
# Honour CARGO_TARGET_DIR, where cargo fuzz build put the binaries if it is set.
bin_dir="${CARGO_TARGET_DIR:-target}/$(rustc -vV | sed -n 's/^host: //p')/release"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT TERM

# Runs one target in the background; its log is $scratch/TARGET.log.
start() {
    mkdir -p "$scratch/$1" "artifacts/$1"
    "$bin_dir/$1" "$scratch/$1" "corpus/$1" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="artifacts/$1/" >"$scratch/$1.log" 2>&1 &
}

failed=""
batch=""
running=0
finish_batch() {
    for t in $batch; do
        eval "pid=\$pid_$t"
        # shellcheck disable=SC2154
        if ! wait "$pid"; then
            failed="$failed $t"
            echo "fuzz target $t FAILED; the end of its log:" >&2
            tail -n 60 "$scratch/$t.log" >&2
        fi
    done
    batch=""
    running=0
}

echo "Fuzzing $(echo "$targets" | wc -w) targets for ${secs} s each, $jobs at a time"
for t in $targets; do
    start "$t"
    eval "pid_$t=\$!"
    batch="$batch $t"
    running=$((running + 1))
    [ "$running" -ge "$jobs" ] && finish_batch
done
finish_batch

echo
printf '%-14s %14s %12s\n' target execs "new inputs"
for t in $targets; do
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log" | tail -n 1)
    units=$(find "$scratch/$t" -type f | wc -l)
    printf '%-14s %14s %12s\n' "$t" "${execs:-?}" "$units"
done
[ -z "$failed" ] || die "fuzz targets failed:$failed"
