"""``chatwire usage report``: the usage ledger's sums as a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from chatwire.cli._support import fail, load_settings, prepare, with_store

if TYPE_CHECKING:
    from chatwire.store.ledger import Line
    from chatwire.store.repo import Store

HEADINGS = (
    "requests",
    "input",
    "cached input",
    "cache write",
    "output",
    "reasoning",
    "cost (USD)",
    "unpriced",
)


@click.group()
def usage() -> None:
    """What chats used and cost (the usage ledger)."""


@usage.command("report")
@click.option("--since", default="7d", show_default=True, help="12h, 7d, 2w, or an ISO time.")
@click.option("--until", default=None, help="As --since; now by default.")
@click.option(
    "--by",
    type=click.Choice(["day", "model", "provider", "token", "user"]),
    default="model",
    show_default=True,
)
@click.option("--user", "user_name", default=None, help="One user's chats only.")
@click.option("--token", "token_id", type=int, default=None, help="One token's chats only.")
def report(
    since: str, until: str | None, by: str, user_name: str | None, token_id: int | None
) -> None:
    """Print the chats' tokens and cost from --since to --until, grouped --by."""
    from chatwire.store.db import make_engine
    from chatwire.store.ledger import Ledger, moment

    try:
        start = moment(since)
        end = moment(until) if until is not None else None
    except ValueError as exc:
        fail(str(exc))
    settings = load_settings()
    prepare(settings)

    async def read(store: Store) -> tuple[list[Line], dict[int, str]]:
        user_id = None
        if user_name is not None:
            found = await store.get_user(user_name)
            if found is None:
                fail(f"No user '{user_name}' (chatwire users list).")
            user_id = found.id
        engine = make_engine(settings.resolved_database_url, settings.db_timeout)
        try:
            lines = await Ledger(engine).report(
                by,  # type: ignore[arg-type]
                start,
                end,
                user_id=user_id,
                token_id=token_id,
            )
        finally:
            await engine.dispose()
        names = {u.id: u.name for u in await store.list_users()} if by == "user" else {}
        return lines, names

    lines, names = with_store(settings, read)
    click.echo(table(by, lines, names))


def table(by: str, lines: list[Line], names: dict[int, str]) -> str:
    """The lines as an aligned text table, with a total."""
    from chatwire.store.ledger import Line

    def key(line: Line) -> str:
        if line.key is None:
            return "(browser session)" if by == "token" else "-"
        if by == "user" and isinstance(line.key, int):
            return names.get(line.key, f"#{line.key}")
        return str(line.key)

    def cells(line: Line) -> list[str]:
        return [
            f"{line.requests:,}",
            f"{line.input_tokens:,}",
            f"{line.cached_input_tokens:,}",
            f"{line.cache_write_tokens:,}",
            f"{line.output_tokens:,}",
            f"{line.reasoning_tokens:,}",
            f"{line.cost:.6f}",
            f"{line.unpriced:,}",
        ]

    rows = [[key(line), *cells(line)] for line in lines]
    rows.append(["total", *cells(Line.total(lines))])
    head = [by, *HEADINGS]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def render(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(head), rule, *map(render, rows[:-1]), rule, render(rows[-1])])
