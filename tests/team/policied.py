"""Callers with policies, for the limits' tests: ``Store.user_for_token`` wrapped so a
user's token carries the policies given here (the store of policies is not what these
tests are about). ``python -m tests.team.policied serve ...`` runs ``chatwire`` with the
policies of ``CHATWIRE_TEST_POLICIES`` (JSON: user name -> {"user": {...}, "token": {...}}),
in a process of its own."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from decimal import Decimal
from typing import Any

from chatwire.store.records import Policy, UserRecord
from chatwire.store.repo import Store

# User name -> (the user's policy, the token's policy).
POLICIES: dict[str, tuple[Policy | None, Policy | None]] = {}
_original = Store.user_for_token


def token_id(user_id: int) -> int:
    """The id the tests give every token of a user."""
    return 1000 + user_id


async def _with_policies(self: Store, token: str) -> UserRecord | None:
    record = await _original(self, token)
    if record is None or record.name not in POLICIES:
        return record
    mine, tokens = POLICIES[record.name]
    return replace(
        record,
        token_id=token_id(record.id),
        token_name=f"{record.name}-bot",
        policy=mine,
        token_policy=tokens,
    )


def install() -> None:
    Store.user_for_token = _with_policies  # type: ignore[method-assign]


def uninstall() -> None:
    Store.user_for_token = _original  # type: ignore[method-assign]
    POLICIES.clear()


def policy(**values: Any) -> Policy:
    if "budget" in values:
        values["budget"] = Decimal(str(values["budget"]))
    if "models" in values:
        values["models"] = tuple(values["models"])
    return Policy(**values)


def as_env(policies: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    return {"CHATWIRE_TEST_POLICIES": json.dumps(policies)}


def main() -> None:
    given = json.loads(os.environ.get("CHATWIRE_TEST_POLICIES", "{}"))
    for name, both in given.items():
        user, token = both.get("user"), both.get("token")
        POLICIES[name] = (
            None if user is None else policy(**user),
            None if token is None else policy(**token),
        )
    install()
    from chatwire.cli import main as chatwire

    chatwire(sys.argv[1:])


if __name__ == "__main__":
    main()
