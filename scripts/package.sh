#!/bin/sh
# Builds the Debian package libpam-mfa (cargo-deb) and the RPM pam_mfa (rpmbuild, from
# packaging/rpm/pam_mfa.spec) into dist/. See docs/packaging.md.
#
# The release binaries are built once, stripped and staged in dist/stage/ together with
# the manual pages and completions that packaging/'s gen-docs writes from the code; both
# packages are made from those staged files (packaging/Cargo.toml and the spec list
# them). cargo-deb is installed, at a pinned version, into $PAM_MFA_PKG_CACHE/bin
# (default /var/cache/pam_mfa-packaging, outside the checkout so that a machine builds it
# once, not once per clone) the first time.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
require_root "installs packages and builds packages owned by root" "$@"
# dpkg-dev: dpkg-architecture and dpkg-shlibdeps (the .deb's library dependencies);
# binutils: strip; rpm: rpmbuild.
apt_install $BUILD_PACKAGES dpkg-dev binutils rpm
ensure_cargo

CARGO_DEB_VERSION=3.8.0
tools=${PAM_MFA_PKG_CACHE:-/var/cache/pam_mfa-packaging}
install_tool() { # crate version
    if ! "$tools/bin/$1" --version 2>/dev/null | grep -q " $2\$"; then
        echo "Installing $1 $2 into $tools"
        cargo install --quiet --locked --force --root "$tools" "$1" --version "$2"
    fi
}
install_tool cargo-deb "$CARGO_DEB_VERSION"
export PATH="$tools/bin:$PATH"

# The release build of just the module (crate pam_mfa_module), its security-key library,
# mfa, the daemon mfad and gen-docs: no test-only feature (soft-fido2) gets in, and
# gen-docs reuses the release build of the others.
cargo build --release --locked -p pam_mfa_module -p pam_mfa_keys -p enroll-cli -p mfad \
    -p pam_mfa-packaging

triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
stage=dist/stage
rm -rf "$stage"
mkdir -p "$stage"
target/release/gen-docs "$stage/gen" >/dev/null
install -D -m 0644 target/release/libpam_mfa_module.so "$stage/usr/lib/$triplet/security/pam_mfa.so"
# The security-key half of the module, which pam_mfa.so loads from its own directory only
# for a login with a security key (docs/performance.md, "Security keys in a library of
# their own").
install -D -m 0644 target/release/libpam_mfa_keys.so "$stage/usr/lib/$triplet/security/libpam_mfa_keys.so"
# mfa is not setuid: it asks mfad, which decides from the caller's uid what it may do.
install -D -m 0755 target/release/mfa "$stage/usr/bin/mfa"
install -D -m 0755 target/release/mfad "$stage/usr/sbin/mfad"
strip --strip-unneeded --remove-section=.comment "$stage/usr/lib/$triplet/security/pam_mfa.so" \
    "$stage/usr/lib/$triplet/security/libpam_mfa_keys.so" "$stage/usr/bin/mfa" "$stage/usr/sbin/mfad"
# The software FIDO2 authenticator of the tests must never ship; its compile_error!
# guards debug-less builds, and this guards what is actually packaged.
for f in "$stage/usr/lib/$triplet/security/pam_mfa.so" \
    "$stage/usr/lib/$triplet/security/libpam_mfa_keys.so" "$stage/usr/bin/mfa" "$stage/usr/sbin/mfad"; do
    if grep -q PAM_MFA_SOFT_FIDO2 "$f"; then
        die "$f contains the tests' software authenticator; build without the soft-fido2 feature"
    fi
done
mkdir -p "$stage/usr/share/man/man1" "$stage/usr/share/man/man8"
for page in "$stage"/gen/man/*.1; do
    gzip -9n -c "$page" >"$stage/usr/share/man/man1/$(basename "$page").gz"
done
for page in pam_mfa.8 mfad.8; do
    gzip -9n -c "$stage/gen/man/$page" >"$stage/usr/share/man/man8/$page.gz"
done
mv "$stage/gen/completions" "$stage/completions"

# The pre-install check that refuses a downgrade below the store's schema
# (packaging/store-schema-check.sh), with the schema version this build knows, as gen-docs
# read it from pam_mfa::store::SCHEMA_VERSION: the Debian preinst gets it in place of its
# marker line, the spec's %pre reads it from the stage. cargo-deb takes the maintainer
# scripts from $stage/debian (packaging/Cargo.toml).
schema=$(cat "$stage/gen/schema-version")
case $schema in
'' | *[!0-9]*) die "gen-docs wrote no schema version: '$schema'" ;;
esac
sed "s/@SCHEMA_VERSION@/$schema/g" packaging/store-schema-check.sh >"$stage/store-schema-check.sh"
mkdir -p "$stage/debian"
cp packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/debian/"
awk -v check="$stage/store-schema-check.sh" \
    '$0 == "@STORE_SCHEMA_CHECK@" { while ((getline l < check) > 0) print l; next } { print }' \
    packaging/debian/preinst.in >"$stage/debian/preinst"
grep -q '@' "$stage/debian/preinst" && die "a marker is left in the staged preinst"
chmod 0755 "$stage"/debian/*

rm -f dist/*.deb dist/*.rpm
cargo deb --locked -p pam_mfa-packaging --no-build --no-strip --output dist/
version=$(cargo pkgid --quiet -p pam_mfa-packaging | sed 's/.*[#@]//')
rpmbuild -bb --quiet \
    --define "_topdir $PWD/target/rpmbuild" --define "_rpmdir $PWD/dist" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "stage $PWD/$stage" --define "srcdir $PWD" --define "pkg_version $version" \
    packaging/rpm/pam_mfa.spec
rm -rf "$stage"

echo
ls -l dist/
