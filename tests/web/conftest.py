"""Fixtures of the browser tests: Debian's chromium driven headless by Playwright, against
chatwire and a fake Mistral on real TCP. Skipped, saying why, where either is missing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import FAKE_KEY, Running
from tests.fakes.fake_mistral import FakeMistral

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    if _playwright_missing():
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


def _playwright_missing() -> bool:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return True
    return False


# The test modules import Playwright: without it they cannot even be collected.
collect_ignore_glob = ["test_*.py"] if _playwright_missing() else []


def pytest_report_header() -> str | None:
    reason = _missing()
    return None if reason is None else f"tests/web skipped: {reason}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=f"browser tests: {reason}"))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


NewPage = Callable[..., Awaitable["Page"]]


@pytest.fixture
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """A page in a browser context of its own (its own cookies), 1100 px wide unless told."""
    contexts: list[BrowserContext] = []

    async def make(width: int = 1100, height: int = 800) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(5000)
        return page

    yield make
    for context in contexts:
        await context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[str], Path]:
    """Where a test's screenshot of a given name goes: the test's temporary directory."""
    folder = tmp_path / "shots"
    folder.mkdir()

    def path(name: str) -> Path:
        return folder / f"{name}.png"

    return path


async def sign_in(page: Page, server: Running, token: str | None = None) -> None:
    """Open chatwire's page and sign in with a pasted token, by keyboard."""
    await page.goto(server.url + "/")
    await page.get_by_label("Your chatwire token").fill(token or server.token)
    await page.keyboard.press("Enter")
    await chat_page_ready(page)


async def chat_page_ready(page: Page) -> None:
    """The chat page shown, its models listed."""
    await page.locator("#prompt").wait_for()
    await page.locator("#model option").first.wait_for(state="attached")


async def slow_fake(reply: str, token_delay: float) -> FakeMistral:
    upstream = FakeMistral(api_key=FAKE_KEY, reply=reply, token_delay=token_delay)
    await upstream.start()
    return upstream
