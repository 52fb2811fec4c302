#!/usr/bin/env bash
# Install text2emoji (CPU build of torch) and draw emoji for the given text into out/.
#   ./scripts/try.sh 축하해 "pizza party"
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0   # the CPU build; a GPU user can install their own torch first
python3 -m pip install -q -e .
[ "$#" -gt 0 ] || set -- 축하해
emoji-gen "$@" --count 4 --size 320 --out out/
echo "open out/*.png to see them (320x320 sticker size; --size 72 for emoji size)"
