#!/bin/sh
# Tests the packages that scripts/package.sh builds (issue 9), without touching this
# machine's own configuration:
#
# 1. lintian on the .deb: no error and no warning that packaging/debian's overrides do
#    not explain;
# 2. the .rpm's file list (`rpm -qlp --dump`): files, owners and modes; and it installs
#    into an empty scratch root with `rpm --root ... --nodeps -i`;
# 3. the .deb in a fresh Debian root made with debootstrap (a chroot, so nothing on this
#    machine changes): owners and modes (mfa not setuid), mfad.socket enabled, `mfa
#    --help`; with the packaged /usr/sbin/mfad started by this script (no systemd in a
#    chroot), a TOTP enrollment and logins through pamtester with the installed module
#    path; `pam-auth-update --enable mfa`
#    makes common-auth ask for the password and then the code (right password and code
#    in, wrong code out, wrong password out, no device with the profile's nullok in); a
#    reinstallation keeps the store and the enabled profile; the preinst refuses to
#    install over a store whose schema is newer than the package knows (one above, in
#    the WAL only), says why, and leaves the store and the installed package as they
#    were; remove takes the profile out of common-auth and keeps the store; purge
#    removes the store and mfad.socket's enablement;
# 3b. the upgrade from the previous version (the last one without mfad, built once per
#    machine from git, see PACKAGE_TEST_PREVIOUS_REF below): a host whose PAM line says
#    db=/var/lib/pam_mfa/devices.db and whose setuid mfa has a dpkg-statoverride; after
#    the upgrade mfa has no setuid bit and no override, the store is kept and migrated
#    (the devices registered before, the code used before still refused), a login
#    through that line succeeds and syslog says db= is obsolete, and a line naming
#    another store is refused with a pointer to socket=;
# 4. the .rpm in that root, with its scriptlets: its %pre refuses a store of a newer
#    schema likewise; a login through /usr/lib64/security/pam_mfa.so, and an erase that
#    keeps the store.
# In both, a login with a security key loads libpam_mfa_keys.so from next to the module
# (the USB transport, in a release build, finds no key and says so).
#
# Codes come from oathtool on this machine. Set PACKAGE_TEST_NO_BUILD=1 to test the
# packages already in dist/, PACKAGE_TEST_PREVIOUS_DEB=FILE to upgrade from that .deb
# instead of building the previous version. Needs root (debootstrap, chroot), and the network to a
# Debian mirror ($DEBIAN_MIRROR, default deb.debian.org). Downloads are kept in
# $PAM_MFA_PKG_CACHE (default /var/cache/pam_mfa-packaging) for the next run.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "installs packages and makes a Debian root with debootstrap" "$@"
apt_install lintian rpm debootstrap oathtool sqlite3 python3
begin=$(date +%s)

if [ -z "${PACKAGE_TEST_NO_BUILD:-}" ]; then
    scripts/package.sh
fi
deb=$(ls dist/libpam-mfa_*.deb)
rpmfile=$(ls dist/pam_mfa-*.rpm)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
module=/usr/lib/$triplet/security/pam_mfa.so

step() { echo "== package-test: $*"; }
fail() {
    echo "package-test: FAILED: $*" >&2
    exit 1
}

work=$(mktemp -d /var/tmp/pam_mfa-package-test.XXXXXX)
root=$work/root
# The mfad (and the syslog listener) this script started in the root, if any.
mfad_pid=
syslog_pid=
cleanup() {
    stop_mfad
    stop_syslog
    if mountpoint -q "$root/proc" 2>/dev/null && ! umount "$root/proc"; then
        echo "package-test: cannot unmount $root/proc; leaving $work" >&2
        return
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The previous version of the package, to upgrade from (3b): the last one before mfad
# (issue 17), whose module opened the store itself and whose mfa was setuid. Built from
# git with that version's own scripts/package.sh, once per machine (kept in the cache).
previous_ref=${PACKAGE_TEST_PREVIOUS_REF:-8e6afcb558e78c3d5e6894053f1ff313fd761ed2}
pkg_cache=${PAM_MFA_PKG_CACHE:-/var/cache/pam_mfa-packaging}
previous_deb=${PACKAGE_TEST_PREVIOUS_DEB:-}
if [ -z "$previous_deb" ]; then
    kept=$pkg_cache/previous/$previous_ref
    previous_deb=$(ls "$kept"/libpam-mfa_*.deb 2>/dev/null | head -n1 || :)
    if [ -z "$previous_deb" ]; then
        step "build the previous version ($previous_ref) into $kept, once per machine"
        git cat-file -e "$previous_ref^{commit}" 2>/dev/null \
            || fail "commit $previous_ref is not in this clone: fetch it, or set PACKAGE_TEST_PREVIOUS_DEB"
        mkdir -p "$work/previous"
        git archive "$previous_ref" | tar -x -C "$work/previous"
        (cd "$work/previous" && scripts/package.sh) >"$work/previous.log" 2>&1 \
            || { tail -n 30 "$work/previous.log"; fail "building the previous version"; }
        mkdir -p "$kept"
        cp "$work/previous"/dist/libpam-mfa_*.deb "$kept/"
        rm -rf "$work/previous"
        previous_deb=$(ls "$kept"/libpam-mfa_*.deb | head -n1)
    fi
fi
[ -f "$previous_deb" ] || fail "no previous .deb: $previous_deb"

# ---------------------------------------------------------------------------------------
step "lintian $deb"
lintian --fail-on error,warning --display-info "$deb" || fail "lintian"

# ---------------------------------------------------------------------------------------
step "rpm -qlp --dump $rpmfile"
# path, mode (octal, with the file type), owner, group
rpm -qlp --dump "$rpmfile" | awk '{ print $1, $5, $6, $7 }' >"$work/rpm-dump"
cat "$work/rpm-dump"
for expected in \
    "/usr/lib64/security/pam_mfa.so 0100755 root root" \
    "/usr/lib64/security/libpam_mfa_keys.so 0100755 root root" \
    "/usr/bin/mfa 0100755 root root" \
    "/usr/sbin/mfad 0100755 root root" \
    "/usr/lib/systemd/system/mfad.socket 0100644 root root" \
    "/usr/lib/systemd/system/mfad.service 0100644 root root" \
    "/usr/lib/tmpfiles.d/pam_mfa.conf 0100644 root root" \
    "/var/lib/pam_mfa 040700 root root" \
    "/usr/share/man/man8/pam_mfa.8.gz 0100644 root root" \
    "/usr/share/man/man8/mfad.8.gz 0100644 root root" \
    "/usr/share/man/man1/mfa.1.gz 0100644 root root" \
    "/usr/share/man/man1/mfa-enroll-totp.1.gz 0100644 root root" \
    "/usr/share/bash-completion/completions/mfa 0100644 root root" \
    "/usr/share/zsh/site-functions/_mfa 0100644 root root" \
    "/usr/share/fish/vendor_completions.d/mfa.fish 0100644 root root" \
    "/usr/share/licenses/pam_mfa/copyright 0100644 root root"; do
    grep -qxF "$expected" "$work/rpm-dump" || fail "the rpm lacks: $expected"
done
awk '$3 != "root" || $4 != "root"' "$work/rpm-dump" | grep . && fail "files not owned by root"
rpm -qp --requires "$rpmfile" | grep -q '^libpam\.so\.0()' || fail "the rpm does not require libpam"
# libudev is loaded only when a security key is looked for (dlopen, not linked): no
# automatic scan sees it, so both packages must name it.
rpm -qp --requires "$rpmfile" | grep -q '^libudev\.so\.1()' || fail "the rpm does not require libudev"
dpkg-deb -f "$deb" Depends | grep -q 'libudev1' || fail "the deb does not depend on libudev1"

step "rpm --root (empty scratch root) --nodeps -i"
scratch=$work/scratch
mkdir "$scratch"
# No /bin/sh in an empty root, so no scriptlets here; step 4 runs them.
rpm --root "$scratch" --dbpath /var/lib/rpm --initdb
rpm --root "$scratch" --dbpath /var/lib/rpm --nodeps --noscripts -i "$rpmfile" \
    >"$work/rpm.log" 2>&1 || { cat "$work/rpm.log"; fail "rpm -i into the scratch root"; }
[ "$(stat -c '%a %U %G' "$scratch/usr/lib64/security/pam_mfa.so")" = "755 root root" ] \
    || fail "rpm: module mode"
[ "$(stat -c '%a %U %G' "$scratch/usr/lib64/security/libpam_mfa_keys.so")" = "755 root root" ] \
    || fail "rpm: security-key library mode"
[ "$(stat -c '%a %U %G' "$scratch/usr/bin/mfa")" = "755 root root" ] || fail "rpm: mfa mode"
[ "$(stat -c '%a %U %G' "$scratch/usr/sbin/mfad")" = "755 root root" ] || fail "rpm: mfad mode"
[ "$(stat -c '%a %U %G' "$scratch/var/lib/pam_mfa")" = "700 root root" ] || fail "rpm: store dir"
rpm --root "$scratch" --dbpath /var/lib/rpm -V --nodeps pam_mfa || fail "rpm -V"

# ---------------------------------------------------------------------------------------
step "debootstrap a fresh Debian root in $root"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
# debootstrap keeps the .debs it downloaded here for the next run (as package.sh keeps
# cargo-deb).
cache=$pkg_cache/debootstrap
mkdir -p "$cache"
t0=$(date +%s)
debootstrap --variant=minbase --cache-dir="$cache" \
    "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log"; fail "debootstrap"; }
echo "debootstrap: $(($(date +%s) - t0)) s"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
# mode owner group of a path in the root
mode_of() { stat -c '%a %U %G' "$root$1"; }
expect_mode() { # path "mode owner group"
    [ "$(mode_of "$1")" = "$2" ] || fail "$1 is $(mode_of "$1" 2>&1), expected $2"
}
gone() { # path...
    for p in "$@"; do
        [ ! -e "$root$p" ] && [ ! -L "$root$p" ] || fail "$p is still there"
    done
}

# mfad, the packaged /usr/sbin/mfad, started in the root as its postinst asks where no
# systemd runs (a chroot has none), with the defaults: the store /var/lib/pam_mfa and the
# socket /run/pam_mfa/mfad.sock, both inside the root. Its output goes to mfad.log.
socket=$root/run/pam_mfa/mfad.sock
start_mfad() {
    [ -z "$mfad_pid" ] || fail "mfad is already running"
    rm -f "$socket"
    chroot "$root" env -i PATH=/usr/sbin:/usr/bin /usr/sbin/mfad >>"$work/mfad.log" 2>&1 &
    mfad_pid=$!
    i=0
    while [ ! -S "$socket" ]; do
        if [ $i -ge 100 ] || ! kill -0 "$mfad_pid" 2>/dev/null; then
            tail -n 20 "$work/mfad.log"
            fail "mfad did not start"
        fi
        sleep 0.1
        i=$((i + 1))
    done
}
stop_mfad() {
    if [ -n "$mfad_pid" ]; then
        kill "$mfad_pid" 2>/dev/null || :
        wait "$mfad_pid" 2>/dev/null || :
        mfad_pid=
    fi
}
# A syslog daemon for the root: what the module and mfad log through /dev/log, one
# message a line, into $work/syslog.
start_syslog() {
    python3 -c '
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).rstrip(b"\n") + b"\n")
' "$root/dev/log" "$work/syslog" &
    syslog_pid=$!
    i=0
    while [ ! -S "$root/dev/log" ]; do
        [ $i -lt 50 ] || fail "the syslog listener did not start"
        sleep 0.1
        i=$((i + 1))
    done
}
stop_syslog() {
    if [ -n "$syslog_pid" ]; then
        kill "$syslog_pid" 2>/dev/null || :
        wait "$syslog_pid" 2>/dev/null || :
        syslog_pid=
        rm -f "$root/dev/log"
    fi
}

cp /etc/resolv.conf "$root/etc/resolv.conf"
auth_before=$(cat "$root/etc/pam.d/common-auth")

step "install the .deb with its dependencies (apt in the root)"
cp "$deb" "$root/tmp/"
in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" pamtester \
    >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log"; fail "apt-get install"; }

step "files, owners and modes"
expect_mode "$module" "644 root root"
expect_mode "$(dirname "$module")/libpam_mfa_keys.so" "644 root root"
expect_mode /usr/bin/mfa "755 root root"
expect_mode /usr/sbin/mfad "755 root root"
expect_mode /var/lib/pam_mfa "700 root root"
expect_mode /usr/share/pam-configs/mfa "644 root root"
expect_mode /usr/lib/tmpfiles.d/pam_mfa.conf "644 root root"
for f in /usr/share/man/man8/pam_mfa.8.gz /usr/share/man/man8/mfad.8.gz /usr/share/man/man1/mfa.1.gz \
    /usr/lib/systemd/system/mfad.socket /usr/lib/systemd/system/mfad.service \
    /usr/share/bash-completion/completions/mfa /usr/share/zsh/vendor-completions/_mfa \
    /usr/share/fish/vendor_completions.d/mfa.fish /usr/share/doc/libpam-mfa/copyright \
    /usr/share/doc/libpam-mfa/changelog.Debian.gz; do
    expect_mode "$f" "644 root root"
done
grep -q '^Default: no$' "$root/usr/share/pam-configs/mfa" || fail "the profile is not Default: no"
# Registered (pam-auth-update has seen the profile), yet nothing enabled.
grep -qx mfa "$root/var/lib/pam/seen" || fail "pam-auth-update has not registered the profile"
[ "$(cat "$root/etc/pam.d/common-auth")" = "$auth_before" ] \
    || fail "installing changed common-auth"
grep -rq pam_mfa "$root/etc/pam.d" && fail "installing changed /etc/pam.d"
# mfad.socket is enabled (deb-systemd-helper works without a running systemd), and the
# postinst said that nothing started mfad here.
# (deb-systemd-helper links to /lib/systemd/system/mfad.socket on a merged-/usr system,
# where /lib is /usr/lib.)
wants=/etc/systemd/system/sockets.target.wants/mfad.socket
enabled() {
    case $(readlink "$root$wants") in
    /lib/systemd/system/mfad.socket | /usr/lib/systemd/system/mfad.socket) ;;
    *) fail "mfad.socket is not enabled: $wants -> $(readlink "$root$wants")" ;;
    esac
}
enabled
grep -q "mfad was not started" "$work/apt.log" || fail "the postinst did not say that mfad is not running"

step "mfa --help, as root and as a user"
in_root mfa --help | grep -q "Register and manage" || fail "mfa --help"
in_root useradd -m alice
in_root useradd -m bob
in_root useradd -m carol
for u in alice bob carol; do
    echo "$u:pw-$u-right" | in_root chpasswd
done
in_root su -s /bin/sh alice -c 'mfa --help' >/dev/null || fail "mfa --help as alice"
in_root mfad --help | grep -q -- "--socket" || fail "mfad --help"

step "start /usr/sbin/mfad in the root"
start_mfad

# Registers a TOTP device NAME for USER with two consecutive codes, the previous and the
# current one, and prints the next one, which the user's first login may use.
enroll() { # user name
    json=$(in_root mfa --user "$1" enroll totp "$2" --begin --json) || fail "enroll begin $1"
    secret=$(printf '%s' "$json" | sed -n 's/.*"secret": *"\([A-Z2-7]*\)".*/\1/p')
    [ -n "$secret" ] || fail "no secret in: $json"
    set -- "$1" "$2" $(oathtool --totp -b -w 2 -N "now - 30 seconds" "$secret")
    in_root mfa --user "$1" enroll finish "$2" "$3" "$4" >/dev/null || fail "enroll finish $1"
    echo "$5"
}
# A code that is none of the device's codes around now.
wrong() { # right-code
    if [ "$1" = 000000 ]; then echo 111111; else echo 000000; fi
}
# pamtester SERVICE USER, answering the prompts with the lines given.
login() { # service user answer...
    service=$1 user=$2
    shift 2
    printf '%s\n' "$@" | in_root pamtester "$service" "$user" authenticate >"$work/pamtester.log" 2>&1
}
ok() { # description, then login's arguments
    what=$1
    shift
    login "$@" || { cat "$work/pamtester.log"; fail "refused: $what"; }
    echo "ok: $what"
}
refused() {
    what=$1
    shift
    if login "$@"; then
        cat "$work/pamtester.log"
        fail "let in: $what"
    fi
    echo "ok (refused): $what"
}

# A security key for USER, put straight into the store: these machines have no USB key to
# register one with. The key login that follows loads libpam_mfa_keys.so from next to
# the module the service names, and its USB transport finds no key: the user is told so.
# Without the library the module would refuse without a word (and log why).
key_login_reaches_library() { # service user
    sqlite3 "$root/var/lib/pam_mfa/devices.db" "INSERT INTO devices (user, name, kind, state,
        created_at, credential_id, cose_public_key, sign_count, rp_id, uv_required)
        VALUES ('$2', 'yubikey', 'fido2', 'active', unixepoch(), randomblob(32),
                CAST(x'a5010203262001215820' || randomblob(32) || x'225820' || randomblob(32) AS BLOB), 0,
                'pam://package-test', 0)" || fail "cannot add a security key for $2"
    refused "$2 (a security key, none plugged in)" "$1" "$2"
    grep -q "No security key found" "$work/pamtester.log" \
        || { cat "$work/pamtester.log"; fail "$1: the key login did not reach libpam_mfa_keys.so"; }
}

step "TOTP enrollment and a login through $module"
alice_code=$(enroll alice phone)
in_root mfa --user alice list | grep -q phone || fail "mfa list"
expect_mode /var/lib/pam_mfa/devices.db "600 root root"
printf 'auth required %s\naccount required pam_permit.so\n' "$module" >"$root/etc/pam.d/mfa-module"
refused "alice, wrong code" mfa-module alice "$(wrong "$alice_code")"
ok "alice, right code" mfa-module alice "$alice_code"
refused "alice, the same code again" mfa-module alice "$alice_code"
in_root useradd -m dave
key_login_reaches_library mfa-module dave

step "pam-auth-update --enable mfa"
in_root pam-auth-update --enable mfa
grep -v '^#' "$root/etc/pam.d/common-auth" | grep . 
grep -qE '^auth[[:space:]]+\[success=ok ignore=ignore default=die\][[:space:]]+pam_mfa\.so nullok$' \
    "$root/etc/pam.d/common-auth" || fail "common-auth lacks the pam_mfa line"
# pam_mfa comes after the password: after pam_unix, pam_deny and pam_permit.
awk '/^auth/ && /pam_unix\.so/ {u=NR} /^auth/ && /pam_permit\.so/ {p=NR} /^auth/ && /pam_mfa\.so/ {m=NR}
     END {exit !(u && p && m && u < p && p < m)}' "$root/etc/pam.d/common-auth" \
    || fail "pam_mfa is not after pam_unix in common-auth"
printf '@include common-auth\naccount required pam_permit.so\n' >"$root/etc/pam.d/mfa-common"
bob_code=$(enroll bob phone)
refused "common-auth: wrong password (no code asked)" mfa-common bob pw-wrong "$bob_code"
refused "common-auth: right password, wrong code" mfa-common bob pw-bob-right "$(wrong "$bob_code")"
ok "common-auth: right password, right code" mfa-common bob pw-bob-right "$bob_code"
ok "common-auth: carol has no device (the profile's nullok)" mfa-common carol pw-carol-right
refused "common-auth: carol, wrong password" mfa-common carol pw-wrong

step "reinstall (dpkg -i over the installed version): store and profile kept"
in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
grep -q pam_mfa "$root/etc/pam.d/common-auth" || fail "the enabled profile was lost"
in_root mfa --user bob list | grep -q phone || fail "bob's device was lost"

step "downgrade below the store's schema: the preinst refuses, nothing changes (issue 16)"
# mfad holds the store open and could fold the WAL into the main file: stopped here.
stop_mfad
store=$root/var/lib/pam_mfa/devices.db
refusal="pam_mfa: refusing to install this version over the device store /var/lib/pam_mfa/devices.db"
# The installed mfa migrated the store to the schema this build knows; one above it is a
# store a newer version migrated. The new version goes into the WAL only, as a store in
# use has it until a checkpoint: the main file's header still says the old version, so
# the preinst must read the WAL to see it.
known=$(sqlite3 "$store" 'PRAGMA user_version')
above=$((known + 1))
sqlite3 "$store" '.dbconfig no_ckpt_on_close on' "PRAGMA user_version = $above" >/dev/null
[ -s "$store-wal" ] || fail "the test's new schema version is not in the WAL"
header=$(od -An -tu1 -j 60 -N 4 "$store" | tr -s ' ' | sed 's/^ //')
[ "$header" != "0 0 0 $above" ] || fail "the test's new schema version reached the main file"
sums() { (cd "$root/var/lib/pam_mfa" && sha256sum devices.db devices.db-wal); }
before=$(sums)
if in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/dpkg.log" 2>&1; then
    cat "$work/dpkg.log"
    fail "dpkg -i installed over a store of schema $above"
fi
cat "$work/dpkg.log"
grep -qF "$refusal" "$work/dpkg.log" || fail "the preinst did not say why"
grep -qF "the store has schema version $above, and this version of pam_mfa knows schema" \
    "$work/dpkg.log" || fail "the preinst did not name the versions"
grep -qF "restore the copy of the store saved before" "$work/dpkg.log" || fail "the preinst did not say what to do"
[ "$(sums)" = "$before" ] || fail "the refused installation changed the store"
[ "$(in_root dpkg-query -W -f='${db:Status-Abbrev}' libpam-mfa)" = "ii " ] \
    || fail "the refused installation left libpam-mfa $(in_root dpkg-query -W -f='${db:Status-Abbrev}' libpam-mfa)"
expect_mode /usr/bin/mfa "755 root root"
# Back to the version the installed package knows, for the steps below.
sqlite3 "$store" "PRAGMA user_version = $known" >/dev/null
start_mfad
in_root mfa --user bob list | grep -q phone || fail "bob's device after the refused downgrade"

step "the deployment guide's strict profile (no nullok) in place of the package's"
# docs/deployment.md, snippet pam-auth-update-strict: the administrator's own profile.
in_root sh -e -c "sed -e '/^Name:/s/\$/, required for everyone/' -e 's/ nullok\$//' \
    /usr/share/pam-configs/mfa > /usr/share/pam-configs/mfa-strict
pam-auth-update --disable mfa --enable mfa-strict"
grep -qE '^auth[[:space:]]+\[success=ok ignore=ignore default=die\][[:space:]]+pam_mfa\.so[[:space:]]*$' \
    "$root/etc/pam.d/common-auth" || fail "common-auth lacks the strict profile's pam_mfa line"
refused "common-auth (strict): carol has no device" mfa-common carol pw-carol-right
in_root useradd -m frank
echo "frank:pw-frank-right" | in_root chpasswd
frank_code=$(enroll frank phone)
ok "common-auth (strict): frank, right password, right code" mfa-common frank pw-frank-right "$frank_code"

step "remove: profiles out of common-auth, module, mfa and mfad gone, store kept"
stop_mfad
in_root apt-get remove -y -q libpam-mfa >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "remove"; }
grep -q pam_mfa "$root/etc/pam.d/common-auth" && fail "common-auth still loads pam_mfa"
grep -q "disabling the pam-auth-update profile mfa-strict" "$work/apt.log" \
    || { cat "$work/apt.log"; fail "remove did not say it disabled mfa-strict"; }
# The administrator's profile file is theirs: kept, and disabled. Taken away here so that
# the steps below start from a machine without it.
[ -f "$root/usr/share/pam-configs/mfa-strict" ] || fail "remove deleted the administrator's profile"
rm "$root/usr/share/pam-configs/mfa-strict"
grep -q "still used in:.*/etc/pam.d/mfa-module" "$work/apt.log" \
    || { cat "$work/apt.log"; fail "remove did not warn about the hand-written /etc/pam.d/mfa-module"; }
gone "$module" "$(dirname "$module")/libpam_mfa_keys.so" /usr/bin/mfa /usr/sbin/mfad /usr/share/pam-configs/mfa \
    /usr/lib/tmpfiles.d/pam_mfa.conf /usr/lib/systemd/system/mfad.socket /usr/lib/systemd/system/mfad.service
expect_mode /var/lib/pam_mfa "700 root root"
expect_mode /var/lib/pam_mfa/devices.db "600 root root"
ok "common-auth after remove: password only" mfa-common bob pw-bob-right
refused "common-auth after remove: wrong password" mfa-common bob pw-wrong

step "purge: the store goes too"
in_root dpkg --purge libpam-mfa >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "purge"; }
gone /var/lib/pam_mfa
in_root dpkg-query -W -f='${db:Status-Status}\n' libpam-mfa 2>/dev/null | grep -qv '^not-installed$' \
    && fail "dpkg still knows libpam-mfa"
[ "$(cat "$root/etc/pam.d/common-auth")" = "$auth_before" ] \
    || fail "common-auth differs from before the installation"
left=$(cd "$root" && find usr etc var -name '*pam_mfa*' -o -name 'mfa' -o -name '_mfa' -o -name 'mfa.fish' \
    -o -name 'libpam-mfa*' -o -name '*mfad*' | grep -v -e '^etc/pam.d/mfa-' -e '^tmp/' || :)
[ -z "$left" ] || fail "left behind after purge: $left"

# ---------------------------------------------------------------------------------------
step "upgrade from the previous version ($(basename "$previous_deb")): db= in PAM lines, a setuid mfa"
cp "$previous_deb" "$root/tmp/previous.deb"
in_root apt-get install -y -q --no-install-recommends /tmp/previous.deb >"$work/apt.log" 2>&1 \
    || { tail -n 30 "$work/apt.log"; fail "installing the previous version"; }
[ -u "$root/usr/bin/mfa" ] || fail "$(basename "$previous_deb") has no setuid mfa: not the version before mfad"
gone /usr/sbin/mfad
# An administrator's override that keeps the setuid bit (the upgrade must drop it).
in_root dpkg-statoverride --update --add root root 4755 /usr/bin/mfa
in_root useradd -m erin
echo "erin:pw-erin-right" | in_root chpasswd
erin_code=$(enroll erin phone)
enroll erin tablet >/dev/null
erin_tablet_secret=$secret
printf 'auth required pam_mfa.so db=/var/lib/pam_mfa/devices.db\naccount required pam_permit.so\n' \
    >"$root/etc/pam.d/mfa-upgrade"
printf 'auth required pam_mfa.so db=/var/lib/pam_mfa/other.db\naccount required pam_permit.so\n' \
    >"$root/etc/pam.d/mfa-otherdb"
ok "previous version: erin, right code, db= line" mfa-upgrade erin "$erin_code"
schema_before=$(sqlite3 "$store" 'PRAGMA user_version')

in_root dpkg -i "/tmp/$(basename "$deb")" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "the upgrade"; }
cat "$work/dpkg.log"
expect_mode /usr/bin/mfa "755 root root"
expect_mode /usr/sbin/mfad "755 root root"
[ -z "$(in_root dpkg-statoverride --list /usr/bin/mfa)" ] || fail "the setuid statoverride of mfa is still there"
grep -q "removed the dpkg-statoverride" "$work/dpkg.log" || fail "the upgrade did not say it removed the override"
grep -q "db= is obsolete" "$work/dpkg.log" || fail "the upgrade did not point out the obsolete db= lines"
enabled
expect_mode /var/lib/pam_mfa/devices.db "600 root root"

start_syslog
start_mfad
in_root mfa --user erin list >"$work/list.log" || { cat "$work/list.log"; fail "mfa list after the upgrade"; }
grep -q phone "$work/list.log" && grep -q tablet "$work/list.log" || { cat "$work/list.log"; fail "erin's devices were lost"; }
# The new version's schema, as its preinst knows it (package.sh baked it in there).
known=$(sed -n 's/^pam_mfa_known_schema=\([0-9]*\)$/\1/p' "$root/var/lib/dpkg/info/libpam-mfa.preinst")
[ -n "$known" ] || fail "no pam_mfa_known_schema in the installed preinst"
schema_after=$(sqlite3 "$store" 'PRAGMA user_version')
[ "$schema_after" = "$known" ] || fail "the store has schema $schema_after after the upgrade (was $schema_before), expected $known"
echo "store schema: $schema_before before the upgrade, $schema_after after"
refused "after the upgrade: the code used before it" mfa-upgrade erin "$erin_code"
ok "after the upgrade: erin, right code, the db= line naming the store mfad serves" \
    mfa-upgrade erin "$(oathtool --totp -b -N "now + 30 seconds" "$erin_tablet_secret")"
grep -i 'pam_mfa' "$work/syslog" | grep -i 'obsolete' | grep -q 'db=' \
    || { cat "$work/syslog"; fail "syslog does not say that db= is obsolete"; }
refused "after the upgrade: db= naming another store" mfa-otherdb erin "$(wrong "$erin_code")"
cat "$work/pamtester.log" "$work/syslog" | grep -q 'socket=' \
    || { cat "$work/syslog"; fail "the refusal of another db= does not point to socket="; }
grep -i 'pam_mfa' "$work/syslog" || :

step "mfad down: a login fails closed (PAM_AUTHINFO_UNAVAIL), and works again once it is back"
stop_mfad
refused "mfad not running" mfa-upgrade erin "$(oathtool --totp -b -N "now + 30 seconds" "$erin_tablet_secret")"
# libpam's words for PAM_AUTHINFO_UNAVAIL (a replay or a wrong code would be PAM_AUTH_ERR's).
grep -qi "Authentication service cannot retrieve authentication info" "$work/pamtester.log" \
    || { cat "$work/pamtester.log"; fail "not PAM_AUTHINFO_UNAVAIL with mfad down"; }
start_mfad
ok "mfad back: erin, with a device registered now" mfa-upgrade erin "$(enroll erin laptop)"
stop_mfad
stop_syslog
in_root dpkg --purge libpam-mfa >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "purge after the upgrade"; }
rm -f "$root/etc/pam.d/mfa-upgrade" "$root/etc/pam.d/mfa-otherdb" "$root/tmp/previous.deb"
gone /var/lib/pam_mfa /usr/bin/mfa "$wants"

# ---------------------------------------------------------------------------------------
step "the .rpm in the same root, with its scriptlets"
rpm --root "$root" --dbpath /var/lib/rpm --initdb
# Its %pre refuses a store of a newer schema (here in the main file, checkpointed).
install -d -m 0700 "$root/var/lib/pam_mfa"
sqlite3 "$store" "PRAGMA journal_mode = WAL; CREATE TABLE t (x); PRAGMA user_version = $above" >/dev/null
before=$(sha256sum "$store")
if rpm --root "$root" --dbpath /var/lib/rpm --nodeps -i "$rpmfile" >"$work/rpm.log" 2>&1; then
    cat "$work/rpm.log"
    fail "rpm -i installed over a store of schema $above"
fi
cat "$work/rpm.log"
grep -qF "$refusal" "$work/rpm.log" || fail "the rpm's %pre did not say why"
[ "$(sha256sum "$store")" = "$before" ] || fail "the refused rpm installation changed the store"
rpm --root "$root" --dbpath /var/lib/rpm -q pam_mfa >/dev/null && fail "rpm installed pam_mfa although %pre refused"
gone /usr/bin/mfa /usr/lib64/security/pam_mfa.so
rm -rf "$root/var/lib/pam_mfa"
rpm --root "$root" --dbpath /var/lib/rpm --nodeps -i "$rpmfile" \
    >"$work/rpm.log" 2>&1 || { cat "$work/rpm.log"; fail "rpm -i"; }
grep -i -e warning -e error "$work/rpm.log" | grep -v -e 'should not be used directly' -e 'assuming you know' \
    && fail "rpm -i: $(cat "$work/rpm.log")"
expect_mode /usr/lib64/security/pam_mfa.so "755 root root"
expect_mode /usr/lib64/security/libpam_mfa_keys.so "755 root root"
expect_mode /usr/bin/mfa "755 root root"
expect_mode /usr/sbin/mfad "755 root root"
expect_mode /var/lib/pam_mfa "700 root root"
grep -q "mfad was not started" "$work/rpm.log" || fail "the rpm's %post did not say that mfad is not running"
start_mfad
printf 'auth required /usr/lib64/security/pam_mfa.so\naccount required pam_permit.so\n' \
    >"$root/etc/pam.d/mfa-rpm"
carol_code=$(enroll carol phone)
refused "rpm module: carol, wrong code" mfa-rpm carol "$(wrong "$carol_code")"
ok "rpm module: carol, right code" mfa-rpm carol "$carol_code"
key_login_reaches_library mfa-rpm dave
stop_mfad
rpm --root "$root" --dbpath /var/lib/rpm -e pam_mfa >"$work/rpm.log" 2>&1 \
    || { cat "$work/rpm.log"; fail "rpm -e"; }
cat "$work/rpm.log"
grep -q "still used in:.*/etc/pam.d/mfa-rpm" "$work/rpm.log" || fail "rpm -e did not warn about /etc/pam.d/mfa-rpm"
gone /usr/lib64/security/pam_mfa.so /usr/lib64/security/libpam_mfa_keys.so /usr/bin/mfa /usr/sbin/mfad
expect_mode /var/lib/pam_mfa/devices.db "600 root root"

echo "package-test: all checks passed in $(($(date +%s) - begin)) s"
