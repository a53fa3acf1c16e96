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

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus.sh: no prometheus and promtool on the PATH, and no apt-get to install them. Install" \
        "Prometheus 2.x with your system's package manager." >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install-prometheus.sh: installing the prometheus package needs root, and sudo is not available." \
        "As root, run: apt-get update && apt-get install -y --no-install-recommends prometheus" >&2
    exit 1
fi

echo "Installing the prometheus package with apt-get (the stack's Prometheus server and promtool)"
# The package index may be missing on a fresh machine: update it only when the package is unknown.
if ! apt-cache show prometheus >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update
fi
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; then
    echo "install-prometheus.sh: apt-get could not install the prometheus package (see above)." >&2
    exit 1
fi

if ! installed; then
    echo "install-prometheus.sh: the prometheus package is installed, but prometheus or promtool is not on the" \
        "PATH; check \`dpkg -L prometheus\`." >&2
    exit 1
fi
echo "Prometheus installed: $(command -v prometheus)"
