# pam_mfa: refuse to install a pam_mfa that knows an older store schema than the store has.
#
# Shared by the Debian preinst and the RPM pre-install scriptlet: scripts/package.sh fills
# in pam_mfa_known_schema below with pam_mfa::store::SCHEMA_VERSION of the build (which
# gen-docs writes out) and puts this text into both, so the number is written down nowhere
# by hand.
#
# Why: the store's schema is migrated forward only. A pam_mfa older than the store refuses
# it (every login that needs a code fails with PAM_AUTHINFO_UNAVAIL, and mfa refuses it
# too), so a downgrade below the store's schema would lock everyone out. Better to stop
# the installation, before any file changes, and say what to do.
#
# How the store's version is read: SQLite keeps PRAGMA user_version as a 4-byte big-endian
# integer at offset 60 of page 1. No program of the package is used (the installed one is
# the newer version, which may be broken, half-removed or of another architecture), nor
# sqlite3 (not a dependency). In WAL mode the newest page 1 may still be in
# devices.db-wal, not yet checkpointed into the main file (whose header is then stale,
# or missing altogether for a store that was never checkpointed). So the version taken is
# the highest one among the main file's header and every image of page 1 in the WAL.
# That can only err upwards: the schema is migrated forward only, so an older image holds
# a lower number, and only a migration that spilled page 1 into the WAL and was then
# rolled back could show a higher one; then the installation is refused although it
# would have worked, the safe side. A WAL whose header is not SQLite's is ignored, as
# SQLite ignores it. The file is only read, never opened with SQLite, so nothing in it
# changes (no checkpoint, no -shm).
#
# The stores checked are the default one and every `db=PATH` on a pam_mfa line in
# /etc/pam.d. POSIX sh, under `set -e` or not, with Essential tools only (coreutils,
# grep, sed): a preinst may rely on nothing else.

pam_mfa_known_schema=@SCHEMA_VERSION@

# The unsigned big-endian 32-bit integer at byte OFFSET of FILE (empty if beyond its end).
pam_mfa_u32() { # file offset
    set -- $(od -An -tu1 -j "$2" -N 4 "$1" 2>/dev/null)
    if [ $# -eq 4 ]; then
        echo $(((($1 * 256 + $2) * 256 + $3) * 256 + $4))
    fi
}

# The highest user_version of STORE's page 1, in the main file and in its WAL; empty when
# neither holds an SQLite page 1.
pam_mfa_store_schema() { # store
    best=
    if [ -s "$1" ] && [ "$(head -c 15 "$1" 2>/dev/null)" = "SQLite format 3" ]; then
        best=$(pam_mfa_u32 "$1" 60)
    fi
    wal=$1-wal
    if [ -s "$wal" ]; then
        magic=$(pam_mfa_u32 "$wal" 0)
        page_size=$(pam_mfa_u32 "$wal" 8)
        wal_size=$(wc -c <"$wal")
        # 0x377f0682 or 0x377f0683; page sizes are powers of two, 512 to 65536.
        if { [ "$magic" = 931071618 ] || [ "$magic" = 931071619 ]; } \
            && [ -n "$page_size" ] && [ "$page_size" -ge 512 ] && [ "$page_size" -le 65536 ]; then
            frame=32
            while [ $((frame + 24 + page_size)) -le "$wal_size" ]; do
                if [ "$(pam_mfa_u32 "$wal" "$frame")" = 1 ]; then
                    v=$(pam_mfa_u32 "$wal" $((frame + 24 + 60)))
                    if [ -n "$v" ] && { [ -z "$best" ] || [ "$v" -gt "$best" ]; }; then
                        best=$v
                    fi
                fi
                frame=$((frame + 24 + page_size))
            done
        fi
    fi
    echo "$best"
}

pam_mfa_check_stores() {
    stores="$DPKG_ROOT/var/lib/pam_mfa/devices.db"
    for db in $(grep -h -E '^[^#]*pam_mfa\.so' "$DPKG_ROOT"/etc/pam.d/* 2>/dev/null \
        | tr ' \t' '\n\n' | sed -n 's/^db=\(\/.*\)$/\1/p' | sort -u); do
        stores="$stores $DPKG_ROOT$db"
    done
    for store in $stores; do
        found=$(pam_mfa_store_schema "$store")
        if [ -n "$found" ] && [ "$found" -gt "$pam_mfa_known_schema" ]; then
            cat >&2 <<EOF
pam_mfa: refusing to install this version over the device store $store:
pam_mfa: the store has schema version $found, and this version of pam_mfa knows schema
pam_mfa: versions up to $pam_mfa_known_schema only (a newer pam_mfa migrated the store). Installed, it
pam_mfa: would refuse the store, and with it every login that asks for a code.
pam_mfa: To install this version, first restore the copy of the store saved before that
pam_mfa: upgrade: with no login running, copy it over $store
pam_mfa: and delete $store-wal and $store-shm.
pam_mfa: Otherwise keep (or install) the newer version. The store has not been changed.
EOF
            exit 1
        fi
    done
}

pam_mfa_check_stores
