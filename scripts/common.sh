# Shared by install.sh and test.sh: be root, find (or install) cargo, install Debian
# packages that are missing. Sourced, not run.

die() {
    echo "$0: $*" >&2
    exit 1
}

# require_root WHY "$@": the scripts need root. In a root shell they just run; a user with
# sudo gets the script run again through sudo (with the same arguments; give environment
# variables after sudo, e.g. `sudo FUZZ_JOBS=4 ./scripts/fuzz.sh`), so the README's
# commands work as written for both. Called after the script's `cd` to the checkout.
require_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    why=$1
    shift
    if command -v sudo >/dev/null 2>&1; then
        echo "$0: needs root (it installs packages and $why): running it again with sudo" >&2
        exec sudo -- sh "$PWD/scripts/$(basename "$0")" "$@"
    fi
    die "run as root: it installs packages and $why (and there is no sudo here)"
}

# apt-get install only what is missing, refreshing the package lists once if needed.
apt_install() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "Installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y -q --no-install-recommends $missing; then
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
    fi
}

# cargo may live in root's or (under sudo) the invoking user's rustup installation;
# without either, install a minimal stable toolchain with rustup.
ensure_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    for home in "${HOME:-/root}" /root ${SUDO_USER:+$(getent passwd "$SUDO_USER" | cut -d: -f6)}; do
        if [ -x "$home/.cargo/bin/cargo" ]; then
            export PATH="$home/.cargo/bin:$PATH"
            [ -d "$home/.rustup" ] && export RUSTUP_HOME="$home/.rustup"
            return 0
        fi
    done
    echo "Installing the Rust toolchain with rustup"
    apt_install curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
        | sh -s -- -y --profile minimal --component rustfmt,clippy
    export PATH="${HOME:-/root}/.cargo/bin:$PATH"
}

# libssl-dev: the fleet client (pam_mfa/fleet) verifies the database's TLS with the system's OpenSSL.
BUILD_PACKAGES="gcc libc6-dev make pkg-config libpam0g-dev libudev-dev libssl-dev"
