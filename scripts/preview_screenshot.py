"""Refresh docs/preview.png: the `emoji-bot preview` page after `/emoji` and Reroll, in headless Chromium.

The picture comes from the end-to-end browser test itself (tests/bot/test_preview_browser.py), so the
README shows exactly what that test checked. Needs Debian's `chromium` (scripts/test.sh installs it).

    python scripts/preview_screenshot.py [--out docs/preview.png]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/bot/test_preview_browser.py::test_emoji_shows_the_320px_result_and_reroll_draws_a_new_one"

log = logging.getLogger("preview_screenshot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "preview.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # so a skipped test cannot leave an old picture looking fresh
    env = {**os.environ, "PREVIEW_SCREENSHOT": str(out)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", TEST], cwd=ROOT, env=env)
    if proc.returncode != 0 or not out.is_file():
        log.error("No screenshot taken (pytest exit status %d); see the output above", proc.returncode)
        return 1
    log.info("Wrote %s", out.relative_to(ROOT) if out.is_relative_to(ROOT) else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
