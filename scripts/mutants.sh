#!/bin/sh
# Mutation testing (issue 22) of the code that decides or records a login or guards the
# store: cargo-mutants changes one check at a time (`<` to `<=`, `&&` to `||`, a function
# body to `true`, ...) and runs the crate's own unit tests; a change no test notices
# ("missed") is a check nothing would notice going wrong.
#
#   ./scripts/mutants.sh           the mutants of the last commit's changes to those files
#                                  (what scripts/test.sh runs); skips with a message when
#                                  the commit touches none of them or there is no previous
#                                  commit (a shallow clone)
#   ./scripts/mutants.sh --full    every mutant of those files (about 3 hours on two
#                                  cores; docs/testing.md, "Mutation testing")
#
# Fails when a missed mutant is not in scripts/mutants-accepted.txt (equivalent or harmless
# ones, each with its reason). Entries are "FILE: MUTATION" as cargo-mutants prints them,
# without the line and column, so that edits elsewhere in a file do not break them.
#
# The mutants are tested in place (cargo-mutants puts every file back afterwards, and this
# script checks that it did), so they reuse the debug build already in target/; the files
# mutated must have no uncommitted changes. Settings (environment):
#   MUTANTS_TIME_LIMIT   seconds for the whole diff run (default 300): when it runs out
#                        the run stops, what was tested is still checked, and the script
#                        says how many mutants went untested (it does not fail for that)
#   MUTANTS_TIMEOUT      seconds for one mutant's tests (default 60)
#   MUTANTS_BASE         what the diff is taken against (default HEAD~1)
set -eu
cd "$(dirname "$0")/.."

# The files that decide or record a login or guard the store, each tested by its own
# crate's unit tests.
FILES="pam_mfa/src/otp.rs pam_mfa/src/hotp.rs pam_mfa/src/recovery.rs pam_mfa/src/code.rs
pam_mfa/src/lockout.rs pam_mfa/src/decision.rs pam_mfa/src/login.rs pam_mfa/src/policy.rs
pam_mfa/src/remembered.rs pam_mfa/src/store/safety.rs mfad/src/authorise.rs
pam_mfa/protocol/src/frame.rs pam_mfa/protocol/src/message.rs
pam_mfa/fido2/src/verify.rs pam_mfa/fido2/src/auth_data.rs"
ACCEPTED=scripts/mutants-accepted.txt
CARGO_MUTANTS_VERSION=27.1.0

. scripts/common.sh

full=false
case "${1:-}" in
"") ;;
--full) full=true ;;
*) die "usage: $0 [--full]" ;;
esac
limit="${MUTANTS_TIME_LIMIT:-300}"
timeout="${MUTANTS_TIMEOUT:-60}"
base="${MUTANTS_BASE:-HEAD~1}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! $full; then
    if ! git rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
        echo "mutants: skipped: no $base to compare with (a shallow clone or the first commit)"
        exit 0
    fi
    # shellcheck disable=SC2086
    git diff "$base" HEAD -- $FILES >"$work/diff"
    if [ ! -s "$work/diff" ]; then
        echo "mutants: skipped: the changes since $base touch none of the mutation-tested files"
        exit 0
    fi
fi

# shellcheck disable=SC2086
if ! git diff --quiet HEAD -- $FILES; then
    die "uncommitted changes in the mutation-tested files; commit or stash them first (the mutants are tested in place)"
fi

ensure_cargo
if [ -x "${HOME:-/root}/.cargo/bin/cargo-mutants" ]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
if ! cargo mutants --version 2>/dev/null | grep -q "$CARGO_MUTANTS_VERSION"; then
    echo "Installing cargo-mutants $CARGO_MUTANTS_VERSION (about 3 minutes on two cores)"
    cargo install --locked "cargo-mutants@$CARGO_MUTANTS_VERSION"
fi

set -- --in-place --no-shuffle --timeout "$timeout" --build-timeout 600 \
    --output "$work"
for f in $FILES; do
    set -- "$@" --file "$f"
done
if $full; then
    set -- "$@" --timeout-multiplier 3
else
    # The tests already passed in test.sh before this step: no unmutated baseline run.
    set -- "$@" --baseline skip --in-diff "$work/diff"
fi

started=$(date +%s)
status=0
if $full; then
    cargo mutants "$@" -- --lib || status=$?
else
    # SIGINT: cargo-mutants stops, puts the mutated file back and writes what it has.
    timeout -s INT -k 60 "$limit" cargo mutants "$@" -- --lib || status=$?
fi
elapsed=$(($(date +%s) - started))

# shellcheck disable=SC2086
if ! git diff --quiet HEAD -- $FILES; then
    # They were clean before the run, so HEAD is what they must be.
    # shellcheck disable=SC2086
    git checkout HEAD -- $FILES
    die "cargo-mutants left a mutated file behind (put back from HEAD)"
fi

out="$work/mutants.out"
if [ ! -d "$out" ]; then
    # Nothing to mutate in the changed lines (only comments or tests, say).
    [ "$status" -eq 0 ] && echo "mutants: no mutants in the changed lines" && exit 0
    die "cargo-mutants wrote no results (exit status $status)"
fi
case $status in
0 | 2 | 3) ;; # all caught / some missed / some timed out (a timeout counts as caught)
124 | 130) echo "mutants: time limit of $limit s reached" ;;
*) die "cargo-mutants failed (exit status $status); see its output above" ;;
esac

count() { if [ -f "$out/$1" ]; then wc -l <"$out/$1"; else echo 0; fi; }
echo "mutants: $(count caught.txt) caught, $(count missed.txt) missed," \
    "$(count timeout.txt) timed out, $(count unviable.txt) unviable in $elapsed s"
if [ -f "$out/mutants.json" ]; then
    # mutants.json lists every mutant found, written before any is tested.
    total=$(grep -c '"genre"' "$out/mutants.json" || true)
    tested=$(($(count caught.txt) + $(count missed.txt) + $(count timeout.txt) + $(count unviable.txt)))
    if [ -n "$total" ] && [ "$tested" -lt "$total" ]; then
        echo "mutants: $((total - tested)) of $total mutants not tested within the time limit"
    fi
fi

# "FILE:LINE:COLUMN: MUTATION" -> "FILE: MUTATION"
touch "$out/missed.txt"
sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /' "$out/missed.txt" | sort -u >"$work/missed"
grep -v -e '^#' -e '^[[:space:]]*$' "$ACCEPTED" | sort -u >"$work/accepted"
comm -23 "$work/missed" "$work/accepted" >"$work/unexpected"
if [ -s "$work/unexpected" ]; then
    echo "mutants: missed mutants that no test notices and $ACCEPTED does not accept:" >&2
    sed 's/^/    /' "$work/unexpected" >&2
    echo "Add a test that fails with each of them, or, if one is truly equivalent or" \
        "harmless, list it in $ACCEPTED and docs/testing.md with the reason." >&2
    exit 1
fi
echo "mutants: no missed mutant outside $ACCEPTED"
