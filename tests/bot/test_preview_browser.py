"""``emoji-bot preview`` in a real browser: headless Chromium driven over the DevTools protocol.

The preview runs as the real CLI in a subprocess; Chromium is driven through CDP with aiohttp's
websocket client (no browser-automation dependency). Each test types into the page's slash-command
composer and clicks buttons as a person would, then asserts on what the page shows.

Set ``PREVIEW_SCREENSHOT=docs/preview.png`` to keep a screenshot of the page after a generation
(``scripts/preview_screenshot.py`` does that).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.bot.test_preview import PreviewProcess
from tests.support import BASE_CHECKPOINT

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,860",
    "--remote-debugging-port=0",
]
WAIT_S = 30.0  # generous: the CPU may be shared with a training run


def _browser_missing() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} not found (Debian: apt-get install chromium; scripts/test.sh installs it)"
    if not BASE_CHECKPOINT.exists():
        return "checkpoints/base.pt is not trained yet"
    return None


_MISSING = _browser_missing()
if _MISSING is not None:
    # A warning shows in pytest's summary even with -q, so the skip is never silent.
    warnings.warn(f"browser tests of `emoji-bot preview` skipped: {_MISSING}", stacklevel=1)
    pytest.skip(_MISSING, allow_module_level=True)


class Chromium:
    """Just enough of the Chrome DevTools Protocol: evaluate, type, attach files, screenshot."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.console: list[str] = []

    async def start(self) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="preview-chromium-")
        self._proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={self._profile.name}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so close() can end its helpers too
        )
        assert self._proc.stderr is not None
        ws_url = None
        async with asyncio.timeout(WAIT_S):
            while ws_url is None:
                line = (await self._proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise RuntimeError("Chromium exited before opening DevTools")
                if match := re.search(r"ws://\S+", line):
                    ws_url = match.group(0)
        self._drain = asyncio.create_task(self._proc.stderr.read())  # keep its pipe from filling
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(ws_url, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        targets = await self.send("Target.getTargets")
        page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        attached = await self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self._session = attached["sessionId"]
        await self.send("Runtime.enable", page=True)
        await self.send("Page.enable", page=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # it may be gone already
            await asyncio.wait_for(self.send("Browser.close"), 5)
        self._reader.cancel()
        await self._ws.close()
        await self._http.close()
        with contextlib.suppress(ProcessLookupError):  # helpers such as crashpad outlive the browser
            os.killpg(self._proc.pid, signal.SIGTERM)
        await self._proc.wait()
        self._drain.cancel()
        self._profile.cleanup()

    async def _read(self) -> None:
        async for message in self._ws:
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(data["params"]["exceptionDetails"])[:500])

    async def send(self, method: str, *, page: bool = False, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if page:
            message["sessionId"] = self._session
        await self._ws.send_str(json.dumps(message))
        async with asyncio.timeout(WAIT_S):
            reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def js(self, expression: str) -> Any:
        """Evaluate in the page and return the (JSON) value."""
        reply = await self.send(
            "Runtime.evaluate", page=True, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"page error in {expression[:80]!r}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = WAIT_S) -> Any:
        """Poll ``expression`` until it is truthy; fail with ``what`` and the page's text."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        probe = f"(() => {{ const v = ({expression}); return v instanceof Node ? true : v; }})()"
        while True:
            value = await self.js(probe)
            if value:
                return value
            if loop.time() > deadline:
                text = await self.js("document.body.innerText")
                raise AssertionError(f"timed out waiting for {what}; the page shows:\n{text[-3000:]}")
            await asyncio.sleep(0.1)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", page=True, url=url)
        await self.wait_for("document.readyState === 'complete'", "the page to load")

    async def type(self, text: str) -> None:
        """Type into the focused element, as an input method would."""
        await self.send("Input.insertText", page=True, text=text)

    async def set_file(self, selector: str, path: Path) -> None:
        document = await self.send("DOM.getDocument", page=True)
        node = await self.send(
            "DOM.querySelector", page=True, nodeId=document["root"]["nodeId"], selector=selector
        )
        await self.send("DOM.setFileInputFiles", page=True, nodeId=node["nodeId"], files=[str(path)])

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", page=True, format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


# ------------------------------------------------------------------------------- page helpers

MESSAGES = "[...document.querySelectorAll('#channel-message-list [data-message-id]')]"


async def click(page: Chromium, element: str, what: str) -> None:
    """Click ``element`` (a JS expression) as soon as it exists and is enabled."""
    await page.wait_for(
        f"(() => {{ const e = {element}; if (!e || e.disabled) return false; e.click(); return true; }})()",
        what,
    )


async def run_slash(page: Chromium, command: str, **options: Any) -> None:
    """Type ``/command`` in the composer, pick it, fill each option (a Path: a file to attach), send."""
    await page.js("document.getElementById('channel-composer-input').focus()")
    await page.type(f"/{command}")
    key = command.replace(" ", ".")  # the picker keys subcommands as group.sub
    entry = f"document.querySelector('[data-entry-key$=\":{key}\"]')"
    await click(page, entry, f"/{command} in the command picker")
    ready = "document.querySelector('.command-row[aria-busy=\"false\"]')"
    await page.wait_for(f"document.querySelector('.command-chip') && {ready}", "command mode")
    for name, value in options.items():
        field = f"document.querySelector('.command-option-input[data-option=\"{name}\"]')"
        if isinstance(value, Path):
            field = f"document.querySelector('input[type=file][data-option=\"{name}\"]')"
        if not await page.js(f"!!{field}"):
            await click(page, "document.querySelector('.command-ghost')", "the '+ more options' button")
            choice = (
                "[...document.querySelectorAll('.command-popup [role=option]')]"
                f".find(e => e.innerText.trim().split('\\n')[0] === '{name}')"
            )
            await click(page, choice, f"option {name} in the options list")
        if isinstance(value, Path):
            await page.wait_for(field, f"the {name} file input")
            await page.set_file(f'input[type=file][data-option="{name}"]', value)
            continue
        focus = f"(() => {{ const e = {field}; e?.focus(); return !!e && document.activeElement === e; }})()"
        await page.wait_for(focus, f"the {name} field to take focus")
        await page.type(str(value))
    await click(page, "document.getElementById('send-message')", "the send button")
    await page.wait_for("!document.querySelector('.command-chip')", f"/{command} to be sent")


async def has_command(page: Chromium, command: str) -> bool:
    """Whether the composer's command picker offers ``/command`` to the current member."""
    composer = "document.getElementById('channel-composer-input')"
    await page.js(f"{composer}.focus()")
    await page.type("/")
    await page.wait_for("document.querySelector('[data-entry-key]')", "the command picker")
    key = command.replace(" ", ".")
    found = await page.js(f"!!document.querySelector('[data-entry-key$=\":{key}\"]')")
    await page.js(f"{composer}.value = ''; {composer}.dispatchEvent(new Event('input', {{bubbles: true}}))")
    return found


async def message_count(page: Chromium) -> int:
    return await page.js(f"{MESSAGES}.length")


async def wait_for_message(page: Chromium, after: int, has: str, what: str) -> dict[str, Any]:
    """The first message past index ``after`` whose text includes ``has``: its text and images."""
    found = await page.wait_for(
        f"""(() => {{
            const m = {MESSAGES}.slice({after}).find(m => m.innerText.includes({json.dumps(has)}));
            if (!m) return null;
            const imgs = [...m.querySelectorAll('img')];
            if (imgs.some(i => !i.complete || !i.naturalWidth)) return null;  // still decoding
            return {{id: m.dataset.messageId, text: m.innerText,
                     images: imgs.map(i => [i.alt, i.naturalWidth, i.naturalHeight])}};
        }})()""",
        what,
    )
    return found


async def click_button(page: Chromium, message_id: str, label: str) -> None:
    button = (
        f"[...document.querySelectorAll('[data-message-id=\"{message_id}\"] button')]"
        f".find(b => b.innerText.includes({json.dumps(label)}))"
    )
    await click(page, button, f"an enabled {label!r} button")


async def act_as(page: Chromium, name: str) -> None:
    """Pick the member in the page's "Viewing as" list (the one who runs commands and clicks)."""
    picker = "document.getElementById('viewer-picker')"
    await page.wait_for(
        f"[...{picker}.options].some(o => o.textContent.trim() === '{name}')",
        f"{name} in the 'Viewing as' list",
    )
    if await page.js(f"{picker}.selectedOptions[0].textContent.trim() === '{name}'"):
        return
    await page.js(
        f"""(() => {{
            const option = [...{picker}.options].find(o => o.textContent.trim() === {json.dumps(name)});
            {picker}.value = option.value;
            {picker}.dispatchEvent(new Event('change', {{bubbles: true}}));
        }})()"""
    )
    # The page reloads its view for the new member: its status reads "Switching viewer…", then settles.
    status = "document.getElementById('action-status').innerText"
    with contextlib.suppress(AssertionError):  # a fast switch may finish before the first look
        await page.wait_for(f"{status}.endsWith('…')", "the viewer switch to start", timeout=2)
    await page.wait_for(f"!{status}.endsWith('…')", f"the page to reload as {name}")


def seed_of(text: str) -> int:
    match = re.search(r"Seed\s+(\d+)", text)
    assert match, text
    return int(match.group(1))


def big_images(message: dict[str, Any]) -> list[list[Any]]:
    return [image for image in message["images"] if image[1:] == [320, 320]]


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def preview_url(tmp_path_factory) -> str:
    with PreviewProcess(tmp_path_factory.mktemp("preview")) as process:
        yield process.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    page = Chromium()
    await page.start()
    yield page
    await page.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Chromium, preview_url: str) -> Chromium:
    await browser.goto(preview_url)
    await browser.wait_for("document.getElementById('channel-composer-input')", "the channel composer")
    await act_as(browser, "Admin")
    return browser


# ------------------------------------------------------------------------------- tests


async def test_emoji_shows_the_320px_result_and_reroll_draws_a_new_one(page: Chromium):
    before = await message_count(page)

    await run_slash(page, "emoji", text="축하해", count=2, seed=42)

    first = await wait_for_message(page, before, "Reroll", "the /emoji result")
    assert "축하해" in first["text"] and seed_of(first["text"]) == 42
    assert big_images(first), first["images"]  # the 320×320 grid of both candidates, decoded
    assert "Pick 2" in first["text"]  # count=2: one pick button per candidate

    await click_button(page, first["id"], "Reroll")

    second = await wait_for_message(page, before + 1, "Reroll", "the rerolled result")
    assert second["id"] != first["id"]
    assert "축하해" in second["text"] and seed_of(second["text"]) != 42
    assert big_images(second), second["images"]
    assert not page.console, page.console

    if target := os.environ.get("PREVIEW_SCREENSHOT"):  # scripts/preview_screenshot.py
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            page=True,
            width=1280,
            height=1040,
            deviceScaleFactor=1,
            mobile=False,
        )
        await page.js(f"{MESSAGES}.at(-1).scrollIntoView({{block: 'end'}})")
        await asyncio.sleep(0.5)
        await page.screenshot(Path(target))
        await page.send("Emulation.clearDeviceMetricsOverride", page=True)


async def test_admin_adds_the_emoji_to_the_server_and_a_member_may_not(page: Chromium):
    before = await message_count(page)
    await run_slash(page, "emoji", text="축하해", seed=7)
    result = await wait_for_message(page, before, "Add as server emoji", "the /emoji result")
    assert big_images(result), result["images"]

    await click_button(page, result["id"], "Add as server emoji")
    added = await wait_for_message(page, before + 1, "Added", "the admin's confirmation")
    assert ":chukhahae" in added["text"]
    assert "Custom emoji unavailable" not in added["text"]  # the new emoji renders as its image

    listed_at = await message_count(page)
    await run_slash(page, "server-emoji")
    listing = await wait_for_message(page, listed_at, "custom emoji", "the server's emoji list")
    assert ":chukhahae" in listing["text"] and "1/" in listing["text"]
    assert any(alt == "server_emoji.png" and w >= 128 for alt, w, _ in listing["images"]), listing

    buttons = f"[...document.querySelectorAll('[data-message-id=\"{result['id']}\"] button')]"
    await page.wait_for(
        f"{buttons}.some(b => b.innerText.includes('Added :chukhahae:') && b.disabled)",
        "the emoji button turned into a disabled 'Added :chukhahae:'",
    )

    await act_as(page, "Member")
    refused_at = await message_count(page)  # the admin's private confirmation is gone from view
    # The emoji button now reads "Added :chukhahae:" and is disabled; the sticker one is still open.
    await click_button(page, result["id"], "Add as sticker")
    refused = await wait_for_message(page, refused_at, "Create Expressions", "the member's refusal")
    assert "You need" in refused["text"]


async def test_an_attachment_option_takes_a_local_file(page: Chromium, tmp_path: Path):
    """Generic attachment options (here server training's `/emoji-train add`, once it is registered)."""
    if not await has_command(page, "emoji-train add"):
        pytest.skip("/emoji-train add is not registered in the bot's tree")
    from PIL import Image, ImageDraw

    picture = tmp_path / "mascot.png"
    image = Image.new("RGBA", (128, 128), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((8, 8, 120, 120), fill=(255, 190, 0, 255))
    image.save(picture)
    before = await message_count(page)

    await run_slash(page, "emoji-train add", name="마스코트", image=picture)

    added = await wait_for_message(page, before, "마스코트", "the training emoji's confirmation")
    assert "Added" in added["text"], added["text"]
    assert added["images"], added  # the uploaded picture, shown back decoded
