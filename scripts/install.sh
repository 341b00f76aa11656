#!/bin/sh
# Builds pam_mfa from this checkout and installs it: the daemon mfad into /usr/sbin with
# its systemd units, the PAM module into the system's module directory, `mfa` into
# /usr/local/bin, and the store directory /var/lib/pam_mfa; then starts mfad (through
# systemd where systemd runs, else by itself in the background).
# It does not change any PAM configuration: see README.md for enabling the module.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "installs packages and writes to the PAM module directory" "$@"
apt_install $BUILD_PACKAGES
ensure_cargo

cargo build --release --locked -p pam_mfa_module -p pam_mfa_keys -p enroll-cli -p mfad

moddir=$(pam_module_dir)

install -d -m 0700 -o root -g root /var/lib/pam_mfa
if [ -d /etc/tmpfiles.d ]; then
    install -m 0644 packaging/tmpfiles.d/pam_mfa.conf /etc/tmpfiles.d/pam_mfa.conf
fi

# The daemon first, so that it serves before the new module (which only asks it) is in
# place: a host already using pam_mfa keeps logging in throughout.
install -m 0755 -o root -g root target/release/mfad /usr/sbin/mfad
socket=$MFAD_SOCKET
log=$MFAD_LOG
if [ -d /run/systemd/system ]; then
    # systemd runs: socket activation. Local units live in /etc/systemd/system.
    install -m 0644 packaging/systemd/mfad.socket packaging/systemd/mfad.service /etc/systemd/system/
    systemctl daemon-reload
    systemctl enable --now mfad.socket
    # An mfad started by an earlier install serves the new binary from now on.
    systemctl try-restart mfad.service
    started="mfad.socket is enabled and listening on $socket (systemd starts mfad.service on the first login)"
else
    # No systemd (a container): start mfad here, in its own session, its standard
    # output and errors (startup and fatal messages; it logs to syslog too) in $log.
    # An mfad this script started before is stopped first, so the new binary serves.
    stop_started_mfad
    install -d -m 0755 -o root -g root /run/pam_mfa
    (umask 077 && touch "$log")
    setsid nohup /usr/sbin/mfad >>"$log" 2>&1 </dev/null &
    pid=$!
    i=0
    while [ ! -S "$socket" ] && process_runs "$pid" && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ ! -S "$socket" ] || ! process_runs "$pid"; then
        tail -n 5 "$log" >&2
        die "mfad did not start (see $log)"
    fi
    record_started_mfad "$pid"
    started="mfad runs as process $pid (no systemd here), listening on $socket, logging to $log.
It is not supervised: it will not come back after a crash or a reboot, and while it is
down every login through pam_mfa.so fails (PAM_AUTHINFO_UNAVAIL). Run /usr/sbin/mfad
(in the foreground, as root) under your supervisor instead: your container's init
(tini, s6, runit, supervisord) or its entrypoint."
fi

install -m 0644 -o root -g root target/release/libpam_mfa_module.so "$moddir/pam_mfa.so"
# The security-key half of the module, which pam_mfa.so loads from its own directory only
# for a login with a security key (docs/performance.md, "Security keys in a library of
# their own").
install -m 0644 -o root -g root target/release/libpam_mfa_keys.so "$moddir/libpam_mfa_keys.so"
# Not setuid (it was before mfad): mfad decides from the caller's uid what it may do.
# install sets the mode whole, so an mfa installed setuid before loses the bit here.
install -m 0755 -o root -g root target/release/mfa /usr/local/bin/mfa

echo
echo "Installed /usr/sbin/mfad, $moddir/pam_mfa.so (with libpam_mfa_keys.so) and /usr/local/bin/mfa."
echo "$started"
# db= named the store when the module opened it itself; it is obsolete now.
dbs=$(grep -l -E '^[^#]*pam_mfa\.so.*[[:space:]]db=' /etc/pam.d/* 2>/dev/null || :)
if [ -n "$dbs" ]; then
    # shellcheck disable=SC2086 # one line, the file names split by spaces
    echo "The pam_mfa argument db= is obsolete; remove it from:" $dbs
    echo "(db=/var/lib/pam_mfa/devices.db still works; any other db= refuses logins: use socket=.)"
fi
echo "Register a device:   mfa enroll totp phone"
echo "Then enable the module in /etc/pam.d (see README.md, 'Module arguments')."
