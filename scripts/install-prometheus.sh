#!/usr/bin/env bash
# The Prometheus server and promtool (Debian package `prometheus`) for `adx stack up prometheus` and the alert-rule
# tests. Idempotent: does nothing when both are on the PATH. Installs with apt-get, through sudo unless root. The
# package also registers a system service on port 9090; the stack does not use it and runs its own server under
# ADX_DATA_DIR/stack/prometheus on 127.0.0.1:ADX_PROMETHEUS_PORT (19090).
set -euo pipefail

installed() {
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

if installed; then
    echo "Prometheus present: $(command -v prometheus) ($(prometheus --version 2>&1 | head -n 1))"
    exit 0
fi

"$(dirname "$0")/apt-install.sh" prometheus "the stack's Prometheus server and promtool"

if ! installed; then
    echo "install-prometheus.sh: the prometheus package is installed, but prometheus or promtool is not on the" \
        "PATH; check \`dpkg -L prometheus\`." >&2
    exit 1
fi
echo "Prometheus installed: $(command -v prometheus)"
