# Shared by the scripts: be root, find (or install) cargo, install Debian packages that
# are missing; where install.sh puts things, which uninstall.sh removes. Sourced, not run.

die() {
    echo "$0: $*" >&2
    exit 1
}

# require_root WHY "$@": the scripts need root (WHY says what for, following "it"). In a
# root shell they just run; a user with sudo gets the script run again through sudo (with
# the same arguments; give environment variables after sudo, e.g. `sudo FUZZ_JOBS=4
# ./scripts/fuzz.sh`), so the README's commands work as written for both. Called after
# the script's `cd` to the checkout.
require_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    why=$1
    shift
    if command -v sudo >/dev/null 2>&1; then
        echo "$0: needs root (it $why): running it again with sudo" >&2
        exec sudo -- sh "$PWD/scripts/$(basename "$0")" "$@"
    fi
    die "run as root: it $why (and there is no sudo here)"
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

# Where install.sh starts mfad without systemd, and what it keeps of that process.
MFAD_SOCKET=/run/pam_mfa/mfad.sock
MFAD_PIDFILE=/run/pam_mfa/mfad.pid
MFAD_LOG=/var/log/pam_mfa-mfad.log

# The directory libpam loads modules from by name: where pam_unix.so lives.
pam_module_dir() {
    unix_so=$(find /usr/lib /lib /usr/lib64 /lib64 -name pam_unix.so -path '*/security/*' 2>/dev/null | head -n1)
    [ -n "$unix_so" ] || die "cannot find the PAM module directory (no pam_unix.so)"
    dirname "$unix_so"
}

# Whether process $1 runs (exists and has not ended: an ended one its parent has not
# reaped yet is a zombie, state Z).
process_runs() {
    [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# When process $1 started (clock ticks after boot, /proc/PID/stat's 22nd field; the
# fields after the name in parentheses, which could hold spaces, counted from the 3rd).
process_start() {
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20
}

# Records the mfad install.sh started: its pid and start time, so that a later run never
# stops another process that got the same pid (a container restarted with /run kept).
record_started_mfad() {
    echo "$1 $(process_start "$1")" >"$MFAD_PIDFILE"
}

# Stops the mfad install.sh started without systemd (as MFAD_PIDFILE records it: still an
# mfad, started when it was; a pidfile of an earlier install.sh has no start time) and
# waits up to 5 s for it to end.
stop_started_mfad() {
    [ -f "$MFAD_PIDFILE" ] || return 0
    read -r old started <"$MFAD_PIDFILE" || :
    case $old in
    '' | *[!0-9]*) ;;
    *)
        if [ "$(cat "/proc/$old/comm" 2>/dev/null)" = mfad ] && process_runs "$old" \
            && { [ -z "${started:-}" ] || [ "$started" = "$(process_start "$old")" ]; }; then
            kill "$old"
            i=0
            while process_runs "$old" && [ $i -lt 50 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            process_runs "$old" && die "mfad (process $old) did not stop within 5 seconds"
        fi
        ;;
    esac
    rm -f "$MFAD_PIDFILE"
}
