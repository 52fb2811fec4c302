#!/usr/bin/env bash
# Install everything the tests need (Debian's emoji font + CLDR + Chromium, CPU torch, the project with its dev
# extra), then lint and run the whole suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need+=(fonts-noto-color-emoji)
[ -f /usr/share/unicode/cldr/common/annotations/ko.xml ] || need+=(unicode-cldr-core)
[ -f /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] || need+=(fonts-nanum)
[ -x /usr/bin/chromium ] || need+=(chromium)   # the `emoji-bot preview` browser test
if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

python3 -m pip install -q torch==2.13.0   # CPU build first: an open `torch` pulls a multi-GB CUDA build
python3 -m pip install -q -e ".[dev]"

ruff check .
ruff format --check .
python3 -m pytest -q "$@"
