#!/usr/bin/env bash
# apt-install.sh PACKAGE PURPOSE: install one Debian package with apt-get, through sudo unless root; the package index
# is updated first only when it does not know the package (a fresh machine). PURPOSE ends up in the messages.
# Exits 1 with what to do by hand when there is no apt-get, no way to become root, or the install fails.
set -euo pipefail

package=$1
purpose=$2

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-install.sh: no apt-get to install the $package package ($purpose). Install it with your system's" \
        "package manager." >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "apt-install.sh: installing the $package package ($purpose) needs root, and sudo is not available." \
        "As root, run: apt-get update && apt-get install -y --no-install-recommends $package" >&2
    exit 1
fi

echo "Installing the $package package with apt-get ($purpose)"
if ! apt-cache show "$package" >/dev/null 2>&1; then
    "${as_root[@]}" apt-get update
fi
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package"; then
    echo "apt-install.sh: apt-get could not install the $package package (see above)." >&2
    exit 1
fi
