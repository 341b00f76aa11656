#!/bin/sh
# Builds pam_mfa from this checkout and installs it: the PAM module into the system's
# module directory, `mfa` into /usr/local/bin, and the store directory /var/lib/pam_mfa.
# It does not change any PAM configuration: see README.md for enabling the module.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "writes to the PAM module directory"
apt_install $BUILD_PACKAGES
ensure_cargo

cargo build --release --locked -p pam_mfa -p pam_mfa_keys -p enroll-cli

# The directory libpam loads modules from by name is where pam_unix.so lives.
unix_so=$(find /usr/lib /lib /usr/lib64 /lib64 -name pam_unix.so -path '*/security/*' 2>/dev/null | head -n1)
[ -n "$unix_so" ] || die "cannot find the PAM module directory (no pam_unix.so)"
moddir=$(dirname "$unix_so")

install -m 0644 -o root -g root target/release/libpam_mfa.so "$moddir/pam_mfa.so"
# The security-key half of the module, which pam_mfa.so loads from its own directory only
# for a login with a security key (README.md, "Performance").
install -m 0644 -o root -g root target/release/libpam_mfa_keys.so "$moddir/libpam_mfa_keys.so"
# setuid root, as passwd is: users register their own devices in the root-only store.
install -m 4755 -o root -g root target/release/mfa /usr/local/bin/mfa
install -d -m 0700 -o root -g root /var/lib/pam_mfa
if [ -d /etc/tmpfiles.d ]; then
    install -m 0644 packaging/tmpfiles.d/pam_mfa.conf /etc/tmpfiles.d/pam_mfa.conf
fi

echo
echo "Installed $moddir/pam_mfa.so (with libpam_mfa_keys.so) and /usr/local/bin/mfa."
echo "Register a device:   mfa enroll totp phone"
echo "Then enable the module in /etc/pam.d (see README.md, 'Module arguments')."
