#!/usr/bin/env bash
# Install everything the tests need (Debian's emoji font + CLDR + Chromium + redis-server through apt, torch,
# the project with its dev and distributed extras), then lint and run the whole suite (~15 minutes on 2 cores).
# CI runs exactly this (.ci/run).
# Without an active virtualenv it installs into .venv (scripts/env.sh says why); a torch already there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/env.sh
source scripts/env.sh

t2e_python
t2e_torch   # before the project: an open `torch` requirement pulls the multi-GB CUDA build on Linux
# T2E_SETUP_ONLY=1 stops after choosing the interpreter and torch (tests/test_install.py checks that step).
[ -z "${T2E_SETUP_ONLY:-}" ] || { echo "python: $PY"; exit 0; }

need=()
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
[ -f /usr/share/unicode/cldr/common/annotations/ko.xml ] || need+=(unicode-cldr-core)
[ -f /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] || need+=(fonts-nanum)
[ -x /usr/bin/chromium ] || need+=(chromium)   # the `emoji-bot preview` browser test
command -v redis-server >/dev/null || need+=(redis-server)   # the distributed backend's test cluster
if [ "${#need[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "error: install ${need[*]} (Debian/Ubuntu names) first" >&2; exit 1; }
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

"$PY" -m pip install -q -e ".[dev,distributed]"

ruff check .
ruff format --check .
"$PY" -m pytest -q "$@"
