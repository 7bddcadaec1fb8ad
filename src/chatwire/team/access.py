"""The models a caller may use: both policies' ``models`` patterns must match the chat's
``provider/model`` (shell-style, case-sensitive: ``mistral/*``, ``anthropic/claude-*``), the
token's and the user's (or the operator's default standing in for it). A policy without
``models`` allows every model; an empty list allows none.

Checked in every front door's pipeline once the provider and model are resolved, before
anything is asked of an upstream (``allow_model``), and by the listings (/v1/models,
/api/models), which name only what the caller may use (``may_use``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from chatwire.errors import ModelNotAllowed
from chatwire.store.records import Policy, UserRecord


def matches(patterns: tuple[str, ...], name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def may_use(user: UserRecord, name: str) -> bool:
    """Whether both of the caller's policies allow the model ``name`` (``provider/model``)."""
    for policy in (user.token_policy, user.policy):
        if policy is not None and policy.models is not None and not matches(policy.models, name):
            return False
    return True


def allow_model(user: UserRecord, provider: str, model: str) -> None:
    """A 403 naming the allowed patterns when a policy of the caller's does not allow
    ``provider/model``; nothing to do (two attribute reads) for a caller without lists."""
    token, own = user.token_policy, user.policy
    if (token is None or token.models is None) and (own is None or own.models is None):
        return
    name = f"{provider}/{model}"
    if token is not None and token.models is not None and not matches(token.models, name):
        raise _refused(_token_label(user), token, name)
    if own is not None and own.models is not None and not matches(own.models, name):
        raise _refused(f"User '{user.name}'", own, name)


def _token_label(user: UserRecord) -> str:
    if user.token_name is not None:
        return f"Token '{user.token_name}'"
    return f"Token {user.token_id}" if user.token_id is not None else "This token"


def _refused(who: str, policy: Policy, name: str) -> ModelNotAllowed:
    assert policy.models is not None
    allowed = policy.models
    which = (
        f"the models it may use are: {', '.join(allowed)}"
        if allowed
        else "it may use no model at all"
    )
    return ModelNotAllowed(f"{who} may not use the model '{name[:200]}'; {which}.", allowed)
