#!/bin/sh
# Installs what the tests need and runs all of them: formatting, lints, unit tests and
# the end-to-end tests that drive the real pam_mfa.so through libpam under pam_wrapper.
# Needs root: the tests create and remove test users, and the store must be root-owned.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "installs packages and creates test users" "$@"
apt_install $BUILD_PACKAGES passwd oathtool pamtester libpam-wrapper faketime zbar-tools \
    libmagickcore-6.q16-6-extra librsvg2-common \
    openssh-server openssh-client sudo util-linux mount libpam-runtime valgrind openssl \
    systemd python3-paramiko postgresql
ensure_cargo

cargo fmt --all --check
# The library's layers: nothing under pam_mfa/src/store/ names a module above it.
python3 scripts/check-layers.py
cargo clippy --workspace --all-targets --locked -- -D warnings
# The end-to-end tests load target/debug/libpam_mfa_module.so and run target/debug/mfa, which
# `cargo test` alone does not rebuild.
cargo build --workspace --locked
cargo test --workspace --locked
# One behaviour, two stores (issue 19): the end-to-end suites once more with every account
# but root in a PostgreSQL fleet database of each test's own (tests/src/backend.rs).
PAM_MFA_TEST_BACKEND=fleet cargo test --locked -p pam_mfa_tests --test pam_login \
    --test mfa_cli --test hardware_tokens --test recovery --test user_mfa --test real_logins \
    --test enroll_at_login --test remembered
scripts/fuzz.sh 60
scripts/bench.sh --smoke  # the login benchmark (issue 7), once at 20 users: a smoke check of a few seconds
scripts/bench.sh --backend fleet --smoke  # the same through a fleet host's mfad to PostgreSQL (issue 19)
# Mutation testing (issue 22) of the last commit's changes to the code that decides a login
# or guards the store: at most 5 minutes; docs/testing.md, "Mutation testing".
scripts/mutants.sh
# The .deb and .rpm (issue 9): built, lintian, rpm checks, and installed, used, removed
# and purged in a fresh debootstrap chroot (the machine's own configuration untouched).
scripts/package-test.sh
