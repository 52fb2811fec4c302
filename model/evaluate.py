"""Honest evaluation: what does the generator draw for texts it was and was not trained on?

For every generated sample we find the nearest *real* emoji with a model-free distance (premultiplied RGB
over grey + the alpha mask, cropped to content, 32x32, L2) and count a hit when that emoji's group is an
acceptable one for the prompt. Fixed seeds; held-out texts are never trained on (split by distinct text).
Also reported: the text encoder's own retrieval accuracy, the semi-transparent pixel fraction (blur raises
it; real emoji ~0.05), within-prompt diversity, and sharpness (`model/quality.py`): interior detail at 72 px
against each sample's nearest real emoji, and at 320 px against that emoji rendered from the font's 136-px
bitmap at 320 (ratios of the set's means: 1.0 = as detailed as real), and the share of samples whose outer
frame is at least half transparent at 72, 128 and 320 px.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from PIL import Image, ImageDraw, ImageFont

from model.compose_eval import DISTINCT_SEEDS, ComposeJudge
from model.data import (
    RESOURCES,
    DataError,
    EmojiDataset,
    find_cldr,
    find_font,
    group_key,
    load_or_build,
    read_tsv,
    render_emoji,
    split_texts,
)
from model.imaging import MIN_FRAME_CLEAR, SERVER_EMOJI_SIZE, STICKER_SIZE, resize
from model.quality import frame_transparency, interior_detail
from model.sample import Generator
from model.text import Tokenizer, to_device

log = logging.getLogger(__name__)

FEATURE_SIZE = 32
EVAL_SEED = 0
BLIND_PROMPTS = RESOURCES / "chat_prompts_blind.tsv"  # never trained on: scripts/check_lexicon.py
CAPTION_FONTS = (
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@torch.no_grad()
def text_accuracy(
    model: nn.Module,
    tok: Tokenizer,
    texts: list[str],
    targets: list[set[int]],
    device: torch.device,
    batch: int = 512,
) -> tuple[float, float]:
    """Top-1 / top-5: is an acceptable group among the text encoder's best guesses?"""
    model.eval()
    top1 = top5 = 0
    for i in range(0, len(texts), batch):
        logits = model.text(to_device(tok.encode(texts[i : i + batch]), device))
        best = logits.topk(5, dim=-1).indices.tolist()
        for guess, ok in zip(best, targets[i : i + batch], strict=True):
            top1 += guess[0] in ok
            top5 += any(g in ok for g in guess)
    model.train()
    return top1 / max(1, len(texts)), top5 / max(1, len(texts))


def image_features(images: np.ndarray) -> np.ndarray:
    """(N, 72, 72, 4) uint8 -> (N, 32*32*4) float: content-cropped colour over grey + alpha."""
    feats = []
    for rgba in images:
        alpha = rgba[..., 3]
        ys, xs = np.nonzero(alpha > 25)
        crop = rgba if len(ys) == 0 else rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        small = (
            np.asarray(
                Image.fromarray(crop, "RGBA")
                .convert("RGBa")
                .resize((FEATURE_SIZE, FEATURE_SIZE), Image.Resampling.BILINEAR),
                np.float32,
            )
            / 255
        )
        a = small[..., 3:]
        over_grey = small[..., :3] + 0.5 * (1 - a)  # premultiplied colour composited on grey
        feats.append(np.concatenate([over_grey, a], axis=-1).ravel())
    return np.stack(feats)


def semi_transparent_fraction(images: np.ndarray) -> float:
    """Share of pixels with 0.1 < alpha < 0.9 (soft, blurry edges and haze)."""
    alpha = images[..., 3].astype(np.float32) / 255
    return float(((alpha > 0.1) & (alpha < 0.9)).mean())


class NearestEmoji:
    """Nearest real emoji by L2 over image_features (built once per evaluation run: every checkpoint's
    samples and the novelty numbers, model.novelty, share it)."""

    featurize = staticmethod(image_features)

    def __init__(self, dataset: EmojiDataset):
        self.features = image_features(dataset.images)
        self.sq = (self.features**2).sum(1)
        self.image_group = dataset.image_group
        self.images = dataset.images

    def indices(self, images: np.ndarray) -> np.ndarray:
        """The index of each image's nearest real emoji in the dataset."""
        f = image_features(images)
        dist = self.sq[None, :] - 2 * f @ self.features.T  # + |f|^2, the same for every candidate
        return dist.argmin(1)

    def distances(self, images: np.ndarray, skip_groups: np.ndarray | None = None) -> np.ndarray:
        """(N,) RMS distance of each image to its nearest real emoji (optionally to none of a group's)."""
        f = image_features(images)
        d2 = (f**2).sum(1)[:, None] + self.sq[None] - 2 * f @ self.features.T
        if skip_groups is not None:
            d2[skip_groups[:, None] == self.image_group[None]] = np.inf
        return np.sqrt(np.maximum(d2.min(1), 0)) / np.sqrt(self.features.shape[1])

    def groups(self, images: np.ndarray) -> np.ndarray:
        return self.image_group[self.indices(images)]


class RealDetail:
    """Interior detail of real emoji at 72 px (the dataset's) and 320 px (the font's bitmap), memoised."""

    def __init__(self, dataset: EmojiDataset, font: str | Path | None = None):
        self.dataset = dataset
        self.font = ImageFont.truetype(str(find_font(font)), 109)
        self.known: dict[tuple[int, int], float] = {}

    def at(self, index: int, size: int) -> float:
        if (index, size) not in self.known:
            if size == 72:
                image = self.dataset.images[index]
            else:
                rendered = render_emoji(self.font, self.dataset.emojis[index], size)
                image = None if rendered is None else np.asarray(rendered)
            self.known[index, size] = float("nan") if image is None else interior_detail(image)
        return self.known[index, size]


def sharpness(nearest: NearestEmoji, real: RealDetail, small: np.ndarray, large: np.ndarray) -> dict:
    """Detail (72 and 320 px) and semi-transparent share (72 px) against the nearest real emoji, and how many
    samples keep a clear frame. The semi_transparent column compares a set with all real emoji; semi_ratio
    compares each sample with the emoji it resembles (thin-lined objects have softer edges)."""
    index = nearest.indices(small)
    ours72 = np.array([interior_detail(im) for im in small])
    ours320 = np.array([interior_detail(im) for im in large])
    real72 = np.array([real.at(int(i), 72) for i in index])
    real320 = np.array([real.at(int(i), STICKER_SIZE) for i in index])

    def ratio(ours: np.ndarray, theirs: np.ndarray) -> float:
        ok = ~(np.isnan(ours) | np.isnan(theirs))
        return float(ours[ok].mean() / theirs[ok].mean()) if ok.any() else float("nan")

    mid = [np.asarray(resize(Image.fromarray(im), SERVER_EMOJI_SIZE)) for im in large]
    frames = np.array(
        [[frame_transparency(a) for a in trio] for trio in zip(small, mid, large, strict=True)]
    )  # (N, 3): 72, 128, 320
    return {
        "detail72": ratio(ours72, real72),
        "detail320": ratio(ours320, real320),
        "semi_ratio": semi_transparent_fraction(small)
        / max(semi_transparent_fraction(nearest.images[index]), 1e-9),
        "frame_ok": float((frames.min(1) >= MIN_FRAME_CLEAR).mean()),
        "frame_min": float(frames.min()),
    }


@dataclass
class PromptSet:
    name: str
    texts: list[str]
    acceptable: list[set[int]]


def cldr_sets(dataset: EmojiDataset, limit: int, seed: int = EVAL_SEED) -> list[PromptSet]:
    """CLDR texts seen in training and held out, `limit` of each (fixed sample)."""
    train, held = split_texts(dataset)
    targets: dict[str, set[int]] = {}
    for t, g, s in zip(dataset.pair_texts, dataset.pair_groups.tolist(), dataset.pair_source, strict=True):
        if s.startswith("cldr"):
            targets.setdefault(t, set()).add(g)
    rng = random.Random(seed)
    out = []
    for name, pool in (("cldr-seen", train), ("cldr-held-out", held)):
        texts = sorted(t for t in targets if t in pool)
        texts = rng.sample(texts, min(limit, len(texts)))
        out.append(PromptSet(name, texts, [targets[t] for t in texts]))
    return out


def chat_sets(path: Path, group_index: dict[str, int]) -> list[PromptSet]:
    """The chat prompt file, split into word and sentence sets (Korean and English together)."""
    sets: dict[str, PromptSet] = {}
    for row in read_tsv(path):
        prompt, kind, _lang, acceptable = row[:4]
        groups = {group_index[k] for k in (group_key(e) for e in acceptable.split()) if k in group_index}
        if not groups:
            continue
        s = sets.setdefault(kind, PromptSet(f"chat-{kind}", [], []))
        s.texts.append(prompt)
        s.acceptable.append(groups)
    return [sets[k] for k in sorted(sets)]


def evaluate_set(
    gen: Generator,
    nearest: NearestEmoji,
    ps: PromptSet,
    samples: int,
    real: RealDetail | None = None,
    judge: ComposeJudge | None = None,
) -> tuple[dict, list]:
    """Numbers for one prompt set, plus the images (for grids)."""
    probs = gen.group_probs(ps.texts).numpy()
    top5 = np.argsort(-probs, axis=1)[:, :5]
    text_top1 = np.mean([t[0] in ok for t, ok in zip(top5, ps.acceptable, strict=True)])
    text_top5 = np.mean([any(g in ok for g in t) for t, ok in zip(top5, ps.acceptable, strict=True)])
    images, large = [], []
    for start in range(0, len(ps.texts), 64):
        drawings = gen.draw([(t, samples, EVAL_SEED) for t in ps.texts[start : start + 64]])
        images += [d.images for d in drawings]
        large += [np.asarray(im) for d in drawings for im in d.large]
    arrays = np.stack([np.asarray(im) for per in images for im in per])  # (P*S, 72, 72, 4)
    found = nearest.groups(arrays).reshape(len(ps.texts), samples)
    hits = np.array([[g in ok for g in row] for row, ok in zip(found, ps.acceptable, strict=True)])
    feats = image_features(arrays).reshape(len(ps.texts), samples, -1)
    div = (
        [
            np.mean([np.linalg.norm(f[i] - f[j]) for i in range(samples) for j in range(i + 1, samples)])
            for f in feats
        ]
        if samples > 1
        else [0.0]
    )
    result = {
        "set": ps.name,
        "prompts": len(ps.texts),
        "hit@1": float(hits.mean()),
        "text_top1": float(text_top1),
        "text_top5": float(text_top5),
        "semi_transparent": semi_transparent_fraction(arrays),
        "diversity": float(np.mean(div)),
    }
    if real is not None:
        result |= sharpness(nearest, real, arrays, np.stack(large))
    if judge is not None:
        result |= judge.novelty(arrays)
    return result, images


def evaluate_new(gen: Generator, judge: ComposeJudge, samples: int, single: list[str]) -> tuple[list, dict]:
    """The new-emoji rows: held-out two-concept pairs (recogniser) and distinct images among 16 seeds."""
    prompts = judge.prompts
    drawings = []
    for start in range(0, len(prompts), 32):
        drawings += gen.draw([(p.text, samples, EVAL_SEED) for p in prompts[start : start + 32]])
    arrays = np.stack([np.asarray(im) for d in drawings for im in d.images])
    items = [p for p in prompts for _ in range(samples)]
    row = {"set": "two-concept-held-out", "prompts": len(prompts)} | judge.found(arrays, items)
    row |= judge.novelty(arrays) | {"semi_transparent": semi_transparent_fraction(arrays)}
    seeds_prompts = [p.text for p in prompts[:: max(1, len(prompts) // 12)]][:12]
    seeds_prompts += single[:: max(1, len(single) // 12)][:12]
    counts = [
        judge.distinct(np.stack([np.asarray(im) for im in d.images]))
        for d in gen.draw([(t, DISTINCT_SEEDS, EVAL_SEED) for t in seeds_prompts])
    ]
    seeds_row = {
        "set": f"seeds-{DISTINCT_SEEDS}",
        "prompts": len(seeds_prompts),
        "distinct16": float(np.mean(counts)),
    }
    shown = {"two-concept-held-out": ([p.text for p in prompts], [d.images for d in drawings])}
    return [row, seeds_row], shown


def caption_font(size: int = 12) -> ImageFont.ImageFont:
    for path in CAPTION_FONTS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default()


def _is_emoji_char(ch: str) -> bool:
    cp = ord(ch)
    return cp >= 0x1F000 or 0x2600 <= cp <= 0x27BF or ch in "\u200d\ufe0f\u20e3" or 0x2190 <= cp <= 0x21FF


def draw_label(canvas: Image.Image, xy: tuple[int, int], text: str, font: ImageFont.ImageFont) -> None:
    """Caption text with its emoji drawn as small Noto glyphs (caption fonts have no emoji)."""
    draw = ImageDraw.Draw(canvas)
    x, y = xy
    runs: list[tuple[bool, str]] = []
    for ch in text:
        is_emoji = _is_emoji_char(ch)
        if runs and runs[-1][0] == is_emoji:
            runs[-1] = (is_emoji, runs[-1][1] + ch)
        else:
            runs.append((is_emoji, ch))
    for is_emoji, run in runs:
        glyph = _emoji_strip(run, 16) if is_emoji else None
        if glyph is not None:
            canvas.paste(glyph, (x, y - 1), glyph)
            x += glyph.width + 2
        else:
            draw.text((x, y), run, fill="black", font=font)
            x += int(draw.textlength(run, font=font))


@functools.cache
def _emoji_font() -> ImageFont.FreeTypeFont | None:
    """Noto Color Emoji, loaded once for all captions (None when it is not installed)."""
    try:
        return ImageFont.truetype(str(find_font()), 109)
    except (DataError, OSError):
        return None


def _emoji_strip(run: str, size: int) -> Image.Image | None:
    """A row of emoji glyphs at `size` pixels, or None when the emoji font is missing."""
    emoji_font = _emoji_font()
    if emoji_font is None:
        return None
    glyphs = []
    i = 0
    while i < len(run):  # one glyph per emoji sequence: a base plus its joiners and selectors
        j = i + 1
        while j < len(run) and (
            run[j] in "\u200d\ufe0f\u20e3" or run[j - 1] == "\u200d" or 0x1F3FB <= ord(run[j]) <= 0x1F3FF
        ):
            j += 1
        glyph = render_emoji(emoji_font, run[i:j], size)
        if glyph is not None:
            glyphs.append(glyph)
        i = j
    if not glyphs:
        return None
    strip = Image.new("RGBA", (len(glyphs) * (size + 1), size), (0, 0, 0, 0))
    for k, glyph in enumerate(glyphs):
        strip.paste(glyph, (k * (size + 1), 0), glyph)
    return strip


def sample_grid(prompts: list[str], images: list[list[Image.Image]], cell: int = 72) -> Image.Image:
    """Rows of samples with the prompt written on the left, on a light checker so alpha shows."""
    label_w, pad = 150, 4
    cols = max(len(row) for row in images)
    grid = Image.new("RGB", (label_w + cols * (cell + pad), len(prompts) * (cell + pad) + pad), "white")
    font = caption_font(13)
    checker = Image.new("RGB", (cell, cell), (235, 235, 235))
    cd = ImageDraw.Draw(checker)
    for y in range(0, cell, 8):
        for x in range((y // 8) % 2 * 8, cell, 16):
            cd.rectangle([x, y, x + 7, y + 7], fill=(250, 250, 250))
    for r, (prompt, row) in enumerate(zip(prompts, images, strict=True)):
        top = pad + r * (cell + pad)
        draw_label(grid, (6, top + cell // 2 - 8), prompt[:18], font)
        for c, image in enumerate(row):
            tile = checker.copy()
            im = image.resize((cell, cell), Image.Resampling.LANCZOS) if image.size != (cell, cell) else image
            tile.paste(im, (0, 0), im)
            grid.paste(tile, (label_w + c * (cell + pad), top))
    return grid


def format_table(rows: list[dict]) -> str:
    cols = ["model", "set", "prompts", "hit@1", "text_top1", "text_top5", "semi_transparent", "diversity"]
    optional = ("detail72", "detail320", "semi_ratio", "frame_ok", "frame_min")
    optional += ("copy", "novel", "distinct16", "both", "thing", "modifier")
    cols += [c for c in optional if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols)
            + " |"
        )
    return "\n".join(lines)


def evaluate(
    gen: Generator,
    dataset: EmojiDataset,
    prompts_file: Path,
    samples: int = 4,
    limit: int = 300,
    font: str | Path | None = None,
    judge: ComposeJudge | None = None,
) -> tuple[list[dict], dict[str, tuple[list[str], list]]]:
    """All prompt sets: (rows for the table, {set name: (prompts, images)})."""
    group_index = {k: i for i, k in enumerate(gen.meta.groups)}
    if list(gen.meta.groups) != list(dataset.groups):
        raise ValueError("the dataset's emoji groups differ from the checkpoint's: rebuild the dataset cache")
    nearest = judge.nearest if judge is not None else NearestEmoji(dataset)
    real_detail = RealDetail(dataset, font)
    sets = cldr_sets(dataset, limit) + chat_sets(prompts_file, group_index)
    # the blind held-out set (issue 12), one set per kind: korean_chat, english_chat, mixed, description, ...
    sets += [
        PromptSet(f"blind-{s.name[5:]}", s.texts, s.acceptable) for s in chat_sets(BLIND_PROMPTS, group_index)
    ]
    rows, shown = [], {}
    for ps in sets:
        row, images = evaluate_set(gen, nearest, ps, samples, real_detail, judge)
        rows.append(row)
        shown[ps.name] = (ps.texts, images)
        log.info("%s: hit@1 %.3f", ps.name, row["hit@1"])
    if judge is not None and judge.prompts:
        blind = [t for s in sets if s.name.startswith("blind-") for t in s.texts]  # every kind of chat
        new_rows, new_shown = evaluate_new(gen, judge, samples, blind)
        rows += new_rows
        shown |= new_shown
    shown_real = min(500, len(dataset.images))  # a small dataset (a test's, a trimmed one) has fewer
    pick = np.random.default_rng(EVAL_SEED).choice(len(dataset.images), shown_real, replace=False)
    real = dataset.images[pick]
    rows.append(
        {
            "set": "real emoji (reference)",
            "prompts": shown_real,
            "hit@1": float("nan"),
            "text_top1": float("nan"),
            "text_top5": float("nan"),
            "semi_transparent": semi_transparent_fraction(real),
            "diversity": float("nan"),
            "frame_ok": float(np.mean([frame_transparency(im) >= MIN_FRAME_CLEAR for im in real])),
            "frame_min": float(min(frame_transparency(im) for im in real)),
        }
    )
    return rows, shown


def run_eval(args: argparse.Namespace) -> None:
    """One table for one or more checkpoints (the same prompts, seeds and reference), one grid each."""
    checkpoints = args.checkpoint or [None]
    dataset = load_or_build(Path(args.data), args.font, args.cldr)
    prompts_file = Path(args.prompts) if args.prompts else RESOURCES / "chat_prompts_eval.tsv"
    judge = ComposeJudge(
        dataset, find_cldr(args.cldr), Path(args.data).with_name("recogniser.pt"), NearestEmoji(dataset)
    )
    log.info("novelty scale (RMS): %s; %d two-concept prompts", judge.scale, len(judge.prompts))
    table, results = [], []
    for n, checkpoint in enumerate(checkpoints):
        gen = Generator.load(checkpoint, args.device)
        gen.upscaler = args.upscaler
        rows, shown = evaluate(gen, dataset, prompts_file, args.samples, args.limit, args.font, judge)
        reference = rows[-1:]
        rows = rows[:-1]
        for row in rows:
            row["model"] = gen.name if row["set"] != "real emoji (reference)" else ""
        table += rows
        if n == len(checkpoints) - 1:  # the references are the same for every checkpoint: once, at the end
            ceiling = {"set": "kitchen composites of the held-out pairs (reference)", "model": ""}
            table += reference + ([ceiling | judge.ceiling()] if judge.prompts else [])
        grid_path = Path(args.grid)
        if len(checkpoints) > 1:
            grid_path = grid_path.with_name(f"{grid_path.stem}_{n}_{gen.arch}{grid_path.suffix}")
        write_grid(shown, grid_path)
        results.append((checkpoint or "shipped", gen.name, grid_path))
    print(f"{args.samples} samples/prompt, seed {EVAL_SEED}")
    for checkpoint, name, grid_path in results:
        print(f"- {name}: {checkpoint} (sample grid: {grid_path})")
    print(format_table(table))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=2, ensure_ascii=False), encoding="utf-8")


def write_grid(shown: dict[str, tuple[list[str], list]], path: Path) -> None:
    picks = []
    for name in ("chat-word", "chat-sentence", "cldr-held-out", "two-concept-held-out"):
        if name in shown:
            texts, images = shown[name]
            picks += [(t, im) for t, im in zip(texts[:6], images[:6], strict=True)]
    grid = sample_grid([t for t, _ in picks], [im for _, im in picks])
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
