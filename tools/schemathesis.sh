#!/usr/bin/env bash
# Installs schemathesis (from PyPI, pinned) into .build/venv for the OpenAPI conformance test
# (OpenAPITests), unless that version is there already. Works as root on a fresh Debian machine:
# it installs python3 and its venv module with apt-get when they are missing.
#
#   tools/schemathesis.sh           install if needed
#   tools/schemathesis.sh path      print the executable's path
set -euo pipefail

VERSION=4.32.5
cd "$(dirname "$0")/.."
VENV=.build/venv
EXECUTABLE="$VENV/bin/schemathesis"

if [ "${1:-}" = path ]; then
    echo "$PWD/$EXECUTABLE"
    exit 0
fi

if "$EXECUTABLE" --version 2>/dev/null | grep -qx "schemathesis, version $VERSION"; then
    exit 0
fi

echo "Installing schemathesis $VERSION (for the OpenAPI test) into $VENV…"
apt_install() {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v python3 >/dev/null || apt_install python3
rm -rf "$VENV"
# Debian ships the venv module (with ensurepip) as a package of its own.
if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION"
"$EXECUTABLE" --version
