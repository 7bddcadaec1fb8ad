"""The chat page in a real browser: sign in, a reply that grows as it streams, Stop that
cancels the upstream, errors shown as chatwire words them, past chats on the server."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import FilePayload, Page, expect

from tests.conftest import Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_openai import FakeOpenAI
from tests.web.conftest import LOOP, NewPage, UserFactory, chat_page_ready, sign_in, slow_fake

pytestmark = pytest.mark.asyncio(loop_scope=LOOP)

WORDS = " ".join(f"word{n}" for n in range(1, 41))


# Installed before a question is asked: records each new length of the last reply's text.
GROWTH = """() => {
    window.replyLengths = [];
    window.replyDone = false;
    const seen = () => {
        const bodies = document.querySelectorAll(".message.assistant .body");
        if (bodies.length === 0) return;
        const text = bodies[bodies.length - 1].innerText;
        const lengths = window.replyLengths;
        if (lengths.length === 0 || lengths[lengths.length - 1] !== text.length) {
            lengths.push(text.length);
        }
        if (text === WORDS) window.replyDone = true;
    };
    new MutationObserver(seen).observe(document.body, {
        subtree: true, childList: true, characterData: true,
    });
}""".replace("WORDS", json.dumps(WORDS))


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
        await page.evaluate(GROWTH)
        await ask(page, "Count for me")
        # Every length the reply's text takes, recorded in the page as it changes (a
        # MutationObserver), until it is the whole answer (or 10 s have gone by).
        await page.wait_for_function("() => window.replyDone", timeout=10_000)
        lengths: list[int] = await page.evaluate("window.replyLengths")
        reply = page.locator(".message.assistant .body").last
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
    make_user: UserFactory, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    server = await make_user(stored_key="not-the-key-of-the-fake-0000")
    page = await new_page()
    await sign_in(page, server)
    await ask(page, "Hello")
    alert = page.locator(".message.assistant").get_by_role("alert")
    await expect(alert).to_have_text(
        "Mistral API Key is incorrect. Please fix it in your profile settings."
    )
    await page.screenshot(path=shots("error"))


async def test_with_no_key_the_picker_says_where_to_set_one(
    make_user: UserFactory, new_page: NewPage
) -> None:
    server = await make_user(stored_key=None)
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


# A 1x1 PNG.
DOT = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


async def test_an_image_goes_to_a_model_that_takes_images(
    make_server: ServerFactory, new_page: NewPage
) -> None:
    upstream = FakeOpenAI(api_key="fake-openai-key-0123456789")
    await upstream.start()
    try:
        server = await make_server(
            openai_base_url=upstream.base_url, openai_api_key="fake-openai-key-0123456789"
        )
        page = await new_page()
        await sign_in(page, server)
        await page.get_by_label("Model").select_option("mistral/mistral-small-latest")
        await expect(page.get_by_text("Attach images")).to_be_hidden()
        await page.get_by_label("Model").select_option("openai/gpt-4o")
        await page.get_by_label("Attach images").set_input_files(
            FilePayload(name="dot.png", mimeType="image/png", buffer=DOT)
        )
        await expect(page.get_by_role("img", name="attachment 1")).to_be_visible()
        await page.get_by_label("Message").fill("What is in this picture?")
        await page.keyboard.press("Enter")
        await expect(page.locator(".message.assistant .body")).to_have_text(
            "Hello! You said: What is in this picture?"
        )
        await expect(page.locator(".message.user img")).to_have_count(1)
        sent = upstream.requests[-1].json["messages"][-1]["content"]
        assert sent == [
            {"type": "text", "text": "What is in this picture?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(DOT).decode()},
            },
        ]
    finally:
        await upstream.stop()


async def test_retry_asks_again_after_a_failure(
    server: Running, fake: FakeMistral, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, server)
    fake.fail_next(503)
    await ask(page, "Are you there?")
    await expect(page.locator(".message.assistant").get_by_role("alert")).to_be_visible()
    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator(".message.assistant .body")).to_have_text(
        "Hello! You said: Are you there?"
    )
    await expect(page.locator(".message.assistant")).to_have_count(1)


async def test_new_chat_starts_an_empty_conversation(server: Running, new_page: NewPage) -> None:
    page = await new_page()
    await sign_in(page, server)
    await ask(page, "First question")
    await expect(page.locator("#chat-list")).to_contain_text("First question")
    await page.get_by_role("button", name="New chat").click()
    await expect(page.locator(".message")).to_have_count(0)
    await ask(page, "Second question")
    await expect(page.locator("#chat-list")).to_contain_text("Second question")
    await expect(page.locator("#chat-list li")).to_have_count(2)
