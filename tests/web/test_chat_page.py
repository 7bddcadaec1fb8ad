"""The chat page in a real browser: sign in, a reply that grows as it streams, Stop that
cancels the upstream, errors shown as chatwire words them, past chats on the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from playwright.async_api import Page, expect

from tests.conftest import Running, ServerFactory
from tests.web.conftest import NewPage, chat_page_ready, sign_in, slow_fake

WORDS = " ".join(f"word{n}" for n in range(1, 41))


async def ask(page: Page, text: str, model: str = "mistral/mistral-small-latest") -> None:
    await page.get_by_label("Model").select_option(model)
    await page.get_by_label("Message").fill(text)
    await page.get_by_label("Message").press("Enter")


async def test_a_reply_grows_as_it_streams(
    make_server: ServerFactory, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    upstream = await slow_fake(WORDS, token_delay=0.04)
    try:
        server = await make_server(mistral_base_url=upstream.base_url)
        page = await new_page()
        await sign_in(page, server)
        await ask(page, "Count for me")
        reply = page.locator(".message.assistant .body").last
        lengths: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < 10:
            text = await reply.inner_text()
            if not lengths or len(text) != lengths[-1]:
                lengths.append(len(text))
            if text == WORDS:
                break
            await asyncio.sleep(0.03)
        assert await reply.inner_text() == WORDS
        growing = [n for n in lengths if 0 < n < len(WORDS)]
        assert len(growing) >= 3, f"the reply did not grow in steps: {lengths}"
        assert growing == sorted(growing)
        await expect(page.locator(".message.user .body")).to_have_text("Count for me")
        await page.screenshot(path=shots("chat"))
    finally:
        await upstream.stop()


async def test_stop_cancels_the_upstream_at_once(
    make_server: ServerFactory, new_page: NewPage
) -> None:
    upstream = await slow_fake(WORDS * 5, token_delay=0.2)
    try:
        server = await make_server(mistral_base_url=upstream.base_url)
        page = await new_page()
        await sign_in(page, server)
        await ask(page, "Tell me a long story")
        reply = page.locator(".message.assistant .body").last
        await expect(reply).to_contain_text("word1")
        assert upstream.open_connections == 1
        await page.get_by_role("button", name="Stop").click()
        await upstream.wait_for_connections(0, within=0.5)
        await expect(reply).to_contain_text("Stopped.")
        # What came before Stop is kept, and the chat can go on.
        await expect(page.get_by_role("button", name="Send")).to_be_enabled()
        await expect(page.get_by_role("button", name="Retry")).to_be_visible()
    finally:
        await upstream.stop()


async def test_the_apis_message_is_shown_when_the_chat_fails(
    make_server: ServerFactory, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    server = await make_server(stored_key="not-the-key-of-the-fake-0000")
    page = await new_page()
    await sign_in(page, server)
    await ask(page, "Hello")
    alert = page.locator(".message.assistant").get_by_role("alert")
    await expect(alert).to_have_text(
        "Mistral API Key is incorrect. Please fix it in your profile settings."
    )
    await page.screenshot(path=shots("error"))


async def test_with_no_key_the_picker_says_where_to_set_one(
    make_server: ServerFactory, new_page: NewPage
) -> None:
    server = await make_server(stored_key=None)
    page = await new_page()
    await sign_in(page, server)
    picker = page.get_by_label("Model")
    await expect(picker).to_be_disabled()
    await expect(picker).to_have_text("No models: set a provider key in Settings")


async def test_a_past_chat_is_seen_from_another_browser_and_deleted_for_both(
    server: Running, new_page: NewPage
) -> None:
    first = await new_page()
    await sign_in(first, server)
    await ask(first, "Remember the lighthouse")
    await expect(first.locator(".message.assistant .body").last).to_have_text(
        "Hello! You said: Remember the lighthouse"
    )
    await expect(first.locator("#chat-list")).to_contain_text("Remember the lighthouse")

    second = await new_page()
    await sign_in(second, server)
    listed = second.get_by_role("button", name="Remember the lighthouse", exact=True)
    await listed.click()
    await expect(second.locator(".message.assistant .body")).to_have_text(
        "Hello! You said: Remember the lighthouse"
    )
    second.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await second.get_by_role("button", name="Delete chat Remember the lighthouse").click()
    await expect(listed).to_have_count(0)
    await first.reload()
    await chat_page_ready(first)
    await expect(first.locator("#chat-list")).to_have_text("None yet")


async def test_a_reply_renders_markdown_and_never_markup(
    make_server: ServerFactory, new_page: NewPage
) -> None:
    reply = (
        "Here is **bold** text.\n\n```python\nprint('<b>hi</b>')\n```\n\n"
        '<img src=x onerror="document.title=\'owned\'"> <script>document.title="owned"</script>'
        " [a link](javascript:alert(1)) and [docs](https://example.com/docs)"
    )
    upstream = await slow_fake(reply, token_delay=0)
    try:
        server = await make_server(mistral_base_url=upstream.base_url)
        page = await new_page()
        await sign_in(page, server)
        await ask(page, "Show me")
        body = page.locator(".message.assistant .body").last
        await expect(body.locator("pre code")).to_have_text("print('<b>hi</b>')")
        await expect(body.locator("strong")).to_have_text("bold")
        await expect(body).to_contain_text("<img src=x onerror=\"document.title='owned'\">")
        assert await body.locator("img, script, b").count() == 0
        links = body.get_by_role("link")
        await expect(links).to_have_count(1)
        await expect(links).to_have_attribute("href", "https://example.com/docs")
        assert await page.title() == "chatwire"
    finally:
        await upstream.stop()
