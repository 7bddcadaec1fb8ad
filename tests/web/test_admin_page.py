"""The admin page in a real browser: users, roles, policies and tokens, through /api/admin
with the browser's session; refused to a member."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.conftest import Running
from tests.web.conftest import LOOP, NewPage, UserFactory, sign_in

pytestmark = pytest.mark.asyncio(loop_scope=LOOP)


async def admin_api(admin: Running, path: str) -> Any:
    resp = await admin.client.get(f"/api/admin{path}", headers=admin.auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def user_named(admin: Running, name: str) -> dict[str, Any]:
    users: list[dict[str, Any]] = await admin_api(admin, "/users")
    (found,) = [u for u in users if u["name"] == name]
    return found


async def open_admin(page: Page) -> None:
    await page.get_by_role("link", name="Admin").click()
    await page.locator("#user-table").wait_for()


async def test_an_admin_creates_a_user_sets_an_rpm_policy_and_sees_it_listed(
    shared_server: Running, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    admin = shared_server
    page = await new_page()
    await sign_in(page, admin)
    await open_admin(page)

    await page.get_by_label("Name", exact=True).fill("carol")
    await page.get_by_label("Name", exact=True).press("Enter")
    await expect(page.locator("#admin-notice")).to_have_text("carol created.")
    token = await page.locator("#new-user-token").input_value()
    assert token
    # The token shown once is carol's, and works.
    async with httpx.AsyncClient(base_url=admin.url) as client:
        me = await client.get("/api/session", headers={"Authorization": f"Bearer {token}"})
    assert (me.json()["user"], me.json()["role"]) == ("carol", "member")

    row = page.locator('#user-table tr[data-user="carol"]')
    await expect(row.locator(".policy")).to_have_text("default policy")
    await page.get_by_role("button", name="Edit the policy of carol").click()
    editor = page.locator("#policy-form")
    await expect(editor.get_by_role("heading")).to_have_text("Policy of carol")
    await editor.get_by_label("Requests a minute").fill("30")
    await editor.get_by_label("Requests a minute").press("Enter")
    await expect(page.locator("#admin-notice")).to_have_text("carol's policy saved.")
    await expect(row.locator(".policy")).to_have_text("30 rpm")
    carol = await user_named(admin, "carol")
    assert carol["policy"]["rpm"] == 30
    assert (carol["policy"]["tpm"], carol["policy"]["models"], carol["policy"]["budget"]) == (
        None,
        None,
        None,
    )

    # Her role, by keyboard-operable select.
    await row.get_by_label("Role of carol").select_option("admin")
    await expect(page.locator("#admin-notice")).to_have_text("carol's role is now admin.")
    assert (await user_named(admin, "carol"))["role"] == "admin"
    await row.get_by_label("Role of carol").select_option("member")
    await expect(page.locator("#admin-notice")).to_have_text("carol's role is now member.")
    await page.screenshot(path=shots("admin"), full_page=True)

    await page.get_by_role("button", name="Clear the policy of carol").click()
    await expect(row.locator(".policy")).to_have_text("default policy")
    assert (await user_named(admin, "carol"))["policy"] is None


async def test_an_admin_creates_a_token_with_a_policy_and_revokes_it(
    shared_server: Running, make_user: UserFactory, new_page: NewPage
) -> None:
    admin = shared_server
    member = await make_user()
    page = await new_page()
    await sign_in(page, admin)
    await open_admin(page)
    form = page.locator("#new-admin-token")
    await form.get_by_label("User").select_option(label=member.name)
    await form.get_by_label("Token name").fill("ci")
    await form.get_by_label("Tokens a minute").fill("1000")
    await form.get_by_label("Models").fill("mistral/*")
    await form.get_by_role("button", name="Create token").click()
    value = await page.locator("#new-token-value").input_value()
    assert value
    (made,) = [
        t for t in await admin_api(admin, f"/tokens?user_id={member.user_id}") if t["name"] == "ci"
    ]
    assert made["policy"]["tpm"] == 1000
    assert made["policy"]["models"] == ["mistral/*"]
    item = page.locator("#admin-token-list li").filter(has_text=f"Token {made['id']} ")
    await expect(item).to_contain_text("models mistral/* · 1000 tpm")

    # Its policy changed later: the editor starts from the token's, so only rpm is new.
    await page.get_by_role("button", name=f"Edit the policy of token {made['id']}").click()
    editor = page.locator("#policy-form")
    await expect(editor.get_by_label("Models")).to_have_value("mistral/*")
    await editor.get_by_label("Requests a minute").fill("5")
    await editor.get_by_role("button", name="Save policy").click()
    await expect(item).to_contain_text("models mistral/* · 5 rpm · 1000 tpm")
    (changed,) = [t for t in await admin_api(admin, "/tokens") if t["id"] == made["id"]]
    assert (changed["policy"]["rpm"], changed["policy"]["tpm"]) == (5, 1000)
    await page.get_by_role("button", name=f"Clear the policy of token {made['id']}").click()
    await expect(item).to_contain_text("the user's policy")
    (cleared,) = [t for t in await admin_api(admin, "/tokens") if t["id"] == made["id"]]
    assert cleared["policy"] is None

    await page.get_by_role("button", name=f"Revoke token {made['id']}").click()
    await expect(item).to_contain_text("(revoked)")
    async with httpx.AsyncClient(base_url=admin.url) as client:
        refused = await client.get("/api/session", headers={"Authorization": f"Bearer {value}"})
    assert refused.status_code == 401


async def test_an_admin_sets_and_removes_the_default_policy(
    shared_server: Running, new_page: NewPage
) -> None:
    admin = shared_server
    page = await new_page()
    await sign_in(page, admin)
    await open_admin(page)
    await expect(page.locator("#default-text")).to_have_text("none: no limits")
    await page.get_by_role("button", name="Edit the default policy").click()
    editor = page.locator("#policy-form")
    await editor.get_by_label("Parallel chats").fill("4")
    await editor.get_by_label("Budget (US dollars)").fill("12.5")
    await editor.get_by_label("Budget period").select_option("week")
    await editor.get_by_role("button", name="Save policy").click()
    await expect(page.locator("#default-text")).to_have_text("4 parallel · budget $12.5 a week")
    policy = (await admin_api(admin, "/policies/default"))["policy"]
    assert (policy["parallel"], policy["budget"], policy["budget_period"]) == (4, "12.5", "week")
    await page.get_by_role("button", name="Remove it").click()
    await expect(page.locator("#default-text")).to_have_text("none: no limits")
    assert (await admin_api(admin, "/policies/default"))["policy"] is None


async def test_an_error_is_shown_in_the_apis_words(
    shared_server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, shared_server)
    await open_admin(page)
    await page.get_by_label("Name", exact=True).fill(shared_server.name)
    await page.get_by_role("button", name="Create user").click()
    await expect(page.locator("#admin-notice")).to_have_text(
        f"A user named '{shared_server.name}' exists already."
    )


async def test_a_member_gets_no_admin_link_and_the_admin_page_is_refused(
    make_user: UserFactory, new_page: NewPage
) -> None:
    member = await make_user()
    page = await new_page()
    await sign_in(page, member)
    await expect(page.get_by_role("link", name="Usage")).to_be_visible()
    await expect(page.get_by_role("link", name="Admin")).to_be_hidden()
    await page.goto(member.url + "/#/admin")
    refused = page.locator("#admin-refused")
    await expect(refused).to_contain_text("Only admins may use /api/admin")
    await expect(page.locator("#user-table")).to_have_count(0)
    status = await page.evaluate("async () => (await fetch('/api/admin/users')).status")
    assert status == 403


async def test_the_admin_api_takes_the_session_only_with_its_csrf_token(
    shared_server: Running, new_page: NewPage
) -> None:
    page = await new_page()
    await sign_in(page, shared_server)
    forged = """async () => {
        const r = await fetch("/api/admin/users", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify({name: "mallory"})});
        return [r.status, (await r.json()).message];
    }"""
    status, message = await page.evaluate(forged)
    assert status == 403
    assert "X-CSRF-Token" in message
    names = [u["name"] for u in await admin_api(shared_server, "/users")]
    assert "mallory" not in names


async def test_the_admin_page_at_phone_width(
    shared_server: Running, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    page = await new_page(width=390, height=844)
    await sign_in(page, shared_server)
    await open_admin(page)
    await page.locator("#default-text").wait_for()
    # The users' table scrolls within its own box; the page itself does not (four links and
    # Sign out made the bar 442 px wide before its links wrapped).
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    create = await page.get_by_role("button", name="Create user").bounding_box()
    assert create is not None
    assert create["x"] + create["width"] <= 390
    await page.screenshot(path=shots("admin-phone"), full_page=True)
