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

"$(dirname "$0")/apt-install.sh" postgresql "the metastore database of \`adx stack up\`"

if ! installed; then
    echo "install-postgres.sh: the postgresql package is installed, but /usr/lib/postgresql/*/bin/initdb is" \
        "missing; check \`dpkg -L postgresql-common\` and the server package of your distribution." >&2
    exit 1
fi
for initdb in /usr/lib/postgresql/*/bin/initdb; do
    echo "PostgreSQL server binaries installed: $(dirname "$initdb")"
done
