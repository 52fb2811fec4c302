"""Sampling: `Generator` (the API the bot serves) and the `emoji-gen` command.

    emoji-gen 축하해 "so hungry" --count 2 --seed 7 --out out/
    # -> out/0000_0.png, out/0000_1.png, out/0001_0.png, out/0001_1.png

An image depends only on (text, seed, sample index): never on what else is in the batch, so the bot can
batch strangers' requests together and still promise "same text + seed -> same bytes".
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.archs import get_arch
from model.checkpoint import CheckpointError, Meta, check_whole, model_from, read_payload
from model.data import group_key
from model.delta import apply_delta, is_delta, load_base
from model.device import DeviceUnavailable, resolve_device
from model.hangul import is_syllable
from model.imaging import SERVER_EMOJI_SIZE, from_premultiplied, renditions, resize
from model.mashup import Mashup, compose, find_mashup
from model.modifiers import Reading, describe, read_modifiers
from model.plan import Plan
from model.prompt import EmptyTextError, clean_text
from model.reading import shared_reader
from model.text import Tokenizer, to_device
from model.upscale import refine, shared_refiner

TOP_P = 0.9  # nucleus over the text encoder's groups: varied, but only among plausible emoji
MAX_CANDIDATES = 4
TEXT_TEMPERATURE = 0.7
MODIFIER_SEED = 0x5EED  # a mashup's second part draws from seed ^ this
# v3 reads "green apple" as 🍏 (one emoji the whole text names surely, and a kind of the base thing), but
# "crying pizza" as pizza + crying (😭 is no kind of pizza)
WHOLE_CONFIDENCE = 0.4
KIND_OF_BASE = 0.01
NO_MODIFIERS = (0, 0, 0)
MAX_BASE_WORDS = 2  # "고양이", "hot dog": longer bases are descriptions or sentences, read as one thing
BASE_CONFIDENCE = 0.1  # the base text must name some emoji at least this surely


@dataclass(frozen=True)
class Drawing:
    """One job's result, computed once: its images, its sticker tag and how its text was read.

    images: the 72-px emoji; large: the same drawings at 320 px (the sticker, and the source of the
    128-px server emoji), cut from the same high-resolution image (`model.imaging.renditions`);
    tag: the emoji the whole text most likely means (a sticker's required tag);
    parts: (base, modifier) when the text was drawn as a mashup, else None.
    """

    images: list[Image.Image]
    tag: str
    parts: tuple[str, str] | None
    large: list[Image.Image] = field(default_factory=list)

    def at_size(self, index: int, size: int) -> Image.Image:
        """Candidate ``index`` at 72, 128 or 320 px (128 and 320 from the large image, never from 72)."""
        if size == 72:
            return self.images[index]
        return resize(self.large[index] if self.large else self.images[index], size)


class TextProbs:
    """p(group | text) memoised for one call, so a job's text is encoded once however often it is read."""

    def __init__(self, compute: Callable[[Sequence[str]], torch.Tensor]):
        self.compute = compute
        self.rows: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.rows]
        if missing:
            self.rows.update(zip(missing, self.compute(missing), strict=True))
        return torch.stack([self.rows[t] for t in texts]) if texts else self.compute([])


def names_a_thing(text: str, reading: Reading) -> bool:
    """A short noun phrase: the base is at most two words and a colour or expression comes before it (as
    adjectives do in Korean and English); accessories may follow ("cat with a crown")."""
    words = reading.base.split()
    if not words or len(words) > MAX_BASE_WORDS:
        return False
    start = text.find(words[0])
    return all(f.span[0] < start for f in reading.found if f.modifier.kind in ("colour", "expression"))


def seed_for(seed: int, sample: int) -> int:
    """One RNG seed per (request seed, sample index)."""
    return (seed * 1_000_003 + sample * 7919 + 12345) % (2**63 - 1)


class Generator:
    """Loads a checkpoint once; turns texts into 72x72 RGBA emoji. Safe to use from one worker thread."""

    upscaler: Path | None = None  # the refiner checkpoint (None: the shipped checkpoints/upscaler.pt)

    def __init__(self, model, meta: Meta, device: torch.device, source: str = "base", identity: str = ""):
        self.model = model
        self.meta = meta
        self.identity = identity  # sha256 of the file it was loaded from: what a server model's delta names
        self.device_obj = device
        self.tokenizer = Tokenizer(model.cfg.text_buckets, meta.emoji_names)
        self.group_emoji: list[str] = meta.group_emoji
        self.group_index = {key: i for i, key in enumerate(meta.groups)}
        self.arch = model.cfg.arch
        self.name = f"{self.arch} · {meta.label}"
        network = get_arch(self.arch).network
        self.sampler = network.sample  # (model, plans, text_vector) -> pixels
        self.composes = bool(getattr(network, "COMPOSES", False))  # v3: draws a thing + modifiers
        self.reader = shared_reader()  # model.reading: what the text side adds to the checkpoint's encoder

    @property
    def device(self) -> str:
        """Where the model runs, index kept: "cpu", "cuda", "cuda:1"."""
        return str(self.device_obj)

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "auto",
        base: Generator | None = None,
    ) -> Generator:
        """Load a checkpoint (None: the shipped one). device: "auto" picks CUDA when available.

        A server model (a delta, model.delta) is applied to `base`, sharing its weights and device, and
        refused (BaseMismatch) if it was fine-tuned from another base; without `base` its own base file
        is loaded first. A whole checkpoint ignores `base`.
        """
        payload, identity = read_payload(path)
        source = Path(path).stem if path else "base"
        if is_delta(payload):
            if base is None:
                dev = resolve_device(device)
                model, meta, base_identity = load_base(payload, path, dev)
                base = cls(model, meta, dev, identity=base_identity)
            model, meta = apply_delta(base.model, base.meta, base.identity, payload, path)
            return cls(model, meta, base.device_obj, source=source, identity=identity)
        dev = resolve_device(device)
        check_whole(payload, path)
        model, meta = model_from(payload, dev)
        return cls(model, meta, dev, source=source, identity=identity)

    clean_text = staticmethod(clean_text)

    # -- the text side --------------------------------------------------------------------------------
    @torch.no_grad()
    def group_probs(self, texts: Sequence[str], reader: bool = True) -> torch.Tensor:
        """(B, groups) p(group | text) on the CPU; reader=False: the checkpoint's text encoder alone.

        One text per call: kernels pick their blocking by shape, so batching texts of different lengths
        could change the last bits of a probability, and with them a sampled group.
        """
        rows = []
        for text in texts:
            group = self.emoji_group(text)
            if group is not None:  # `/emoji 🍕` means exactly that emoji
                rows.append(F.one_hot(torch.tensor(group), len(self.group_emoji)).float())
            elif reader and self.reader is not None:  # model.reading: encoder + semantic index + rules
                rows.append(self.reader.base_probs(text, self._encoder_probs, self.meta.groups))
            else:
                rows.append(self._encoder_probs(text))
        return torch.stack(rows) if rows else torch.zeros(0, len(self.group_emoji))

    def encoder_group_probs(self, texts: Sequence[str]) -> torch.Tensor:
        """The text encoder alone: what the mashup reading's confidence thresholds were measured on."""
        return self.group_probs(texts, reader=False)

    @torch.no_grad()
    def _encoder_probs(self, text: str) -> torch.Tensor:
        """(groups,) the checkpoint's own text encoder alone."""
        logits = self.model.text(to_device(self.tokenizer.encode([text]), self.device_obj))
        return logits[0].float().softmax(-1).cpu()

    def emoji_group(self, text: str) -> int | None:
        """The group of a text that is exactly one known emoji, else None."""
        emoji = self.tokenizer.emoji_only(text)
        if not emoji or len(emoji) != 1:
            return None
        return self.group_index.get(group_key(emoji[0]))

    def related_emoji(self, text: str) -> str:
        """The emoji the text most likely means (a sticker's required tag)."""
        return self.group_emoji[int(self.group_probs([clean_text(text)])[0].argmax())]

    def _candidates(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nucleus of the sharpened group distribution: (group ids, their probabilities)."""
        sharp = probs.clamp_min(1e-12).log().div(TEXT_TEMPERATURE).softmax(-1)
        values, ids = sharp.sort(descending=True)
        keep = int((values.cumsum(0) < TOP_P).sum()) + 1
        keep = max(1, min(keep, MAX_CANDIDATES))
        values = values[:keep]
        return ids[:keep], values / values.sum()

    # -- images -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def text_vector(self, text: str) -> torch.Tensor:
        """(embed_dim,) the text encoder's unit vector for one text (v2 conditions on it)."""
        return self.model.text.embed(to_device(self.tokenizer.encode([text]), self.device_obj))[0]

    def mashup(self, text: str) -> Mashup | None:
        """The two parts if the text asks for a mashup (`A + B`, two emoji, "crying pizza")."""
        return find_mashup(clean_text(text), self.tokenizer, self.encoder_group_probs)

    def composition(self, text: str, probs: Callable[[Sequence[str]], torch.Tensor]) -> Reading | None:
        """v3 only: the text as a thing plus modifiers (model.modifiers), unless the whole text surely names
        one existing emoji that is a kind of that thing ("green apple" is 🍏, "crying cat" is 😿)."""
        if not self.composes:
            return None
        reading = read_modifiers(text)
        if not reading.modifiers or self.emoji_group(text) is not None:
            return None
        if not ("+" in text or self.tokenizer.emoji_only(reading.base)) and not names_a_thing(text, reading):
            return None  # "cant stop laughing", "the spiky green plant in the desert": chat, not a thing
        whole, base = probs([text, reading.base])
        if float(base.max()) < BASE_CONFIDENCE:
            return None  # "cry me a river": no thing to draw the modifier on
        top = int(whole.argmax())
        if top == int(base.argmax()):
            return reading  # the whole text reads as the bare thing: the modifier is all that is new
        if float(whole[top]) >= WHOLE_CONFIDENCE and float(base[top]) >= KIND_OF_BASE:
            return None
        return reading

    @torch.no_grad()
    def draw(self, jobs: Sequence[tuple[str, int, int]]) -> list[Drawing]:
        """Each job is (text, count, seed); returns one `Drawing` per job, in order.

        v3 draws a thing with its modifiers in one pass ("왕관 쓴 고양이": the cat wearing the crown). A
        mashup job of v1/v2, or one whose second part is no modifier v3 knows, draws each image twice (base
        and badge, from their own texts and seed streams) and composes them; every other job draws once.
        """
        probs = TextProbs(self.group_probs)
        texts = [clean_text(text) for text, _, _ in jobs]
        readings = [self.composition(t, probs) for t in texts]
        mashups = [
            None if reading else find_mashup(t, self.tokenizer, TextProbs(self.encoder_group_probs))
            for t, reading in zip(texts, readings, strict=True)
        ]
        # every drawing: (text, seed, sample index, modifiers); a badge gets its own seed stream
        draws: list[tuple[str, int, int, tuple[int, int, int]]] = []
        for text, reading, mash, (_, count, seed) in zip(texts, readings, mashups, jobs, strict=True):
            for k in range(count):
                if reading:
                    draws.append((reading.base, int(seed), k, reading.modifiers.ids()))
                elif mash:
                    draws += [
                        (mash.base, int(seed), k, NO_MODIFIERS),
                        (mash.modifier, int(seed) ^ MODIFIER_SEED, k, NO_MODIFIERS),
                    ]
                else:
                    draws.append((text, int(seed), k, NO_MODIFIERS))
        pixels = self._draw(draws, probs) if draws else np.zeros((0, 4, 72, 72), np.float32)
        high = [from_premultiplied(p) for p in self.refine(pixels)]
        out, i = [], 0
        for text, reading, mash, (_, count, _) in zip(texts, readings, mashups, jobs, strict=True):
            small, large = [], []
            for _ in range(count):
                if mash:
                    emoji, sticker = renditions(compose(high[i], high[i + 1]))
                    i += 2
                else:
                    emoji, sticker = renditions(high[i])
                    i += 1
                small.append(emoji)
                large.append(sticker)
            tag = self.group_emoji[int(probs([text])[0].argmax())]
            parts = (mash.base, mash.modifier) if mash else None
            if reading:
                lang = "ko" if any(map(is_syllable, text)) else "en"
                parts = (reading.base, describe(reading.modifiers, lang))
            out.append(Drawing(small, tag, parts, large))
        return out

    def refine(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 4, 72, 72) -> (N, 4, 288, 288) premultiplied, by the shared learned upscaler.

        One image at a time on the CPU: a convolution's blocking depends on the batch, and an image must
        not change by a bit with what else was drawn alongside it.
        """
        refiner = shared_refiner(self.device, self.upscaler)
        chunk = 1 if self.device_obj.type == "cpu" else 64
        return refine(refiner, torch.from_numpy(np.ascontiguousarray(pixels)), batch=chunk).numpy()

    def generate_batch(self, jobs: Sequence[tuple[str, int, int]]) -> list[list[Image.Image]]:
        """Each job's `count` images, in order (`draw` without the tags and readings)."""
        return [drawing.images for drawing in self.draw(jobs)]

    def _draw(self, draws: Sequence[tuple], text_probs: TextProbs) -> np.ndarray:
        """(N, 4, 72, 72) premultiplied pixels, one per (text, seed, sample index[, modifier ids])."""
        distinct = sorted({d[0] for d in draws})
        candidates = {t: self._candidates(p) for t, p in zip(distinct, text_probs(distinct), strict=True)}
        plans: list[Plan] = []
        for text, seed, k, *rest in draws:
            ids, weights = candidates[text]
            rng = torch.Generator().manual_seed(seed_for(seed, k))
            pick = int(torch.multinomial(weights, 1, generator=rng))
            plans.append(Plan(text, int(ids[pick]), rng, tuple(rest[0]) if rest else NO_MODIFIERS))
        return self.sampler(self.model, plans, self.text_vector)

    def generate(self, texts: list[str], count: int = 1, seed: int | None = None) -> list[list[Image.Image]]:
        """count images for every text; a fixed seed gives the same images every time."""
        if count < 1:
            raise ValueError("count must be at least 1")
        seed = secrets.randbelow(2**31) if seed is None else seed
        return self.generate_batch([(text, count, seed) for text in texts])


# ---------------------------------------------------------------------------------------------- CLI


MAX_COUNT = 16  # emoji-gen --count: 16 images per prompt take seconds; more is a loop over --seed


class InputError(ValueError):
    """A command-line input emoji-gen cannot use; the message names it and says what to do (exit 2)."""


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts given as arguments, then the non-blank lines of ``--prompts-file``."""
    prompts = list(args.text)
    if args.prompts_file:
        path = Path(args.prompts_file)
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: Notepad's BOM is no prompt
        except FileNotFoundError:
            raise InputError(f"--prompts-file {path}: no such file") from None
        except IsADirectoryError:
            raise InputError(
                f"--prompts-file {path} is a folder; give a text file, one prompt a line"
            ) from None
        except UnicodeDecodeError as exc:
            raise InputError(
                f"--prompts-file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                f"{exc.start}); give a text file saved as UTF-8, one prompt a line"
            ) from None
        except OSError as exc:
            raise InputError(f"--prompts-file {path}: cannot read it ({exc.strerror or exc})") from None
        prompts += [line for line in lines if line.strip()]
    return prompts


def prepare_out(out: Path) -> None:
    """Create the output folder before the model loads, so a bad ``--out`` fails in a second."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoji-gen",
        description="Turn text into emoji PNGs: DIR/{prompt:04d}_{sample}.png, one per prompt and sample.",
        epilog="example: emoji-gen 축하해 'pizza party' --count 2 --seed 7 --out out/",
    )
    parser.add_argument("text", nargs="*", help="prompts, e.g. 축하해 'pizza party' '🐱 + 👑'")
    parser.add_argument(
        "--prompts-file", metavar="FILE", help="more prompts: a UTF-8 text file, one prompt a line"
    )
    parser.add_argument(
        "--count", type=int, default=1, metavar="K", help=f"images per prompt, 1 to {MAX_COUNT} (default: 1)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="same prompts + seed give identical files (default: a random seed, printed at the end)",
    )
    parser.add_argument(
        "--out", default="out", metavar="DIR", help="output folder, created if missing (default: out)"
    )
    parser.add_argument(
        "--size",
        type=int,
        choices=[72, SERVER_EMOJI_SIZE, 320],
        default=72,
        help="72 (emoji), 128 (server emoji upload) or 320 (sticker) pixels square; 128 and 320 are cut "
        "from the refiner's high-resolution image, not scaled up from 72 (default: 72)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="model file (default: the shipped checkpoints/base.pt)",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the model runs; auto: CUDA if available, else CPU (default: auto)",
    )
    return parser


def fail(message: str, status: int = 2) -> NoReturn:
    """One line on stderr, argparse's style, and exit: a user needs what went wrong, not a traceback."""
    print(f"emoji-gen: error: {message}", file=sys.stderr)
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    try:
        prompts = read_prompts(args)
        if not prompts:
            parser.error("give at least one prompt, e.g. emoji-gen 축하해")
        if not 1 <= args.count <= MAX_COUNT:
            raise InputError(
                f"--count must be 1 to {MAX_COUNT} images per prompt, not {args.count}"
                + ("; for more, run again with another --seed" if args.count > MAX_COUNT else "")
            )
        prompts = [clean_text(p) for p in prompts]
        device = resolve_device(args.device)
        out = Path(args.out)
        prepare_out(out)
        generator = Generator.load(args.checkpoint, device)
    except DeviceUnavailable as exc:
        fail(f"--device {exc}")
    except (InputError, EmptyTextError, CheckpointError) as exc:
        fail(str(exc))
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    for start in range(0, len(prompts), 64):
        chunk = prompts[start : start + 64]
        drawings = generator.draw([(text, args.count, seed) for text in chunk])
        for i, drawing in enumerate(drawings, start=start):
            for k in range(len(drawing.images)):
                path = out / f"{i:04d}_{k}.png"
                try:
                    drawing.at_size(k, args.size).save(path)
                except OSError as exc:  # disk full, folder removed meanwhile: not an input error
                    fail(f"cannot write {path}: {exc.strerror or exc}", status=1)
    print(f"wrote {len(prompts) * args.count} image(s) to {out}/ (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
