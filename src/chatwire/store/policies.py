"""Policies in the database: a row of ``policies`` to a ``Policy`` and back, the checks on
what one may hold, and the query that finds a caller with its role and policies at once.

A row belongs to one token (``token_id``), one user (``user_id``) or is the operator's
default (``is_default`` true, at most one such row). A policy with nothing in it is no row:
setting one deletes the row, so a user whose policy is cleared falls back to the default.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any, get_args

from sqlalchemy import Select, and_, select, true
from sqlalchemy.orm import aliased

from chatwire.store.models import ApiToken, PolicyRow, User
from chatwire.store.records import BudgetPeriod, Policy, Role, UserRecord
from chatwire.store.validation import has_forbidden

PERIODS: tuple[str, ...] = get_args(BudgetPeriod)
ROLES: tuple[str, ...] = get_args(Role)
MAX_PATTERNS = 100
PATTERN_LENGTH = 200
MAX_COUNT = 2**31 - 1
# The budget column: Numeric(14, 6), so at most 8 digits of dollars and 6 after the point.
BUDGET_DIGITS = 14
BUDGET_PLACES = 6
MAX_BUDGET = Decimal(10 ** (BUDGET_DIGITS - BUDGET_PLACES)) - Decimal(1).scaleb(-BUDGET_PLACES)
TOKEN_NAME_LENGTH = 100
# The fields a policy has, as the CLI and the admin API name them.
POLICY_FIELDS = ("models", "rpm", "tpm", "parallel", "budget", "budget_period")


def check_policy(policy: Policy) -> Policy:
    """``policy`` with its patterns in a tuple, after checking every field; a ValueError
    names the field that is wrong (never more than a few characters of its value)."""
    models = policy.models
    if models is not None:
        if isinstance(models, str) or not all(isinstance(p, str) for p in models):
            raise ValueError("models must be a list of patterns such as 'mistral/*'")
        models = tuple(models)
        if len(models) > MAX_PATTERNS:
            raise ValueError(f"models: at most {MAX_PATTERNS} patterns")
        for pattern in models:
            if not pattern.strip() or len(pattern) > PATTERN_LENGTH or has_forbidden(pattern):
                raise ValueError(
                    f"models: each pattern must be 1 to {PATTERN_LENGTH} characters, "
                    "not blank, without control characters (such as 'mistral/*')"
                )
    for name in ("rpm", "tpm", "parallel"):
        value = getattr(policy, name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT
        ):
            raise ValueError(f"{name} must be a whole number from 1 to {MAX_COUNT}, or none")
    budget = policy.budget
    if budget is not None:
        budget = budget_value(budget)
    if policy.budget_period not in PERIODS:
        raise ValueError(f"budget_period must be one of: {', '.join(PERIODS)}")
    return Policy(
        models=models,
        rpm=policy.rpm,
        tpm=policy.tpm,
        parallel=policy.parallel,
        budget=budget,
        budget_period=policy.budget_period,
    )


def budget_value(value: object) -> Decimal:
    """A budget in US dollars, exact: a Decimal, an int or a string such as '12.50'."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValueError("budget must be an amount of US dollars such as 12.50")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError("budget must be an amount of US dollars such as 12.50") from None
    if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET:
        raise ValueError(f"budget must be from 0 to {MAX_BUDGET} US dollars")
    if amount != amount.quantize(Decimal(1).scaleb(-BUDGET_PLACES)):
        raise ValueError(f"budget has more than {BUDGET_PLACES} digits after the point")
    return amount


def money(amount: Decimal) -> str:
    """An amount without trailing zeros nor exponent: '12.5', '10'."""
    return f"{amount.normalize():f}"


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise ValueError(f"role must be one of: {', '.join(ROLES)}")
    return role  # type: ignore[return-value]  # checked just above


def check_token_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not 1 <= len(name) <= TOKEN_NAME_LENGTH:
        raise ValueError(f"a token name must be 1 to {TOKEN_NAME_LENGTH} characters")
    if has_forbidden(name) or name != name.strip():
        raise ValueError(
            "a token name must not contain control characters nor start or end with whitespace"
        )
    return name


def row_values(policy: Policy) -> dict[str, Any]:
    """The columns of a row holding ``policy`` (already checked)."""
    return {
        "models": None if policy.models is None else json.dumps(list(policy.models)),
        "rpm": policy.rpm,
        "tpm": policy.tpm,
        "parallel": policy.parallel,
        "budget": policy.budget,
        "budget_period": policy.budget_period,
    }


def from_columns(
    models: str | None,
    rpm: int | None,
    tpm: int | None,
    parallel: int | None,
    budget: Decimal | float | None,
    budget_period: str | None,
) -> Policy | None:
    """The policy in a row's columns; None for no row (every column None)."""
    if budget_period is None:  # NOT NULL in a row: an outer join that found none
        return None
    if isinstance(budget, float):  # SQLite keeps NUMERIC as a float when it has a fraction
        budget = Decimal(repr(budget)) if math.isfinite(budget) else None
    elif isinstance(budget, int):
        budget = Decimal(budget)
    if budget is not None:  # one form on every backend: 12.5, not 12.500000
        budget = Decimal(money(budget))
    return Policy(
        models=None if models is None else tuple(json.loads(models)),
        rpm=rpm,
        tpm=tpm,
        parallel=parallel,
        budget=budget,
        budget_period=budget_period,  # type: ignore[arg-type]  # written checked
    )


def row_policy(row: PolicyRow | None) -> Policy | None:
    if row is None:
        return None
    return from_columns(row.models, row.rpm, row.tpm, row.parallel, row.budget, row.budget_period)


_COLUMNS = ("models", "rpm", "tpm", "parallel", "budget", "budget_period")
_TOKEN = aliased(PolicyRow, name="token_policy")
_OWN = aliased(PolicyRow, name="user_policy")
_DEFAULT = aliased(PolicyRow, name="default_policy")


def _labelled(alias: Any, prefix: str) -> list[Any]:
    return [getattr(alias, name).label(f"{prefix}_{name}") for name in _COLUMNS]


def caller_query(*head: Any, with_token: bool) -> Select[Any]:
    """SELECT ``head``, the user's id, name and role, the user's own policy and the default
    (and with ``with_token`` the token's id, name and policy: the query must then join
    ``api_tokens``): one statement for a whole ``UserRecord``. The caller adds the FROM
    clause's start (``select_from``) and the WHERE clause."""
    columns: list[Any] = [*head, User.id, User.name, User.role]
    if with_token:
        columns += [ApiToken.id.label("token_id"), ApiToken.name.label("token_name")]
        columns += _labelled(_TOKEN, "t")
    columns += _labelled(_OWN, "u") + _labelled(_DEFAULT, "d")
    return select(*columns)


def caller_joins(query: Select[Any], *, with_token: bool) -> Select[Any]:
    """The outer joins of ``caller_query``'s policies, after its FROM's own joins."""
    if with_token:
        query = query.outerjoin(_TOKEN, _TOKEN.token_id == ApiToken.id)
    return query.outerjoin(_OWN, _OWN.user_id == User.id).outerjoin(
        _DEFAULT, and_(_DEFAULT.is_default == true())
    )


def _policy_of(row: Any, prefix: str) -> Policy | None:
    return from_columns(*(getattr(row, f"{prefix}_{name}") for name in _COLUMNS))


def caller_record(row: Any, *, with_token: bool) -> UserRecord:
    """The ``UserRecord`` of one row of ``caller_query``."""
    own = _policy_of(row, "u")
    return UserRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        token_id=row.token_id if with_token else None,
        token_name=row.token_name if with_token else None,
        policy=own if own is not None else _policy_of(row, "d"),
        token_policy=_policy_of(row, "t") if with_token else None,
    )


def describe(policy: Policy | None) -> str:
    """A policy on one line, as the commands list it: 'models=mistral/* rpm=60 ...'; '-'
    for none."""
    if policy is None or policy.empty():
        return "-"
    parts = []
    if policy.models is not None:
        parts.append("models=" + (",".join(policy.models) or "(none)"))
    for name in ("rpm", "tpm", "parallel"):
        value = getattr(policy, name)
        if value is not None:
            parts.append(f"{name}={value}")
    if policy.budget is not None:
        parts.append(f"budget=${money(policy.budget)}/{policy.budget_period}")
    return " ".join(parts)
