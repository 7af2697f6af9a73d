#!/usr/bin/env bash
# Creates (once) the one virtual environment every stage uses, outside the clone,
# keyed by a hash of requirements.txt, so a fresh clone reuses it. Prints its path.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
req="$here/requirements.txt"
key="$(sha256sum < "$req" | cut -c1-12)"
root="${BAH_VENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/bah}"
venv="${BAH_VENV:-$root/venv-$key}"
mkdir -p "$(dirname "$venv")"
# Several jobs (or make targets) may start at once: one builds, the others wait for it.
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  echo "[setup] creating environment $venv (first time only; several minutes)" >&2
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    if ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null; then
      (apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq ffmpeg espeak-ng >/dev/null) \
        || echo "[setup] warning: apt-get could not install ffmpeg espeak-ng" >&2
    fi
  elif ! command -v espeak-ng >/dev/null; then
    echo "[setup] please install the system packages 'ffmpeg' and 'espeak-ng' (needed by 'bah synth')" >&2
  fi
  mkdir -p "$(dirname "$venv")"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "$req" >&2
  "$venv/bin/python" -m pip install -q --no-deps -e "$here" >&2
  touch "$venv/.complete"
fi
# A fresh clone at another path: point the editable install at it.
if ! "$venv/bin/python" -c "import bah,sys,os; sys.exit(0 if os.path.realpath(os.path.dirname(bah.__file__))==os.path.realpath('$here/bah') else 1)" 2>/dev/null; then
  "$venv/bin/python" -m pip install -q --no-deps -e "$here" >&2
fi
echo "$venv"
