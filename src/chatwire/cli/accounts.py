"""Users, roles, bearer tokens, their policies, and stored provider keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import click

from chatwire.cli._support import (
    announce,
    fail,
    load_settings,
    prepare,
    read_secret,
    with_store,
)
from chatwire.core.security import mask_secret
from chatwire.store.records import CredentialField

if TYPE_CHECKING:
    from chatwire.core.config import Settings
    from chatwire.store.records import Policy
    from chatwire.store.repo import Store

F = TypeVar("F", bound=Callable[..., Any])
# What the limit options take to remove a limit.
NONE = "none"


class _Clear:
    """An option's value that removes its limit (``--rpm none``)."""

    def __repr__(self) -> str:
        return NONE


CLEAR = _Clear()


class _Count(click.ParamType[Any]):
    name = "N|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is CLEAR or isinstance(value, int):
            return value
        if str(value).strip().lower() == NONE:
            return CLEAR
        try:
            number = int(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a whole number (or 'none')", param, ctx)
        if number < 1:
            self.fail(f"{number} is not a positive number (or 'none')", param, ctx)
        return number


class _Dollars(click.ParamType[Any]):
    name = "USD|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is CLEAR or isinstance(value, Decimal):
            return value
        text = str(value).strip().removeprefix("$")
        if text.lower() == NONE:
            return CLEAR
        try:
            amount = Decimal(text)
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount of US dollars such as 12.50", param, ctx)
        if not amount.is_finite() or amount < 0:
            self.fail(f"{value!r} is not an amount of US dollars such as 12.50", param, ctx)
        return amount


def policy_options(func: F) -> F:
    """The options that set a policy's fields (``tokens create``, the ``limit`` commands)."""
    options = [
        click.option(
            "--models",
            "models",
            multiple=True,
            metavar="PATTERN",
            help="Models it may use, as provider/model patterns (mistral/*, "
            "anthropic/claude-*); repeat it or separate with commas; 'none': any model.",
        ),
        click.option("--rpm", type=_Count(), help="Requests per minute ('none': no limit)."),
        click.option(
            "--tpm", type=_Count(), help="Tokens (input + output) per minute ('none': no limit)."
        ),
        click.option("--parallel", type=_Count(), help="Chats at once ('none': no limit)."),
        click.option(
            "--budget", type=_Dollars(), help="US dollars per budget period ('none': no limit)."
        ),
        click.option(
            "--budget-period",
            type=click.Choice(["day", "week", "month", "total"]),
            help="What the budget is for: a UTC calendar day, an ISO week, a calendar month, "
            "or in total (default: month).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def policy_changes(given: Mapping[str, Any]) -> dict[str, object]:
    """The options given on the command line as the store's changes (None clears)."""
    changes: dict[str, object] = {}
    patterns = [part.strip() for value in given.get("models") or () for part in value.split(",")]
    if patterns:
        changes["models"] = None if [p.lower() for p in patterns] == [NONE] else patterns
    for name in ("rpm", "tpm", "parallel", "budget", "budget_period"):
        value = given.get(name)
        if value is not None:
            changes[name] = None if value is CLEAR else value
    return changes


def new_policy(changes: Mapping[str, object]) -> Policy | None:
    from chatwire.store.records import Policy

    if not changes:
        return None
    values: dict[str, Any] = dict(changes)
    models = values.get("models")
    return Policy(
        models=None if models is None else tuple(models),
        rpm=values.get("rpm"),
        tpm=values.get("tpm"),
        parallel=values.get("parallel"),
        budget=values.get("budget"),
        budget_period=values.get("budget_period") or "month",
    )


def shown(policy: Policy | None) -> str:
    from chatwire.store.policies import describe

    return describe(policy)


@click.group()
def users() -> None:
    """Create and list users."""


@users.command("create")
@click.argument("name")
def users_create(name: str) -> None:
    """Create a user; prints its bearer token alone on stdout, once."""
    from chatwire.store.repo import UserExists

    settings = load_settings()
    prepare(settings)
    try:
        _, token = with_store(settings, lambda s: s.create_user(name))
    except UserExists:
        fail(f"user '{name}' exists already; for another token: chatwire tokens create {name}")
    except ValueError as exc:
        fail(str(exc))
    else:
        click.echo(token)


@users.command("list")
def users_list() -> None:
    """List users: id, name, role and limits (the user's own, else the default's)."""
    settings = load_settings()
    prepare(settings)

    async def read(store: Store) -> tuple[Any, Policy | None]:
        return await store.user_listing(), await store.default_policy()

    listing, default = with_store(settings, read)
    fallback = "-" if default is None else f"default: {shown(default)}"
    for user in listing:
        limits = fallback if user.policy is None else shown(user.policy)
        click.echo(f"{user.id}\t{user.name}\t{user.role}\t{limits}")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(["admin", "member"]))
def users_role(name: str, role: str) -> None:
    """Make NAME an admin (may use /api/admin) or a member. The first user is an admin."""
    from chatwire.store.repo import LastAdmin, UserNotFound

    settings = load_settings()
    prepare(settings)
    try:
        user = with_store(settings, lambda s: s.set_role(name, role))  # type: ignore[arg-type]
    except UserNotFound:
        fail(f"no user '{name}' (chatwire users list)")
    except LastAdmin as exc:
        fail(str(exc))
    announce(settings, "user", user.id)
    click.echo(f"'{name}' is now {'an' if role == 'admin' else 'a'} {role}", err=True)


@users.command("limit")
@click.argument("name", required=False)
@click.option(
    "--default", "default", is_flag=True, help="The operator's default, for users with none."
)
@click.option("--clear", is_flag=True, help="Remove the policy (a user's: the default applies).")
@policy_options
def users_limit(name: str | None, default: bool, clear: bool, **given: Any) -> None:
    """Set (or with no option, show) the policy of user NAME, or with --default the
    operator's default. Only the options given change; 'none' removes one."""
    from chatwire.store.repo import UserNotFound

    if (name is None) == (not default):
        raise click.UsageError("give a user's name or --default, not both")
    changes = policy_changes(given)
    if clear and changes:
        raise click.UsageError("--clear removes the whole policy: give no other option")
    settings = load_settings()
    prepare(settings)

    async def act(store: Store) -> tuple[int | None, Policy | None, bool]:
        if name is None:
            if clear:
                await store.clear_policy()
                return None, None, True
            if not changes:
                return None, await store.default_policy(), False
            return None, await store.change_default_policy(changes), True
        user = await store.get_user(name)
        if user is None:
            raise UserNotFound(name)
        if clear:
            await store.clear_policy(user_id=user.id)
            return user.id, None, True
        if not changes:
            return user.id, await store.user_policy(user.id), False
        return user.id, await store.change_user_policy(user.id, changes), True

    try:
        user_id, policy, done = with_store(settings, act)
    except UserNotFound:
        fail(f"no user '{name}' (chatwire users list)")
    except ValueError as exc:
        fail(str(exc))
    if done:
        announce(settings, "default" if name is None else "user", user_id)
    label = "default" if name is None else name
    if policy is None and name is not None:
        click.echo(f"{label}\t- (the default applies)")
    else:
        click.echo(f"{label}\t{shown(policy)}")


@users.command("link")
@click.argument("name")
def users_link(name: str) -> None:
    """Print a link that signs a browser in to chatwire's pages as NAME, once, within a day."""
    settings = load_settings()
    prepare(settings)
    code = with_store(settings, lambda s: sign_in_code(s, name))
    if code is None:
        fail(f"no user '{name}' (chatwire users list)")
    click.echo(sign_in_url(settings, code))


LINK_LIFETIME_HOURS = 24


async def sign_in_code(store: Store, name: str) -> str | None:
    """A one-time sign-in code for user ``name`` (None: no such user)."""
    from datetime import timedelta

    from chatwire.store.web import WebStore

    user = await store.get_user(name)
    if user is None:
        return None
    return await WebStore(store.engine).create_session(
        user.id, timedelta(hours=LINK_LIFETIME_HOURS)
    )


def sign_in_url(settings: Settings, code: str) -> str:
    """The page's address with the code in its fragment, which browsers never send on."""
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/#signin={code}"


@click.group()
def tokens() -> None:
    """Create, list and revoke bearer tokens."""


@tokens.command("create")
@click.argument("user")
@click.option("--name", help="What to call it (unique among USER's tokens), e.g. ci-bot.")
@policy_options
def tokens_create(user: str, name: str | None, **given: Any) -> None:
    """Create another token for USER, with a name and limits of its own if given; prints
    it alone on stdout, once."""
    from chatwire.store.repo import TokenNameTaken, UserNotFound

    changes = policy_changes(given)
    settings = load_settings()
    prepare(settings)
    policy = new_policy(changes)
    try:
        record, token = with_store(settings, lambda s: s.add_token(user, name=name, policy=policy))
    except UserNotFound:
        fail(f"no user '{user}': create it with chatwire users create {user}")
    except TokenNameTaken:
        fail(f"'{user}' has a token named '{name}' already (chatwire tokens list {user})")
    except ValueError as exc:
        fail(str(exc))
    click.echo(token)
    click.echo(
        f"token {record.id}{f' ({name})' if name else ''} of '{user}': {shown(record.policy)}",
        err=True,
    )


@tokens.command("list")
@click.argument("user")
def tokens_list(user: str) -> None:
    """List USER's tokens: id, date, state, name and limits (tokens themselves are never
    stored)."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)
    try:
        records = with_store(settings, lambda s: s.list_tokens(user))
    except UserNotFound:
        fail(f"no user '{user}'")
    for record in records:
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "active"
        click.echo(
            f"{record.id}\t{record.created_at:%Y-%m-%d %H:%M}\t{state}"
            f"\t{record.name or '-'}\t{shown(record.policy)}"
        )


@tokens.command("limit")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
@click.option("--clear", is_flag=True, help="Remove the token's policy.")
@policy_options
def tokens_limit(token_id: int, clear: bool, **given: Any) -> None:
    """Set (or with no option, show) the policy of token TOKEN_ID (see 'tokens list').
    Only the options given change; 'none' removes one."""
    from chatwire.store.repo import TokenNotFound

    changes = policy_changes(given)
    if clear and changes:
        raise click.UsageError("--clear removes the whole policy: give no other option")
    settings = load_settings()
    prepare(settings)

    async def act(store: Store) -> tuple[Policy | None, bool]:
        if clear or not changes:
            record = await store.get_token(token_id)
            if record is None:
                raise TokenNotFound(token_id)
            if not clear:
                return record.policy, False
            await store.clear_policy(token_id=token_id)
            return None, True
        return await store.change_token_policy(token_id, changes), True

    try:
        policy, done = with_store(settings, act)
    except TokenNotFound:
        fail(f"no token with id {token_id} (chatwire tokens list USER)")
    except ValueError as exc:
        fail(str(exc))
    if done:
        announce(settings, "token", token_id)
    click.echo(f"{token_id}\t{shown(policy)}")


@tokens.command("revoke")
@click.argument("token_id", type=int, required=False)
@click.option("--user", "user", help="Revoke every token of this user.")
def tokens_revoke(token_id: int | None, user: str | None) -> None:
    """Revoke a token by id (see 'tokens list'), all of a user's tokens with --user,
    or, with neither, the token read from standard input (never from the command line)."""
    from chatwire.store.repo import UserNotFound

    if user is not None and token_id is not None:
        raise click.UsageError("give a token id or --user, not both")
    settings = load_settings()
    prepare(settings)
    if user is not None:
        try:
            count = with_store(settings, lambda s: s.revoke_all_tokens(user))
        except UserNotFound:
            fail(f"no user '{user}'")
        announce(settings, "user", None)
        click.echo(f"revoked {count} token(s) of '{user}'", err=True)
        return
    if token_id is not None:
        done = with_store(settings, lambda s: s.revoke_token(token_id))
    else:
        value = read_secret("Token to revoke")
        done = with_store(settings, lambda s: s.revoke_token_value(value))
    if not done:
        fail("no such active token")
    announce(settings, "token", token_id)
    click.echo("revoked", err=True)


@click.group()
def keys() -> None:
    """Set, clear and show a user's stored provider keys."""


def profile_field(provider: str) -> str:
    from chatwire.providers.registry import credential_fields, key_fields

    fields = credential_fields()
    keys = key_fields()
    field = keys.get(provider, provider)
    if field not in fields:
        # Providers by name, then every field no provider name stands for.
        names = ", ".join([*keys, *(f for f in fields if f not in keys.values())])
        fail(f"unknown provider or field '{provider}'; one of: {names}")
    return field


@keys.command("set")
@click.argument("user")
@click.argument("provider")
def keys_set(user: str, provider: str) -> None:
    """Store USER's key for PROVIDER, read from a hidden prompt or stdin (never argv)."""
    settings = load_settings()
    field = profile_field(provider)
    value = read_secret(f"{provider} value for {user}")
    _update_profile(settings, user, field, value)
    click.echo(f"stored {field} for '{user}'", err=True)


@keys.command("clear")
@click.argument("user")
@click.argument("provider")
def keys_clear(user: str, provider: str) -> None:
    """Remove USER's stored key for PROVIDER."""
    settings = load_settings()
    _update_profile(settings, user, profile_field(provider), None)
    click.echo("cleared", err=True)


@keys.command("list")
@click.argument("user")
def keys_list(user: str) -> None:
    """Show USER's stored settings, keys masked."""
    from chatwire.store.repo import UserNotFound

    settings = load_settings()
    prepare(settings)

    async def read(store: Store) -> tuple[Mapping[str, CredentialField], dict[str, str | None]]:
        found = await store.get_user(user)
        if found is None:
            raise UserNotFound(user)
        return store.fields, (await store.get_profile(found.id)).values

    try:
        fields, values = with_store(settings, read)
    except UserNotFound:
        fail(f"no user '{user}'")
    for name, field in fields.items():
        value = values.get(name)
        shown = mask_secret(value) if field.secret else value
        click.echo(f"{name}\t{shown or '-'}")


def _update_profile(settings: Settings, user: str, field: str, value: str | None) -> None:
    from chatwire.store.repo import UserNotFound

    prepare(settings)

    async def update(store: Store) -> None:
        found = await store.get_user(user)
        if found is None:
            raise UserNotFound(user)
        await store.update_profile(found.id, {field: value})

    try:
        with_store(settings, update)
    except UserNotFound:
        fail(f"no user '{user}'")
    except ValueError as exc:
        fail(str(exc))
    announce(settings, "profile", None)
