#!/usr/bin/env bash
# The PostgreSQL server binaries (initdb, postgres) for the metastore database of `adx stack up`
# (ingestion/stack/postgres.py). Idempotent: does nothing when /usr/lib/postgresql/<version>/bin/initdb exists.
# Installs the distribution's `postgresql` package with apt-get (Debian, Ubuntu), through sudo unless root. The
# package also creates and starts a system cluster on port 5432; the stack does not use it and runs its own
# cluster under ADX_DATA_DIR/stack/postgres, on ADX_METASTORE_DB_PORT (15432).
set -euo pipefail

installed() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if installed; then
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        echo "PostgreSQL server binaries present: $(dirname "$initdb")"
    done
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-postgres.sh: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin, and no apt-get to" \
        "install them. Install the PostgreSQL server (14 or newer) with your system's package manager; the stack" \
        "also finds it through \`pg_config --bindir\` or \`initdb\` on the PATH." >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-postgres.sh: installing the postgresql package needs root, and sudo is not available." \
        "As root, run: apt-get update && apt-get install -y --no-install-recommends postgresql" >&2
    exit 1
fi

echo "Installing the postgresql package with apt-get (for the metastore database of \`adx stack up\`)"
if ! "${as_root[@]}" apt-get update \
    || ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; then
    echo "install-postgres.sh: apt-get could not install the postgresql package (see above)." >&2
    exit 1
fi

if ! installed; then
    echo "install-postgres.sh: the postgresql package is installed, but /usr/lib/postgresql/*/bin/initdb is" \
        "missing; check \`dpkg -L postgresql-common\` and the server package of your distribution." >&2
    exit 1
fi
for initdb in /usr/lib/postgresql/*/bin/initdb; do
    echo "PostgreSQL server binaries installed: $(dirname "$initdb")"
done
