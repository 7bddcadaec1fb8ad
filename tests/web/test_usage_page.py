"""The usage page in a real browser: its charts drawn, its totals the ledger's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.conftest import Running, add_user
from tests.web.conftest import LOOP, NewPage, UserFactory, sign_in

pytestmark = pytest.mark.asyncio(loop_scope=LOOP)

PRICED = "mistral-small-latest"
UNPRICED = "ministral-3b-latest"  # prices.json has no price for it
INPUT_BLUE = (0x2F, 0x5B, 0xD3)  # usage.js COLORS.input
COST_GREEN = (0x1E, 0x8A, 0x5A)  # usage.js COLORS.cost


async def chats(who: Running, *models: str) -> None:
    for model in models:
        resp = await who.client.post(
            "/api/chat/mistral", json=who.chat_body(model=model), headers=who.auth
        )
        assert resp.status_code == 200, resp.text


async def usage(who: Running, requests: int, **query: Any) -> dict[str, Any]:
    """``who``'s /api/usage once the ledger holds ``requests`` chats (it writes in batches)."""
    started = time.monotonic()
    while True:
        resp = await who.client.get("/api/usage", params=query, headers=who.auth)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["total"]["requests"] >= requests:
            return body
        assert time.monotonic() - started < 10, body
        await asyncio.sleep(0.1)


async def open_usage(page: Page) -> None:
    await page.get_by_role("link", name="Usage").click()
    await page.locator("#chart-model-cost canvas").wait_for()


async def painted(page: Page, chart: str, color: tuple[int, int, int]) -> int:
    """How many pixels of ``chart``'s canvas are ``color``: its bars, not its axes."""
    script = """([selector, [r, g, b]]) => {
        const canvas = document.querySelector(selector + " canvas");
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let found = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (Math.abs(data[i] - r) < 3 && Math.abs(data[i + 1] - g) < 3
                && Math.abs(data[i + 2] - b) < 3 && data[i + 3] > 250) found++;
        }
        return found;
    }"""
    found: int = await page.evaluate(script, [chart, list(color)])
    return found


def number(n: int) -> str:
    return f"{n:,}"


async def test_the_usage_page_charts_the_ledger_and_its_totals_are_the_apis(
    shared_server: Running, make_user: UserFactory, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    # A short name: this test's screenshot is the README's (docs/web-usage.png).
    member = await add_user(shared_server, "dana")
    other = await make_user()
    await chats(member, PRICED, PRICED, UNPRICED)
    await chats(other, PRICED)
    ledger = await usage(member, 3, by="day")
    await usage(other, 1)
    total = ledger["total"]
    assert (total["requests"], total["unpriced_requests"]) == (3, 1)

    page = await new_page()
    await sign_in(page, member)
    await expect(page.get_by_role("link", name="Admin")).to_be_hidden()
    await open_usage(page)
    totals = page.locator("#usage-totals")
    await expect(totals.locator('[data-total="Chats"]')).to_have_text("3")
    await expect(totals.locator('[data-total="Input tokens"]')).to_have_text(
        number(total["input_tokens"])
    )
    await expect(totals.locator('[data-total="Output tokens"]')).to_have_text(
        number(total["output_tokens"])
    )
    # The unpriced chat is said so, not counted as $0.
    await expect(totals.locator('[data-total="Cost"]')).to_have_text(
        f"${total['cost']} + 1 chat of unpriced models"
    )
    assert total["cost"] != "0"
    # Only her own: no choice of user, and the other member's chat is not in her sums.
    assert await page.locator("#usage-user").count() == 0

    assert await painted(page, "#chart-day-tokens", INPUT_BLUE) > 50
    assert await painted(page, "#chart-day-cost", COST_GREEN) > 50
    assert await painted(page, "#chart-model-tokens", INPUT_BLUE) > 50
    assert await painted(page, "#chart-model-cost", COST_GREEN) > 50

    rows = page.locator("#usage-table tbody tr")
    await expect(rows).to_have_count(2)
    by_model = {g["key"]: g for g in (await usage(member, 3, by="model"))["groups"]}
    unpriced = rows.filter(has_text=f"mistral/{UNPRICED}")
    await expect(unpriced.locator("td").last).to_have_text("unknown (no price for these models)")
    priced = rows.filter(has_text=f"mistral/{PRICED}")
    await expect(priced.locator("td").last).to_have_text(
        f"${by_model[f'mistral/{PRICED}']['cost']}"
    )
    await expect(priced.locator("td").first).to_have_text("2")
    await page.screenshot(path=shots("usage"), full_page=True)


async def test_an_empty_chart_has_no_bars(make_user: UserFactory, new_page: NewPage) -> None:
    """The pixel count above is not satisfied by axes and grid alone."""
    member = await make_user()
    page = await new_page()
    await sign_in(page, member)
    await open_usage(page)
    await expect(page.locator('[data-total="Chats"]')).to_have_text("0")
    await expect(page.locator("#usage-table")).to_have_text("No chats in this period.")
    assert await painted(page, "#chart-day-tokens", INPUT_BLUE) == 0
    assert await painted(page, "#chart-day-cost", COST_GREEN) == 0


async def test_an_admin_sees_everyone_and_filters_by_user_and_token(
    shared_server: Running, make_user: UserFactory, new_page: NewPage
) -> None:
    admin = shared_server  # alice, the first user: an admin
    bob = await make_user()
    carol = await make_user()
    await chats(bob, PRICED, PRICED)
    await chats(carol, PRICED)
    of_bob = await usage(admin, 2, user=bob.user_id)
    assert of_bob["total"]["requests"] == 2
    await usage(admin, 1, user=carol.user_id)
    # Both in the ledger: everyone's sums now hold still (the module's tests run one by one).
    everyone = await usage(admin, 3)

    page = await new_page()
    await sign_in(page, admin)
    await open_usage(page)
    chats_total = page.locator('[data-total="Chats"]')
    await expect(chats_total).to_have_text(number(everyone["total"]["requests"]))
    await page.get_by_label("Group by").select_option("user")
    await expect(page.locator("#usage-table tbody tr").filter(has_text=bob.name)).to_have_count(1)

    await page.get_by_label("User", exact=True).select_option(label=bob.name)
    await expect(chats_total).to_have_text("2")
    await expect(page.locator('[data-total="Input tokens"]')).to_have_text(
        number(of_bob["total"]["input_tokens"])
    )
    await expect(page.locator("#usage-table tbody tr")).to_have_count(1)
    # Bob's one token is offered, and narrowing to it keeps his chats (made with it).
    token = page.get_by_label("Token", exact=True)
    await expect(token.locator("option")).to_have_count(2)
    await token.select_option(index=1)
    await expect(chats_total).to_have_text("2")
    await page.get_by_label("User", exact=True).select_option(label=carol.name)
    await expect(chats_total).to_have_text("1")


async def test_the_usage_page_at_phone_width(
    make_user: UserFactory, new_page: NewPage, shots: Callable[[str], Path]
) -> None:
    member = await make_user()
    await chats(member, PRICED)
    await usage(member, 1)
    page = await new_page(width=390, height=844)
    await sign_in(page, member)
    await open_usage(page)
    await expect(page.locator('[data-total="Chats"]')).to_have_text("1")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    box = await page.locator("#chart-day-tokens canvas").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert await painted(page, "#chart-day-tokens", INPUT_BLUE) > 0
    await page.screenshot(path=shots("usage-phone"), full_page=True)


async def test_the_usage_filters_work_by_keyboard(
    make_user: UserFactory, new_page: NewPage
) -> None:
    member = await make_user()
    await chats(member, PRICED)
    await usage(member, 1)
    page = await new_page()
    await sign_in(page, member)
    await open_usage(page)
    for _ in range(12):
        if await page.evaluate("document.activeElement.id") == "usage-since":
            break
        await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "usage-since"
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#usage-since")).to_have_value("90d")
    await expect(page.locator('[data-total="Chats"]')).to_have_text("1")
    for _ in range(6):
        if await page.evaluate("document.activeElement.id") == "usage-by":
            break
        await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "usage-by"
    await page.keyboard.press("ArrowDown")
    await expect(page.locator("#usage-table thead th").first).to_have_text("Token")
    (token,) = (await member.client.get("/api/tokens", headers=member.auth)).json()
    await expect(page.locator("#usage-table tbody th")).to_have_text(f"Token {token['id']}")
