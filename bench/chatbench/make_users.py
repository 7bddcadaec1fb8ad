"""Many users at once, through chatwire's own store: ``python -m chatbench.make_users COUNT
TOKENS_FILE``, run by the Python chatwire is installed in, with ``CHATWIRE_DATABASE_URL``
and ``CHATWIRE_DATA_DIR`` (its secret key) set as for ``chatwire serve``.

Migrates the database, then makes users ``bench-00000`` ... each with its first token and a
stored Mistral key, written as chatwire's store writes them (its tables, the SHA-256 of a
token from ``new_token``, the key as Fernet ciphertext of the store's key box) but a
thousand users per statement: one transaction per user would take minutes for ten
thousand. Then reads the first and the last user back through the store (``user_for_token``,
``get_profile``), so rows the store would not read stop the run. Writes the tokens to
TOKENS_FILE one a line, in the users' order.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from sqlalchemy import insert

from chatwire.core.config import Settings
from chatwire.core.security import hash_token, new_token
from chatwire.providers.registry import credential_fields, key_fields
from chatwire.store.crypto import KeyBox, load_secret_keys
from chatwire.store.db import make_engine, upgrade
from chatwire.store.models import ApiToken, CredentialRow, ProfileRow, User, utcnow
from chatwire.store.repo import Store

BATCH = 1000
UPSTREAM_KEY = "bench-upstream-key"


async def make(count: int) -> list[str]:
    settings = Settings()
    keybox = KeyBox(load_secret_keys(settings))
    url = settings.resolved_database_url
    await asyncio.to_thread(upgrade, url, keybox)
    engine = make_engine(url, settings.db_timeout)
    field = key_fields()["mistral"]
    tokens = [new_token() for _ in range(count)]
    try:
        for first in range(0, count, BATCH):
            numbers = range(first, min(first + BATCH, count))
            now = utcnow()
            async with engine.begin() as connection:
                made = await connection.execute(
                    insert(User)
                    .values([{"name": f"bench-{n:05d}", "created_at": now} for n in numbers])
                    .returning(User.id, User.name)
                )
                ids = {name: user_id for user_id, name in made}
                owners = [ids[f"bench-{n:05d}"] for n in numbers]
                await connection.execute(
                    insert(ApiToken).values(
                        [
                            {"user_id": u, "token_hash": hash_token(tokens[n]), "created_at": now}
                            for u, n in zip(owners, numbers, strict=True)
                        ]
                    )
                )
                await connection.execute(
                    insert(ProfileRow).values([{"user_id": u, "updated_at": now} for u in owners])
                )
                await connection.execute(
                    insert(CredentialRow).values(
                        [
                            {
                                "user_id": u,
                                "field": field,
                                "value": keybox.encrypt(UPSTREAM_KEY),
                                "updated_at": now,
                            }
                            for u in owners
                        ]
                    )
                )
        store = Store(engine, keybox, credential_fields())
        for token in {tokens[0], tokens[-1]}:
            user = await store.user_for_token(token)
            if user is None:
                raise RuntimeError("a token made here is not one the store knows")
            if (await store.get_profile(user.id)).values.get(field) != UPSTREAM_KEY:
                raise RuntimeError("a Mistral key stored here is not one the store reads")
    finally:
        await engine.dispose()
    return tokens


def main() -> int:
    count, out = int(sys.argv[1]), Path(sys.argv[2])
    started = time.monotonic()
    tokens = asyncio.run(make(count))
    out.write_text("".join(f"{token}\n" for token in tokens))
    took = time.monotonic() - started
    print(f"made {count:,} users with a token and a Mistral key each in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
