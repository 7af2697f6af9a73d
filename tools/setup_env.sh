#!/usr/bin/env bash
# Creates (once) the Python environment with bah's dependencies, outside the clone, keyed by a
# hash of requirements.txt, so every clone reuses it; prints its path.
#
# Where: $BAH_VENV if set, else $BAH_VENV_ROOT/venv-<hash> (BAH_VENV_ROOT defaults to
# ${XDG_CACHE_HOME:-~/.cache}/bah). Point BAH_VENV_ROOT at a scratch or project file system on
# a cluster: the environment is several GB.
#
# bah itself is NOT installed into it: the Makefile runs each clone's own code with
# PYTHONPATH=<clone>, and the environment's `bah` command runs `python -m bah.cli` from the
# current directory (or $PYTHONPATH), so two clones (two branches) never run each other's code.
# To use bah from anywhere, install it into your own environment instead: pip install -e <clone>.
#
# It only ever deletes an environment it created itself (marked by .bah-venv inside): a
# BAH_VENV pointing at an existing folder of something else is refused, not removed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
req="$here/requirements.txt"
key="$(sha256sum < "$req" | cut -c1-12)"
root="${BAH_VENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/bah}"
venv="${BAH_VENV:-$root/venv-$key}"
mark="$venv/.bah-venv"
if [ -f "$venv/.complete" ] || [ -z "${BAH_VENV:-}" ] && [ -d "$venv" ]; then
  touch "$mark" 2>/dev/null || true  # built by an older setup_env.sh (.complete), or in our own cache folder
fi
if [ -e "$venv" ] && [ ! -f "$mark" ] && [ -n "$(ls -A "$venv" 2>/dev/null)" ]; then
  echo "[setup] $venv exists and was not created by tools/setup_env.sh; refusing to touch it" >&2
  echo "[setup] (set BAH_VENV to a new folder, or unset it to use \$BAH_VENV_ROOT/venv-$key)" >&2
  exit 2
fi
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
  if [ -f "$mark" ]; then
    rm -rf "$venv"  # an unfinished build of ours
  fi
  mkdir -p "$venv"
  touch "$mark"
  python3 -m venv "$venv"
  touch "$mark"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q -r "$req" >&2
  touch "$venv/.complete"
fi
if [ ! -x "$venv/bin/bah" ] || ! grep -q -- "-m bah.cli" "$venv/bin/bah"; then
  # a `bah` command that runs the clone of the current directory (python -m puts it first on sys.path)
  printf '#!/usr/bin/env bash\nexec "%s/bin/python" -m bah.cli "$@"\n' "$venv" > "$venv/bin/bah"
  chmod +x "$venv/bin/bah"
fi
echo "$venv"
