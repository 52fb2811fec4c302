#!/usr/bin/env bash
# Install text2emoji (CPU build of torch), draw emoji for the given text into out/, then open the local
# preview: the real bot in a simulated Discord server at http://127.0.0.1:8765 (no token needed; Ctrl-C stops).
#   ./scripts/try.sh 축하해 "pizza party"
#   NO_PREVIEW=1 ./scripts/try.sh 축하해      # only the command-line part
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0   # the CPU build; a GPU user can install their own torch first
python3 -m pip install -q -e ".[preview]"
[ "$#" -gt 0 ] || set -- 축하해
emoji-gen "$@" --count 4 --size 320 --out out/
echo "open out/*.png to see them (320x320 sticker size; --size 72 for emoji size)"
[ -n "${NO_PREVIEW:-}" ] || exec emoji-bot preview
