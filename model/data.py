"""Build the base dataset from open data: Noto Color Emoji glyphs + CLDR ko/en annotations.

One cached `.npz` holds everything training needs: 72x72 RGBA images (uint8), the emoji string of each
image, its variant group (skin tone / gender / direction variants share one group, so people do not
dominate), and the (text, group) pairs from CLDR, emojilib and the curated chat lexicon.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

IMAGE_SIZE = 72
RESOURCES = Path(__file__).parent / "resources"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
)
CLDR_CANDIDATES = ("/usr/share/unicode/cldr/common", "/usr/share/cldr/common")
LANGUAGES = ("ko", "en")
DATASET_VERSION = 2

SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}
ZWJ, VS16 = "\u200d", "\ufe0f"
GENDER_SIGNS = ("\u2640", "\u2642")  # ♀ ♂
PERSON_BASES = ("\U0001f468", "\U0001f469", "\U0001f9d1")  # 👨 👩 🧑
# Symbols that Noto draws as big grey text glyphs: not emoji-like, so they are left out.
TEXTLIKE = set("#*0123456789©®™‼⁉ℹ↔↕↖↗↘↙↩↪▪▫▶◀◻◼◽◾〰〽㊗㊙‾")


class DataError(RuntimeError):
    """Raised when the open data this project trains on is not installed."""


def find_font(path: str | Path | None = None) -> Path:
    """The Noto Color Emoji font: `path` if given, else the Debian location."""
    candidates = [Path(path)] if path else [Path(p) for p in FONT_CANDIDATES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(
        f"Noto Color Emoji font not found (looked at {', '.join(map(str, candidates))}). "
        "Install it with `apt-get install fonts-noto-color-emoji` or pass --font PATH."
    )


def find_cldr(path: str | Path | None = None) -> Path:
    """The CLDR `common/` folder holding `annotations/` and `annotationsDerived/`."""
    candidates = [Path(path)] if path else [Path(p) for p in CLDR_CANDIDATES]
    for candidate in candidates:
        if (candidate / "annotations" / "ko.xml").is_file():
            return candidate
    raise DataError(
        f"CLDR annotations not found (looked for annotations/ko.xml under "
        f"{', '.join(map(str, candidates))}). "
        "Install them with `apt-get install unicode-cldr-core` or pass --cldr PATH."
    )


# ---------------------------------------------------------------------------------------------- texts


def read_cldr_annotations(cldr: Path, lang: str) -> dict[str, list[str]]:
    """emoji -> [name, keyword, ...] for one language, from annotations + annotationsDerived."""
    out: dict[str, list[str]] = {}
    for sub in ("annotations", "annotationsDerived"):
        path = cldr / sub / f"{lang}.xml"
        if not path.is_file():
            continue
        for node in ET.parse(path).getroot().iter("annotation"):
            cp, text = node.get("cp"), (node.text or "").strip()
            if not cp or not text or text == "↑↑↑":
                continue
            texts = [text] if node.get("type") == "tts" else [t.strip() for t in text.split("|")]
            bucket = out.setdefault(cp, [])
            for t in texts:
                if node.get("type") == "tts":  # the tts name goes first: it is the emoji's name
                    if t in bucket:
                        bucket.remove(t)
                    bucket.insert(0, t)
                elif t and t not in bucket:
                    bucket.append(t)
    return out


def read_emojilib(path: Path = RESOURCES / "emojilib-en-US.json") -> dict[str, list[str]]:
    """emoji -> casual English keywords (npm emojilib, MIT): 'lol', 'hooray', 'happytears'."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {e: [k.replace("_", " ") for k in kws] for e, kws in data.items()}


def read_tsv(path: Path) -> list[list[str]]:
    """Rows of a tab-separated resource file; `#` lines are comments."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append([c.strip() for c in line.split("\t")])
    return rows


def read_lexicon(path: Path = RESOURCES / "chat_lexicon.tsv") -> list[tuple[str, list[str]]]:
    """(chat text, [emoji, ...]) from the curated chat lexicon."""
    if not path.is_file():
        return []
    return [(row[0], row[1].split()) for row in read_tsv(path) if len(row) >= 2]


# ---------------------------------------------------------------------------------------------- groups


def strip_variation(emoji: str) -> str:
    """Drop VS16 so 'heart' with and without the emoji presentation selector match."""
    return emoji.replace(VS16, "")


def group_key(emoji: str) -> str:
    """One key per base emoji: skin tones, gender and direction variants collapse together."""
    key = "".join(ch for ch in strip_variation(emoji) if ch not in SKIN_TONES)
    parts = key.split(ZWJ)
    parts = [p for p in parts if p not in GENDER_SIGNS and p != "\u27a1"]
    if len(parts) > 1 and parts[0] in PERSON_BASES:
        parts[0] = PERSON_BASES[-1]
    if len(parts) == 1 and parts[0] in PERSON_BASES[:2]:
        parts[0] = PERSON_BASES[-1]
    return ZWJ.join(parts)


def is_textlike(emoji: str) -> bool:
    """True for keycaps and symbols that render as plain grey glyphs."""
    base = strip_variation(emoji)
    return (len(base) == 1 and base in TEXTLIKE) or "\u20e3" in base or base[:1] in TEXTLIKE


# ---------------------------------------------------------------------------------------------- images


def render_emoji(font: ImageFont.FreeTypeFont, emoji: str, size: int = IMAGE_SIZE) -> Image.Image | None:
    """Render one emoji to a size x size RGBA image: cropped to content, fitted, centred.

    Returns None when the font has no single glyph for it (the sequence falls apart into pieces).
    """
    canvas = Image.new("RGBA", (320, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), emoji, font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        return None
    width, height = box[2] - box[0], box[3] - box[1]
    if width > 1.35 * 136 or height < 8:  # several glyphs side by side: not supported by this font
        return None
    glyph = canvas.crop(box)
    return fit_square(glyph, size)


def fit_square(image: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Scale an RGBA image to fit size x size (aspect kept) and centre it on transparency."""
    image = image.convert("RGBA")
    scale = size / max(image.size)
    new = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # premultiply so transparent pixels' colours never bleed into the edges while resampling
    resized = image.convert("RGBa").resize(new, Image.Resampling.LANCZOS).convert("RGBA")
    out = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    out.paste(resized, ((size - new[0]) // 2, (size - new[1]) // 2))
    return out


# ---------------------------------------------------------------------------------------------- dataset


@dataclass
class EmojiDataset:
    """Everything training needs, as arrays. Texts are kept as (text, group) pairs."""

    images: np.ndarray  # (N, 72, 72, 4) uint8
    emojis: list[str]  # (N,) the emoji string drawn in each image
    image_group: np.ndarray  # (N,) int: group of each image
    groups: list[str]  # (G,) group key (base emoji)
    pair_texts: list[str]  # (P,) training texts
    pair_groups: np.ndarray  # (P,) int: group of each text
    pair_source: list[str]  # (P,) "cldr-ko", "cldr-en", "emojilib", "lexicon"
    fingerprint: str = ""  # of the bundled text sources it was built from

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    def group_images(self) -> list[np.ndarray]:
        """Indices of the images of every group."""
        order: list[list[int]] = [[] for _ in self.groups]
        for i, g in enumerate(self.image_group.tolist()):
            order[g].append(i)
        return [np.asarray(o, dtype=np.int64) for o in order]

    def representative(self, group: int) -> str:
        """The emoji that stands for a group (its base form when drawn)."""
        return (
            self.groups[group]
            if self.groups[group] in self.emojis
            else self.emojis[self.group_images()[group][0]]
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp,
            version=np.int64(DATASET_VERSION),
            images=self.images,
            emojis=np.asarray(self.emojis),
            image_group=self.image_group,
            groups=np.asarray(self.groups),
            pair_texts=np.asarray(self.pair_texts),
            pair_groups=self.pair_groups,
            pair_source=np.asarray(self.pair_source),
            fingerprint=np.asarray(self.fingerprint),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> EmojiDataset:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != DATASET_VERSION:
                raise DataError(f"{path} is an old dataset cache; delete it to rebuild")
            return cls(
                images=z["images"],
                emojis=z["emojis"].tolist(),
                image_group=z["image_group"],
                groups=z["groups"].tolist(),
                pair_texts=z["pair_texts"].tolist(),
                pair_groups=z["pair_groups"],
                pair_source=z["pair_source"].tolist(),
                fingerprint=str(z["fingerprint"]),
            )


def build_dataset(
    font_path: str | Path | None = None,
    cldr_path: str | Path | None = None,
    only: Iterable[str] | None = None,
    with_extras: bool = True,
) -> EmojiDataset:
    """Render every annotated emoji and collect its texts. `only` limits it to some emoji (tests)."""
    font = ImageFont.truetype(str(find_font(font_path)), 109)
    cldr = find_cldr(cldr_path)
    annotations = {lang: read_cldr_annotations(cldr, lang) for lang in LANGUAGES}
    candidates = sorted(set(annotations["ko"]) | set(annotations["en"]))
    if only is not None:
        wanted = {strip_variation(e) for e in only}
        candidates = [e for e in candidates if strip_variation(e) in wanted]

    images, emojis = [], []
    for emoji in candidates:
        if is_textlike(emoji) or emoji in SKIN_TONES or unicodedata.category(emoji[0]) == "Sk":
            continue
        image = render_emoji(font, emoji)
        if image is None:
            continue
        images.append(np.asarray(image, dtype=np.uint8))
        emojis.append(emoji)
    if not images:
        raise DataError("no emoji could be rendered: is the font a colour emoji font?")

    keys = [group_key(e) for e in emojis]
    groups = sorted(set(keys))
    group_of_key = {k: i for i, k in enumerate(groups)}
    image_group = np.asarray([group_of_key[k] for k in keys], dtype=np.int64)
    group_of_emoji = {strip_variation(e): group_of_key[k] for e, k in zip(emojis, keys, strict=True)}

    pairs: dict[tuple[str, int], str] = {}

    def add(text: str, emoji: str, source: str) -> None:
        group = group_of_emoji.get(strip_variation(emoji))
        text = " ".join(text.split())
        if group is not None and text:
            pairs.setdefault((text, group), source)

    for lang in LANGUAGES:
        for emoji, texts in annotations[lang].items():
            for text in texts:
                add(text, emoji, f"cldr-{lang}")
    if with_extras:
        for emoji, texts in read_emojilib().items():
            for text in texts:
                add(text, emoji, "emojilib")
        for text, targets in read_lexicon():
            for emoji in targets:
                add(text, emoji, "lexicon")

    texts_sorted = sorted(pairs)
    return EmojiDataset(
        images=np.stack(images),
        emojis=emojis,
        image_group=image_group,
        groups=groups,
        pair_texts=[t for t, _ in texts_sorted],
        pair_groups=np.asarray([g for _, g in texts_sorted], dtype=np.int64),
        pair_source=[pairs[k] for k in texts_sorted],
        fingerprint=text_sources_fingerprint() if with_extras else "",
    )


def text_sources_fingerprint() -> str:
    """Changes whenever a bundled text source (lexicon, emojilib) changes: the cache is then rebuilt."""
    digest = hashlib.sha256(str(DATASET_VERSION).encode())
    for path in sorted(RESOURCES.glob("*")):
        if not path.name.startswith("chat_prompts_"):  # held-out prompt sets never feed the dataset
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def load_or_build(cache: Path, font_path: str | Path | None = None, cldr_path: str | Path | None = None):
    """The cached dataset, building it (a few seconds) when the cache is missing or stale."""
    if cache.is_file():
        try:
            dataset = EmojiDataset.load(cache)
            if dataset.fingerprint == text_sources_fingerprint():
                return dataset
            log.info("text sources changed since %s was built", cache)
        except (DataError, KeyError, ValueError) as exc:
            log.warning("rebuilding dataset cache: %s", exc)
    log.info("building dataset from the Noto font and CLDR annotations ...")
    dataset = build_dataset(font_path, cldr_path)
    dataset.save(cache)
    log.info(
        "dataset: %d images in %d groups, %d text pairs -> %s",
        len(dataset.emojis),
        dataset.num_groups,
        len(dataset.pair_texts),
        cache,
    )
    return dataset


# ---------------------------------------------------------------------------------------------- splits


def emoji_names(cldr: Path) -> dict[str, str]:
    """emoji -> English CLDR name, for reading emoji inside prompts.

    CLDR also names plain punctuation and Latin-1 symbols (":", "-", "©"); those stay text in prompts.
    (The shipped checkpoints predate this and keep the names their text encoder was trained with.)
    """
    names = {}
    for emoji, texts in read_cldr_annotations(cldr, "en").items():
        if all(ord(ch) < 0x2000 for ch in emoji):
            continue
        names[emoji] = texts[0]
    return names


def split_texts(dataset: EmojiDataset, held_out: float = 0.1, seed: int = 1234) -> tuple[set[str], set[str]]:
    """A fixed, seeded split by distinct CLDR text: no held-out string is ever trained on.

    Only CLDR texts are held out (the lexicon and emojilib always train); returns (train, held_out).
    """
    cldr_texts = sorted(
        {t for t, s in zip(dataset.pair_texts, dataset.pair_source, strict=True) if s.startswith("cldr")}
    )
    rng = random.Random(seed)
    held = set(rng.sample(cldr_texts, int(len(cldr_texts) * held_out)))
    other = {t for t in dataset.pair_texts if t not in held}
    return other, held
