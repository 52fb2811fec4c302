#!/usr/bin/env bash
# Install text2emoji, draw emoji for the given text into out/ (overwriting out/0000_*.png …), then start the local
# preview: the real bot in a simulated Discord server. It prints a http://127.0.0.1:8765/#… link (no browser is
# opened, no token needed); Ctrl-C stops it.
#   ./scripts/try.sh 축하해 "pizza party"
#   NO_PREVIEW=1 ./scripts/try.sh 축하해      # only the command-line part
# Without an active virtualenv it installs into .venv (scripts/env.sh says why); a torch already there is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=SCRIPTDIR/env.sh
source scripts/env.sh

t2e_python
t2e_torch
# T2E_SETUP_ONLY=1 stops after choosing the interpreter and torch (tests/test_install.py checks that step).
[ -z "${T2E_SETUP_ONLY:-}" ] || { echo "python: $PY"; exit 0; }
"$PY" -m pip install -q -e ".[preview]"

[ "$#" -gt 0 ] || set -- 축하해
emoji-gen "$@" --count 4 --size 320 --out out/
echo "open out/*.png to see them (320x320 sticker size; --size 72 for emoji size)"
[ -n "${NO_PREVIEW:-}" ] || exec emoji-bot preview
