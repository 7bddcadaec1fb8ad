"""Fixtures of the browser tests: Debian's chromium driven headless by Playwright, against
chatwire and a fake Mistral on real TCP. Skipped, saying why, where either is missing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
import pytest_asyncio

from tests.conftest import FAKE_KEY, Running, ServerFactory, Servers, add_user
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


# Every browser test runs in the worker's one event loop: its chromium (started once per
# worker process) and a module's chatwire server live there across tests.
LOOP: Final = "session"


@pytest_asyncio.fixture(scope="session", loop_scope=LOOP)
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


@pytest_asyncio.fixture(loop_scope=LOOP)
async def new_page(browser: Browser) -> AsyncIterator[NewPage]:
    """A page in a browser context of its own (its own cookies and storage), closed with the
    test; 1100 px wide unless told."""
    contexts: list[BrowserContext] = []

    async def make(width: int = 1100, height: int = 800) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(5000)
        # A page load waits on a server the rest of the suite shares the 2 cores with.
        page.set_default_navigation_timeout(20000)
        return page

    yield make
    for context in contexts:
        await context.close()


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP)
async def fake() -> AsyncIterator[FakeMistral]:
    """The module's fake Mistral, behind its shared chatwire (``server``)."""
    upstream = FakeMistral(api_key=FAKE_KEY)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@pytest_asyncio.fixture(scope="module", loop_scope=LOOP)
async def shared_server(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeMistral
) -> AsyncIterator[Running]:
    """One chatwire of the shipped settings for the module's tests; each signs in as a user
    of its own (``make_user``)."""
    servers = Servers(tmp_path_factory.mktemp("shared"), fake)
    try:
        yield await servers.start()
    finally:
        await servers.close()


UserFactory = Callable[..., Awaitable[Running]]


@pytest_asyncio.fixture(loop_scope=LOOP)
async def make_user(
    shared_server: Running, fake: FakeMistral, request: pytest.FixtureRequest
) -> AsyncIterator[UserFactory]:
    """New users of the module's shared chatwire, each with a token of her own and, unless
    ``stored_key=None``, that key (by default the fake's) in her profile."""
    made = itertools.count(1)

    async def make(stored_key: str | None = FAKE_KEY) -> Running:
        return await add_user(shared_server, f"{request.node.name}-{next(made)}", stored_key)

    yield make
    # A failure the test queued but never used must not reach the next test.
    fake._failures.clear()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def server(make_user: UserFactory) -> Running:
    """The module's shared chatwire, as a user of this test's own."""
    return await make_user()


@pytest_asyncio.fixture(loop_scope=LOOP)
async def make_server(tmp_path: Path, fake: FakeMistral) -> AsyncIterator[ServerFactory]:
    """A chatwire of the test's own, for settings or an upstream no other test shares (in
    the browser's event loop; its Mistral the module's fake unless told)."""
    servers = Servers(tmp_path, fake)
    try:
        yield servers.start
    finally:
        await servers.close()


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
