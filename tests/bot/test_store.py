"""Server training storage on a real SQLite file: uploads checked, duplicates refused, crashes survived."""

from __future__ import annotations

import io
import os
import queue
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bot.store import (
    INTERRUPTED,
    DuplicateImage,
    DuplicateName,
    LimitReached,
    RunAlreadyActive,
    SubmissionStore,
)
from bot.validation import InvalidImage, normalise
from tests.support import ROOT

REPO = ROOT
LIMIT = 2 * 1024 * 1024
GUILD, OTHER, ADMIN = 1111, 2222, 42


# --------------------------------------------------------------------------------------- images


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def picture(colour=(220, 40, 40, 255), size=(64, 64), mark: int = 0) -> Image.Image:
    """A simple opaque picture; ``mark`` changes a few pixels so images differ."""
    image = Image.new("RGBA", size, colour)
    for i in range(mark):
        image.putpixel((i % size[0], (i * 7) % size[1]), (0, 0, 255, 255))
    return image


def png_header_only(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of width×height whose pixels are all zero (tiny when compressed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    data = png_header_only(20_000, 20_000)
    assert len(data) < LIMIT  # small on disk: only the pixel count gives it away
    return data


# --------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"lossless": True}), ("GIF", {})],
)
def test_supported_formats_become_72px_rgba(fmt, options):
    source = picture(size=(100, 50))
    if fmt == "JPEG":
        source = source.convert("RGB")
    checked = normalise(encode(source, fmt, **options), max_bytes=LIMIT)

    image = checked.image()
    assert (image.size, image.mode) == ((72, 72), "RGBA")
    assert image.getpixel((36, 36))[3] == 255  # the picture, centred
    assert image.getpixel((36, 2))[3] == 0  # square-padded with transparency above and below
    assert checked.source_size == (100, 50) and checked.source_format == fmt


def test_animated_gif_uses_its_first_frame():
    frames = [picture((255, 0, 0, 255)), picture((0, 0, 255, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    red, green, blue, _ = normalise(data, max_bytes=LIMIT).image().getpixel((36, 36))
    assert red > 200 and blue < 50


def test_corrupt_png_is_refused():
    data = encode(picture())
    corrupt = data[:60] + bytes(b ^ 0xFF for b in data[60:120]) + data[120:]
    with pytest.raises(InvalidImage, match="damaged"):
        normalise(corrupt, max_bytes=LIMIT)


def test_truncated_png_is_refused():
    data = encode(picture(mark=30))
    with pytest.raises(InvalidImage, match="damaged"):
        normalise(data[: len(data) // 2], max_bytes=LIMIT)


def test_text_file_named_png_is_refused():
    with pytest.raises(InvalidImage, match="isn't an image"):
        normalise(b"hello, I am definitely a picture\n" * 20, max_bytes=LIMIT)


def test_svg_is_refused_with_advice():
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="72" height="72"></svg>'
    with pytest.raises(InvalidImage, match="SVG"):
        normalise(svg, max_bytes=LIMIT)


def test_decompression_bomb_is_refused_before_decoding(huge_png):
    started = time.perf_counter()
    with pytest.raises(InvalidImage, match="20000×20000|too many pixels"):
        normalise(huge_png, max_bytes=LIMIT)
    assert time.perf_counter() - started < 2  # refused from the header, never decoded


def test_over_the_size_limit_is_refused():
    data = encode(picture())
    with pytest.raises(InvalidImage, match="limit"):
        normalise(data, max_bytes=len(data) - 1)


def test_fully_transparent_image_is_refused():
    with pytest.raises(InvalidImage, match="transparent"):
        normalise(encode(Image.new("RGBA", (64, 64))), max_bytes=LIMIT)


# --------------------------------------------------------------------------------------- store


@pytest.fixture
def store(tmp_path) -> SubmissionStore:
    opened = SubmissionStore(tmp_path / "data").open()
    yield opened
    opened.close()


def add(store, name, mark=0, guild=GUILD, **kw):
    return store.add(
        guild, name, normalise(encode(picture(mark=mark)), max_bytes=LIMIT), ADMIN, limit=500, **kw
    )


def test_database_is_a_real_sqlite_file_in_wal_mode(store):
    add(store, "party parrot")
    assert store.path.is_file()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT name FROM submissions").fetchall() == [("party parrot",)]


def test_submissions_survive_reopening(tmp_path):
    first = SubmissionStore(tmp_path / "data").open()
    add(first, "우리팀 마스코트", mark=1)
    add(first, "party parrot", mark=2)
    first.close()

    again = SubmissionStore(tmp_path / "data").open()
    assert [s.name for s in again.page(GUILD, 0, 10)] == ["party parrot", "우리팀 마스코트"]
    stored = again.get(GUILD, "PARTY PARROT")
    assert stored is not None and Image.open(io.BytesIO(stored.png)).size == (72, 72)
    again.close()


def test_duplicate_name_is_refused_case_insensitively(store):
    add(store, "Party Parrot", mark=1)
    with pytest.raises(DuplicateName, match="already a training emoji named \\*\\*Party Parrot"):
        add(store, "party  parrot", mark=2)
    assert store.count(GUILD) == 1


def test_duplicate_image_is_refused_even_when_re_encoded(store):
    add(store, "one", mark=3)
    same_pixels = encode(picture(mark=3), optimize=True, compress_level=1)
    with pytest.raises(DuplicateImage, match="already stored as \\*\\*one"):
        store.add(GUILD, "two", normalise(same_pixels, max_bytes=LIMIT), ADMIN, limit=500)
    assert store.count(GUILD) == 1


def test_limit_per_guild(store):
    for i in range(3):
        store.add(GUILD, f"e{i}", normalise(encode(picture(mark=i)), max_bytes=LIMIT), ADMIN, limit=3)
    with pytest.raises(LimitReached, match="limit is 3"):
        store.add(GUILD, "e3", normalise(encode(picture(mark=9)), max_bytes=LIMIT), ADMIN, limit=3)
    assert store.add(OTHER, "e3", normalise(encode(picture(mark=9)), max_bytes=LIMIT), ADMIN, limit=3)


def test_guilds_never_see_each_other(store):
    add(store, "secret", mark=1, guild=GUILD)
    add(store, "secret", mark=1, guild=OTHER)  # same name and image: fine in another guild
    add(store, "mine", mark=2, guild=OTHER)

    assert [s.name for s in store.all(GUILD)] == ["secret"]
    assert store.get(GUILD, "mine") is None
    assert store.remove(GUILD, "mine") is None
    assert store.count(OTHER) == 2


def test_remove(store):
    add(store, "gone", mark=1)
    removed = store.remove(GUILD, "GONE")
    assert removed is not None and removed.name == "gone"
    assert store.count(GUILD) == 0


def test_one_running_run_per_guild(store):
    store.start_run(GUILD, ADMIN, submissions=1, total_steps=10)
    with pytest.raises(RunAlreadyActive):
        store.start_run(GUILD, ADMIN, submissions=1, total_steps=10)
    store.start_run(OTHER, ADMIN, submissions=1, total_steps=10)


def test_checkpoint_paths_come_from_integer_ids_only(store):
    path = store.checkpoint_path(GUILD, 7)
    assert path == store.models_dir / "1111" / "run-7.pt"
    for bad in ("../../etc", "1111", -1, 0, True):
        with pytest.raises(ValueError):
            store.checkpoint_path(bad, 7)  # type: ignore[arg-type]


def test_success_points_the_guild_at_its_checkpoint_and_prunes_the_old_one(store):
    first = store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)
    store.checkpoint_path(GUILD, first.id).parent.mkdir(parents=True)
    store.checkpoint_path(GUILD, first.id).write_bytes(b"one")
    store.finish_run(first.id, "succeeded", steps=5, loss=0.5, seconds=1.0)
    second = store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)
    store.checkpoint_path(GUILD, second.id).write_bytes(b"two")
    store.finish_run(second.id, "succeeded", steps=5, loss=0.4, seconds=1.0)
    store.prune_checkpoints(GUILD)

    assert store.model_path(GUILD) == store.checkpoint_path(GUILD, second.id)
    assert sorted(p.name for p in store.checkpoint_path(GUILD, 1).parent.iterdir()) == [f"run-{second.id}.pt"]
    assert store.model_path(OTHER) is None


def test_success_without_a_checkpoint_file_is_refused(store):
    run = store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)
    with pytest.raises(FileNotFoundError):
        store.finish_run(run.id, "succeeded")
    assert store.model_path(GUILD) is None


def test_recover_marks_running_runs_failed_and_removes_half_written_files(store):
    good = store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)
    store.checkpoint_path(GUILD, good.id).parent.mkdir(parents=True)
    store.checkpoint_path(GUILD, good.id).write_bytes(b"good")
    store.finish_run(good.id, "succeeded")
    crashed = store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)
    half = store.checkpoint_path(GUILD, crashed.id).with_name(f"run-{crashed.id}.pt1234.tmp")
    half.write_bytes(b"half")

    (recovered,) = store.recover()

    assert recovered.id == crashed.id
    after = store.run(crashed.id)
    assert after is not None and after.status == "failed" and after.error == INTERRUPTED
    assert not half.exists()
    assert store.model_path(GUILD) == store.checkpoint_path(GUILD, good.id)
    assert store.checkpoint_path(GUILD, good.id).read_bytes() == b"good"


def test_forget_model(store):
    run = store.start_run(GUILD, ADMIN, submissions=1, total_steps=5)
    path = store.checkpoint_path(GUILD, run.id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x")
    store.finish_run(run.id, "succeeded")

    assert store.forget_model(GUILD)
    assert store.model_path(GUILD) is None and not path.exists()
    assert not store.forget_model(GUILD)


# --------------------------------------------------------------------------------------- crash


BOT_SCRIPT = textwrap.dedent(
    """
    import asyncio, io, sys, time
    from pathlib import Path
    from PIL import Image
    from bot.config import Config
    from bot.guild_models import GuildModels, model_loader
    from bot.store import SubmissionStore
    from bot.training import TrainingManager
    from bot.validation import normalise

    class Worker:  # what GuildModels needs from GenerationWorker
        def set_generator(self, guild_id, generator):
            print("SERVING", guild_id, generator.name, flush=True)

    async def main(data_dir, base):
        config = Config(data_dir=Path(data_dir), checkpoint=Path(base), device="cpu", finetune_steps=3)
        store = SubmissionStore(config.data_dir).open()
        for i, colour in enumerate([(255, 0, 0, 255), (0, 200, 0, 255), (0, 0, 255, 255)]):
            buf = io.BytesIO()
            Image.new("RGBA", (40, 40), colour).save(buf, "PNG")
            store.add(1111, f"mascot {i}", normalise(buf.getvalue(), max_bytes=2**21), 42, limit=500)
        manager = TrainingManager(config, store, GuildModels(store, Worker(), model_loader("cpu")))
        first = await manager.start(1111, 42)
        await first.done
        print("FIRST", first.outcome, flush=True)
        long = Config(data_dir=Path(data_dir), checkpoint=Path(base), device="cpu", finetune_steps=100000)
        manager.config = long
        manager._total_steps = lambda names: 100000
        second = await manager.start(1111, 42)
        while second.step < 2:
            assert not second.done.done(), second.error
            await asyncio.sleep(0.05)
        print("TRAINING", second.process.pid, flush=True)
        await asyncio.sleep(3600)

    if __name__ == "__main__":  # the spawned trainer imports this file again
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.slow
def test_sigkill_during_training_loses_nothing(tmp_path, tiny_checkpoint):
    """A real bot-like process is SIGKILLed mid-fine-tune; a restart finds everything in order."""
    data_dir = tmp_path / "data"
    script = tmp_path / "bot_like.py"
    script.write_text(BOT_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), str(tiny_checkpoint)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True).start()
    seen = []
    try:
        while not (seen and seen[-1].startswith("TRAINING")):
            try:
                seen.append(lines.get(timeout=120))
            except queue.Empty:
                proc.kill()
                pytest.fail(f"no progress: {seen}\n{proc.stderr.read()}")
        lines = seen
        child = int(lines[-1].split()[1])
        assert any(line.startswith("FIRST succeeded") for line in lines)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # The orphaned trainer notices its parent is gone and stops at its next step.
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the training process outlived the bot"

    # Restart: everything submitted is there, the run is failed, the first model still serves.
    from bot.guild_models import GuildModels, model_loader

    served = {}

    class Worker:
        def set_generator(self, guild_id, generator):
            served[guild_id] = generator

    store = SubmissionStore(data_dir).open()
    try:
        assert [s.name for s in store.all(GUILD)] == ["mascot 0", "mascot 1", "mascot 2"]
        report = GuildModels(store, Worker(), model_loader("cpu")).restore()
        first, second = store.runs(GUILD)
        assert (first.status, second.status) == ("succeeded", "failed")
        assert second.error == INTERRUPTED
        assert report == {GUILD: "loaded"}
        assert served[GUILD].name.endswith(f"server run {first.id}")
        assert sorted(p.name for p in store.models_dir.joinpath(str(GUILD)).iterdir()) == [
            f"run-{first.id}.pt"
        ]
        assert served[GUILD].generate_batch([("mascot 1", 1, 0)])[0][0].size == (72, 72)
    finally:
        store.close()
