"""Tools around the server: the fake upstream and the demo."""

from __future__ import annotations

import click


@click.command("fake-upstream")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=18080, show_default=True)
@click.option("--api-key", default="fake-mistral-key", show_default=True)
@click.option("--first-token-delay", type=float, default=0.0, show_default=True)
@click.option("--token-delay", type=float, default=0.0, show_default=True)
def fake_upstream(
    host: str, port: int, api_key: str, first_token_delay: float, token_delay: float
) -> None:
    """Run the fake Mistral upstream (for tests, demos and benchmarks)."""
    from chatwire.testing import fake_mistral

    fake_mistral.run(
        host,
        port,
        api_key=api_key,
        first_token_delay=first_token_delay,
        token_delay=token_delay,
    )


@click.command()
@click.option("--port", type=int, default=8000, show_default=True)
def demo(port: int) -> None:
    """Start a fake Mistral and chatwire wired together, with a demo user and key."""
    from chatwire.demo import run_demo

    run_demo(port)
