"""What a new user does first: start ``chatwire demo`` (a real process), open the link it
prints in a browser, and chat with the demo's Mistral, the reply growing as it streams."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.test_cli import make_cli
from tests.test_demo import banner_of
from tests.test_serve import Launch, free_port, launcher
from tests.web.conftest import LOOP, NewPage, chat_page_ready

pytestmark = pytest.mark.asyncio(loop_scope=LOOP)

LINK = re.compile(r"^(http://127\.0\.0\.1:\d+/)#signin=[\w-]+$", re.MULTILINE)

# Records each new length of the last reply's text, and when the reply stopped streaming.
GROWTH = """() => {
    window.replyLengths = [];
    new MutationObserver(() => {
        const bodies = document.querySelectorAll(".message.assistant .body");
        if (bodies.length === 0) return;
        const length = bodies[bodies.length - 1].innerText.length;
        const lengths = window.replyLengths;
        if (lengths.length === 0 || lengths[lengths.length - 1] !== length) lengths.push(length);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    with launcher(tmp_path) as start:
        yield start


async def test_the_demo_s_link_opens_the_chat_page_signed_in_and_a_reply_streams(
    tmp_path: Path, launch: Launch, new_page: NewPage
) -> None:
    port = free_port()
    served = launch(make_cli(tmp_path), "demo", "--port", str(port), port=port)
    found = LINK.search(await banner_of(served))
    assert found is not None, served.stderr()
    assert found.group(1) == f"{served.url}/"
    page = await new_page()
    await page.goto(found.group(0))
    await chat_page_ready(page)  # signed in by the link alone: no token pasted
    assert page.url == f"{served.url}/"  # the one-time code left the address bar
    await page.evaluate(GROWTH)
    await page.get_by_label("Model").select_option("mistral/mistral-small-latest")
    await page.get_by_label("Message").fill("Hi from the demo")
    await page.get_by_label("Message").press("Enter")
    reply = page.locator(".message.assistant .body")
    # The demo's Mistral sends a word every 80 ms after 0.3 s, ending with what it was told.
    await expect(reply).to_have_text(
        re.compile(r"^Hello.*You said: Hi from the demo$", re.S), timeout=20000
    )
    lengths = await page.evaluate("window.replyLengths")
    assert len(lengths) > 3, lengths  # seen growing, not all at once
    assert lengths == sorted(lengths), lengths
