"""Korean morphology with Kiwi (kiwipiepy, Apache-2.0): chat spelling corrected to standard Korean.

Kiwi's typo model reads 마시써 as 맛있어, 추카추카 as 축하 축하, 기여워 as 귀여워, 배고팡 as 배고파;
joining its morphemes back gives the text a standard spelling the text encoder and the sentence encoder
know. Optional (the `korean` extra: ~105 MB installed, ~4-7 s to load, ~400 MB more memory); without it
`corrector()` is None and the text side reads the text as typed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from model.hangul import is_syllable

log = logging.getLogger(__name__)

TYPOS = "basic_with_continual_and_lengthening"


def available() -> bool:
    try:
        import kiwipiepy  # noqa: F401
    except ImportError:
        return False
    return True


class KiwiCorrector:
    """text -> Kiwi's corrected spelling (None when it changes nothing or the text has no Hangul)."""

    def __init__(self) -> None:
        self._kiwi = None  # loaded on first use (4-7 s), so loading a Generator stays fast
        self._lock = threading.Lock()  # one analysis at a time (the worker is one thread; tests are many)
        self._cache: dict[str, str | None] = {}

    def __call__(self, text: str) -> str | None:
        if not any(is_syllable(ch) for ch in text):
            return None
        if text in self._cache:
            return self._cache[text]
        with self._lock:
            if self._kiwi is None:
                from kiwipiepy import Kiwi

                self._kiwi = Kiwi()
            tokens = self._kiwi.tokenize(text, normalize_coda=True, typos=TYPOS)
            kept = [t for t in tokens if t.tag != "Z_CODA"]
            try:
                fixed = self._kiwi.join(kept)
            except Exception:  # noqa: BLE001 - Kiwi refuses some joins; the text stays as typed
                fixed = text
        fixed = " ".join(fixed.split())
        result = fixed if fixed and fixed.replace(" ", "") != text.replace(" ", "") else None
        if len(self._cache) < 100_000:
            self._cache[text] = result
        return result


def corrector() -> Callable[[str], str | None] | None:
    """Kiwi's corrector when kiwipiepy is installed, else None (logged once)."""
    if not available():
        log.info("Korean spelling correction off: kiwipiepy is not installed (pip install '.[korean]')")
        return None
    return KiwiCorrector()
