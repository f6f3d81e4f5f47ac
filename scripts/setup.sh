#!/usr/bin/env bash
# Set up Whisper Studio on Debian/Ubuntu with Python 3.11, then launch the app or run the tests.
#   bash scripts/setup.sh app [app.py options]   -> http://127.0.0.1:7860 with the offline model
#   bash scripts/setup.sh test [pytest options]  -> the test suite (all but `slow` and `gpu`)
# Re-running is fast: each step is skipped when nothing it depends on changed.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-app}"
shift || true

SYSTEM_PACKAGES=(chromium fonts-sil-abyssinica fonts-noto-core espeak-ng sox
  asterisk-core-sounds-en-wav asterisk-core-sounds-en asterisk-moh-opsound-wav
  asterisk-core-sounds-es-wav asterisk-core-sounds-es)

install_system_packages() {
  local missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo"; else
      echo "Whisper Studio needs these system packages; install them and re-run:" >&2
      echo "  sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "Installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  echo "Python 3.11 or newer is needed (python3.11 not found)" >&2; exit 1
}

install_python_packages() {
  [ -x .venv/bin/python ] || "$(find_python)" -m venv .venv
  local stamp=".venv/.requirements.sha256"
  local want; want=$(sha256sum requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    echo "$want" >"$stamp"
  fi
}

install_system_packages
install_python_packages
.venv/bin/python -c 'from utils.model_store import ensure_default_model; ensure_default_model()'

case "$mode" in
  app) exec .venv/bin/python app.py --host "${HOST:-127.0.0.1}" --port "${PORT:-7860}" "$@" ;;
  test) exec .venv/bin/python -m pytest "$@" ;;
  *) echo "usage: bash scripts/setup.sh app|test [options]" >&2; exit 2 ;;
esac
