#!/bin/sh
# The login benchmark of issue 7: pam_mfa against pam_google_authenticator and pam_oath,
# one real login at a time through libpam (bench/src/main.rs; docs/performance.md).
#
#   sudo ./scripts/bench.sh              the full run: installs what it needs, builds in
#                                        release mode, prints the table
#   sudo ./scripts/bench.sh --mfa-users 100,1000 --other-users 100
#                                        any login-bench option (login-bench --help)
#   sudo ./scripts/bench.sh --smoke      the smoke check scripts/test.sh runs: the debug
#                                        build, 20 users, a few seconds
#   sudo ./scripts/bench.sh --backend fleet [--smoke]
#                                        pam_mfa with its accounts in the fleet's PostgreSQL
#                                        database (issue 19): a cluster on this machine, two
#                                        hosts (docs/performance.md, "The fleet on PostgreSQL")
#
# Needs root: the store must be root's, and pam_google_authenticator checks owners.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "installs packages and makes the benchmark's root-owned stores" "$@"
apt_install $BUILD_PACKAGES oathtool libpam-wrapper libnss-wrapper \
    libpam-google-authenticator libpam-oath
case " $* " in
*" --fleet "* | *" --backend fleet "*) apt_install postgresql postgresql-client openssl ;;
esac
ensure_cargo

case " $* " in
*" --smoke "*)
    cargo build --locked -p pam_mfa_module -p mfad -p pam_mfa_bench -p pam_sqlite_floor
    exec target/debug/login-bench "$@"
    ;;
esac
cargo build --release --locked -p pam_mfa_module -p mfad -p pam_mfa_bench -p pam_sqlite_floor
exec target/release/login-bench "$@"
