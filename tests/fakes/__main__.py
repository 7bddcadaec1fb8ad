"""``python -m tests.fakes [--kind K] [--port N] ...``: serve one fake upstream as a process.

Run from the repository's root. It prints the fake's base URL once listening and serves until
SIGINT or SIGTERM; the soak (``tests/soak.py``) starts its fake Mistral this way, so the load's
clients never slow the upstream down.
"""

from __future__ import annotations

import argparse

from tests.fakes import FAKE_KINDS, run_fake


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument(
        "--kind",
        choices=FAKE_KINDS,
        default="mistral",
        help="which provider's API to fake (openai also serves Azure's deployment routes)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default) picks a free one")
    parser.add_argument("--api-key", help="the key it accepts (default: the fake's own)")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    options: dict[str, object] = {
        "first_token_delay": args.first_token_delay,
        "token_delay": args.token_delay,
    }
    if args.api_key is not None:
        options["api_key"] = args.api_key
    run_fake(args.kind, args.host, args.port, **options)


if __name__ == "__main__":
    main()
