#!/usr/bin/env bash
# Set up everything `make demo` and `make test` need on a fresh Debian machine:
#   1. system packages: libosmesa6 (headless OpenGL on CPU) and ffmpeg; with the dev extra also
#      chromium and chromium-driver (the browser tests of `gas app`);
#   2. a virtual environment at $VENV with exactly the versions in constraints.txt.
# Re-running is cheap: each step is skipped when already done.
# The Docker images (docker/Dockerfile.cpu, docker/Dockerfile.gpu) install through this script too:
#   VENV=/opt/venv GAS_EXTRAS='' bash scripts/bootstrap.sh
# GAS_EXTRAS: the package's optional dependencies to install (default: dev, the test and docs tools;
# empty: none, for an image).
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
GAS_EXTRAS=${GAS_EXTRAS-dev}
cd "$(dirname "$0")/.."

missing=()
ldconfig -p 2>/dev/null | grep -q libOSMesa || missing+=(libosmesa6)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ "$GAS_EXTRAS" = dev ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${missing[*]}" >&2
    echo "bootstrap: install them with 'sudo apt-get install ${missing[*]}' (Debian/Ubuntu) and re-run." >&2
    exit 1
  fi
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "bootstrap: $PYTHON not found; set PYTHON=/path/to/python3.11 (the tested version is 3.11)." >&2
  exit 1
fi

stamp="$VENV/.gas-installed"
want=$( (cat constraints.txt pyproject.toml; [ "$GAS_EXTRAS" = dev ] || echo "extras=$GAS_EXTRAS") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: creating $VENV (about 3 minutes and 7.7 GB on a fresh machine)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade "pip>=24" setuptools wheel
# Exactly the tested versions; the own pins of pyrender (PyOpenGL 3.1.0) and mediapipe (numpy<2,
# protobuf<5) do not install with this stack, hence --no-deps for those two.
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".${GAS_EXTRAS:+[$GAS_EXTRAS]}"
"$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps pyrender mediapipe
echo "$want" > "$stamp"
echo "bootstrap: $VENV ready"
