"""Tools around the server: the demo."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--port", type=int, default=8000, show_default=True, help="chatwire's port (0: any free one)."
)
def demo(port: int) -> None:
    """Start a fake Mistral and chatwire wired together, with a demo user and key."""
    from chatwire.demo import run_demo

    run_demo(port)
