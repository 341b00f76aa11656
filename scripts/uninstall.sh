#!/bin/sh
# Removes what install.sh installed: stops mfad (and disables its units where systemd
# runs), and removes the PAM module, mfa, mfad and their units. The store
# (/var/lib/pam_mfa: every user's devices and secrets, recovery codes, the policy and the
# audit trail) is kept, as a package's remove keeps it, so that installing again finds
# every registration where it was; --purge deletes it too, with mfad's log.
#
# It refuses while a PAM file still names pam_mfa.so: libpam fails a stack line whose
# module is missing, so with `required` nobody could log in through that service any more.
# A pam_mfa installed from the .deb is removed with apt instead.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh

usage="usage: $0 [--purge]   (--purge: delete the store /var/lib/pam_mfa and mfad's log too)"
purge=false
for arg in "$@"; do
    case $arg in
    --purge) purge=true ;;
    -h | --help)
        echo "$usage"
        exit 0
        ;;
    *) die "unknown argument '$arg'
$usage" ;;
    esac
done
require_root "removes files from system directories" "$@"

if command -v dpkg-query >/dev/null 2>&1 && owner=$(dpkg-query -S /usr/sbin/mfad 2>/dev/null); then
    package=${owner%%:*}
    die "/usr/sbin/mfad belongs to the package $package: remove it with \`apt-get remove $package\` (\`apt-get purge $package\` deletes the store too)"
fi
if command -v rpm >/dev/null 2>&1 && package=$(rpm -qf --qf '%{NAME}' /usr/sbin/mfad 2>/dev/null); then
    die "/usr/sbin/mfad belongs to the package $package: remove it with \`dnf remove $package\`"
fi

# Every PAM file with a line (not a comment) naming the module.
in_use=$(grep -l -E '^[^#]*pam_mfa\.so' /etc/pam.d/* /etc/pam.conf 2>/dev/null | tr '\n' ' ' || :)
if [ -n "$in_use" ]; then
    die "pam_mfa.so is still in the PAM configuration of: ${in_use% }
Remove its lines there first (a line whose module is missing fails every login through
that service: with 'required', nobody could log in), then run this again. Nothing was removed."
fi
# A pam-auth-update profile (docs/deployment.md has source installs copy them) writes
# pam_mfa.so back into common-auth at the next pam-auth-update, module or no module.
profiles=$(grep -l -E '^[^#]*pam_mfa\.so' /usr/share/pam-configs/* 2>/dev/null | tr '\n' ' ' || :)
if [ -n "$profiles" ]; then
    die "pam-auth-update profiles still add pam_mfa.so: ${profiles% }
Disable them (pam-auth-update --disable NAME, NAME being the file's name) and delete them
first, or the next pam-auth-update puts pam_mfa.so back without its module. Nothing was removed."
fi

moddir=$(pam_module_dir)
removed=""
remove() {
    for f in "$@"; do
        if [ -e "$f" ] || [ -L "$f" ]; then
            rm -f "$f"
            removed="$removed $f"
        fi
    done
}

# The daemon first stops, then its files go: no login is left asking a daemon that is
# being removed under it (and none can, with pam_mfa.so in no PAM file).
if [ -e /etc/systemd/system/mfad.socket ] || [ -e /etc/systemd/system/mfad.service ]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now mfad.socket mfad.service \
            || die "systemctl could not stop mfad; nothing was removed"
    elif command -v systemctl >/dev/null 2>&1; then
        # systemd is not running (a chroot, an image being built): the enablement's links
        # still go, or they would point at units that are gone.
        systemctl disable mfad.socket mfad.service \
            || die "systemctl could not disable mfad's units; nothing was removed"
    fi
fi
stop_started_mfad
remove /etc/systemd/system/mfad.socket /etc/systemd/system/mfad.service
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
remove "$moddir/pam_mfa.so" "$moddir/libpam_mfa_keys.so" /usr/local/bin/mfa /usr/sbin/mfad \
    /etc/tmpfiles.d/pam_mfa.conf
# The socket's directory (mfad removes its socket when it stops; one left by a crash too).
if [ -d /run/pam_mfa ]; then
    rm -rf /run/pam_mfa
fi

if [ -n "$removed" ]; then
    echo "Removed:$removed"
else
    echo "Nothing that install.sh installs is installed here."
fi
# An mfad that was not started by install.sh or systemd (a supervisor's) still runs the
# removed binary until it is stopped: say so rather than kill what someone else supervises.
for pid in $(pgrep -x mfad 2>/dev/null || :); do
    case $(readlink "/proc/$pid/exe" 2>/dev/null) in
    "/usr/sbin/mfad (deleted)")
        echo "mfad still runs as process $pid (started by a supervisor?): stop it there." ;;
    esac
done
if $purge; then
    if [ -d /var/lib/pam_mfa ] || [ -e "$MFAD_LOG" ]; then
        rm -rf /var/lib/pam_mfa "$MFAD_LOG"
        echo "Deleted the store /var/lib/pam_mfa and $MFAD_LOG."
    fi
elif [ -d /var/lib/pam_mfa ]; then
    echo "Kept the store /var/lib/pam_mfa (every user's devices, recovery codes and audit trail):"
    echo "installing again finds it; \`$0 --purge\` deletes it."
fi
if [ -d /etc/pam_mfa ]; then
    echo "Kept /etc/pam_mfa (your configuration); delete it yourself if you no longer need it."
fi
