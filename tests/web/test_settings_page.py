"""The settings page, sign-out and CSRF in a real browser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from chatwire.cli import open_store
from chatwire.cli.accounts import sign_in_code, sign_in_url
from tests.conftest import FAKE_KEY, Running
from tests.web.conftest import LOOP, NewPage, UserFactory, chat_page_ready, sign_in

pytestmark = pytest.mark.asyncio(loop_scope=LOOP)


async def test_a_key_set_is_shown_masked_and_makes_the_models_usable(
    make_user: UserFactory, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    server = await make_user(stored_key=None)
    page = await new_page()
    await sign_in(page, server)
    await page.get_by_role("link", name="Settings").click()
    key = page.get_by_label("Mistral API key", exact=True)
    await key.fill(FAKE_KEY)
    await key.press("Enter")
    await expect(page.locator("#settings-notice")).to_have_text("Mistral API key saved.")
    masked = page.locator('.current[data-field="mistral_api_key"]')
    await expect(masked).to_have_text("fak...6789")
    assert FAKE_KEY not in await page.content()
    await expect(page.get_by_label("Mistral API key", exact=True)).to_have_value("")
    await page.screenshot(path=shots("settings"), full_page=True)

    await page.get_by_role("link", name="Chat", exact=True).click()
    await page.get_by_label("Model").select_option("mistral/mistral-small-latest")

    await page.get_by_role("link", name="Settings").click()
    await page.get_by_role("button", name="Clear Mistral API key").click()
    await expect(masked).to_have_text("not set")
    profile = await server.client.get("/api/profile", headers=server.auth)
    assert profile.json()["mistral_api_key"] is None


async def test_a_custom_model_is_added_edited_and_removed(
    server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, server)
    await page.goto(server.url + "/#/settings")
    form = page.locator("#custom-form")
    await form.get_by_label("Name").fill("Local llama")
    await form.get_by_label("Model ID").fill("llama3")
    await form.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    await form.get_by_label("API key").fill("local-key-0123456789abcdef")
    await form.get_by_role("button", name="Add").click()
    await expect(page.locator("#custom .items")).to_contain_text("Local llama llama3")
    await page.get_by_role("button", name="Edit Local llama").click()
    await expect(form.get_by_role("heading")).to_have_text("Edit Local llama")
    await form.get_by_label("Model ID").fill("llama3.1")
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator("#custom .items")).to_contain_text("Local llama llama3.1")
    stored = (await server.client.get("/api/custom-models", headers=server.auth)).json()
    assert [(m["name"], m["model_id"], m["api_key"]) for m in stored] == [
        ("Local llama", "llama3.1", "loc...cdef")
    ]
    await page.get_by_role("button", name="Remove Local llama").click()
    await expect(page.locator("#custom .items")).to_have_text("None yet")


async def test_a_new_token_is_shown_once_works_and_can_be_revoked(
    server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, server)
    await page.goto(server.url + "/#/settings")
    await page.get_by_role("button", name="Create a token").click()
    shown = page.locator("#new-token")
    token = await shown.input_value()
    assert token.startswith("cw_")
    answer = await server.client.get("/api/models", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    await expect(page.locator("#token-list li")).to_have_count(2)
    # Token ids count over every user of the server: the new one is the later of hers.
    listed = (await server.client.get("/api/tokens", headers=server.auth)).json()
    signed_in_with, created = sorted(listed_token["id"] for listed_token in listed)
    await page.reload()
    await page.locator("#token-list").wait_for()
    assert token not in await page.content()
    await page.get_by_role("button", name=f"Revoke token {created}").click()
    await expect(page.locator("#token-list")).to_contain_text(f"Token {created}, created")
    await expect(page.get_by_role("button", name=f"Revoke token {signed_in_with}")).to_be_visible()
    await expect(page.locator("#token-list li.revoked")).to_have_count(1)


async def test_a_change_with_the_cookie_but_without_the_csrf_token_is_refused(
    server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, server)
    forged = """async ([path, method, body]) => {
        const r = await fetch(path, {method, headers: {"Content-Type": "application/json"},
                                     body: body === null ? undefined : JSON.stringify(body)});
        return [r.status, (await r.json()).message];
    }"""
    chat = {"chatSettings": {"model": "mistral-small-latest"}, "messages": []}
    for path, method, body in [
        ("/api/chats", "POST", {"title": "forged", "model": "mistral/x"}),
        ("/api/profile", "PATCH", {"mistral_api_key": "stolen"}),
        ("/api/tokens", "POST", None),
        ("/api/chat/mistral", "POST", chat),
        ("/api/session", "DELETE", None),
    ]:
        status, message = await page.evaluate(forged, [path, method, body])
        assert status == 403, (path, status, message)
        assert "X-CSRF-Token" in message
    # Reading needs no CSRF token; the page's own changes carry it and pass.
    status, _ = await page.evaluate("async () => [(await fetch('/api/chats')).status, null]")
    assert status == 200
    profile = await server.client.get("/api/profile", headers=server.auth)
    assert profile.json()["mistral_api_key"] == "fak...6789"


async def test_signing_out_ends_the_session_on_the_server(
    server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, server)
    (cookie,) = await page.context.cookies()
    assert cookie["name"] == "chatwire_session"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP here; over TLS it is Secure
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Your chatwire token").wait_for()
    # The old cookie, replayed from elsewhere, signs no one in any more.
    async with httpx.AsyncClient(base_url=server.url) as other:
        answer = await other.get(
            "/api/chats", headers={"Cookie": f"chatwire_session={cookie['value']}"}
        )
    assert answer.status_code == 401
    assert answer.json()["message"].startswith("Your session has ended or expired")


async def test_a_wrong_token_is_refused_with_the_apis_words(
    server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await page.goto(server.url + "/")
    await page.get_by_label("Your chatwire token").fill("cw_not-a-token")
    await page.keyboard.press("Enter")
    await expect(page.locator("#sign-in-error")).to_have_text(
        "The bearer token is unknown or has been revoked. "
        "Create a new one with 'chatwire tokens create NAME'."
    )


async def test_a_sign_in_link_signs_in_once_and_leaves_the_address_bar(
    server: Running, new_page: NewPage
) -> None:
    async with open_store(server.settings) as store:
        code = await sign_in_code(store, server.name)
    assert code is not None
    port = server.settings.port
    assert sign_in_url(server.settings, code) == f"http://127.0.0.1:{port}/#signin={code}"
    page = await new_page()
    await page.goto(f"{server.url}/#signin={code}")
    await chat_page_ready(page)
    assert page.url == server.url + "/"
    other = await new_page()
    await other.goto(f"{server.url}/#signin={code}")
    await expect(other.locator("#sign-in-error")).to_have_text(
        "This sign-in link has been used or has expired; make another with "
        "'chatwire users link NAME', or sign in with a token."
    )


async def test_the_chat_page_at_phone_width(
    server: Running, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    page = await new_page(width=390, height=844)
    await sign_in(page, server)
    await page.get_by_label("Message").fill("Hi from a phone")
    await page.keyboard.press("Enter")
    await expect(page.locator(".message.assistant .body")).to_have_text(
        "Hello! You said: Hi from a phone"
    )
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide at a 390 px viewport"
    await page.screenshot(path=shots("phone"))


async def test_the_page_is_usable_by_keyboard(server: Running, new_page: NewPage) -> None:
    page = await new_page()
    await sign_in(page, server)
    # Focus starts in the message box; Tab reaches the composer's Send button.
    focused = await page.evaluate("document.activeElement.id")
    assert focused == "prompt"
    for _ in range(5):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "send":
            break
    assert await page.evaluate("document.activeElement.id") == "send"
