"""Tools around the server: the fake upstream and the demo."""

from __future__ import annotations

import click


@click.command("fake-upstream")
@click.option(
    "--kind",
    type=click.Choice(["mistral", "openai", "anthropic", "gemini", "ollama"]),
    default="mistral",
    show_default=True,
    help="Which provider's API to fake (openai also serves Azure's deployment routes).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=18080, show_default=True)
@click.option(
    "--api-key", help="The key it accepts (default: the fake's own, e.g. fake-mistral-key)."
)
@click.option("--first-token-delay", type=float, default=0.0, show_default=True)
@click.option("--token-delay", type=float, default=0.0, show_default=True)
def fake_upstream(
    kind: str,
    host: str,
    port: int,
    api_key: str | None,
    first_token_delay: float,
    token_delay: float,
) -> None:
    """Run a fake provider API (for tests, demos and benchmarks); prints its base URL."""
    from chatwire.testing import run_fake

    options: dict[str, object] = {
        "first_token_delay": first_token_delay,
        "token_delay": token_delay,
    }
    if api_key is not None:
        options["api_key"] = api_key
    run_fake(kind, host, port, **options)


@click.command()
@click.option("--port", type=int, default=8000, show_default=True)
def demo(port: int) -> None:
    """Start a fake Mistral and chatwire wired together, with a demo user and key."""
    from chatwire.demo import run_demo

    run_demo(port)


@click.command()
@click.option("--streams", type=int, default=300, show_default=True, help="Chats at once.")
@click.option("--duration", type=float, default=180.0, show_default=True, help="Seconds.")
@click.option("--seed", type=int, default=1, show_default=True)
def soak(streams: int, duration: float, seed: int) -> None:
    """Many concurrent chats with faults against a real server, then a check for leaks."""
    import asyncio

    from chatwire.soak import report, run_soak

    result = asyncio.run(run_soak(streams, duration, seed))
    click.echo(report(result, streams, duration))
    if not result.ok:
        raise SystemExit(1)
