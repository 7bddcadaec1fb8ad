"""The routes file (``CHATWIRE_ROUTES_FILE``): model groups, each a public name for several
deployments, read and checked once at startup.

TOML (``tomllib``), or YAML for a name ending ``.yaml`` / ``.yml`` (PyYAML, which uvicorn's
standard extras already install). One table per group::

    [groups.team-large]
    strategy = "priority"           # priority | weighted | least-busy | latency
    [[groups.team-large.deployments]]
    name = "eu"                     # optional: provider/model
    provider = "azure"
    model = "gpt-4o"
    key = "operator"                # operator (CHATWIRE's environment) | user (stored key)
    priority = 0                    # lower first (priority, and ties of the others)
    weight = 3                      # weighted: share of the first picks

Every mistake is a ``RoutesInvalid`` naming the file, the group and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from chatwire.errors import ModelNotAllowed
from chatwire.team.access import matches

if TYPE_CHECKING:
    from chatwire.dialects.base import Request
    from chatwire.store.records import UserRecord

Strategy = Literal["priority", "weighted", "least-busy", "latency"]
KeySource = Literal["operator", "user"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
KEY_SOURCES: tuple[str, ...] = get_args(KeySource)
# chatbot-ui's route for a group: /api/chat/route, the group's name as the model.
ROUTE = "route"
_GROUP_FIELDS = frozenset({"strategy", "deployments", "label"})
_DEPLOYMENT_FIELDS = frozenset({"name", "provider", "model", "key", "weight", "priority"})


class RoutesInvalid(ValueError):
    """The routes file cannot be used; the message names the file, group and field."""


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    provider: str
    model: str
    key: KeySource = "operator"
    weight: float = 1.0
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    strategy: Strategy
    deployments: tuple[Deployment, ...]
    label: str | None = None


def load_routes(path: Path, providers: Mapping[str, Any]) -> dict[str, Group]:
    """The groups of the routes file at ``path``; ``providers``: the names deployments may
    name (the registry's)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesInvalid(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    data = _parse(path, text)
    groups = data.get("groups")
    if not isinstance(groups, dict) or not groups:
        raise RoutesInvalid(f"{path}: no [groups.<name>] tables (a group per public name).")
    unknown = set(data) - {"groups"}
    if unknown:
        raise RoutesInvalid(f"{path}: unknown top-level field(s) {', '.join(sorted(unknown))}.")
    return {str(name): _group(path, str(name), value, providers) for name, value in groups.items()}


def _parse(path: Path, text: str) -> dict[str, Any]:
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RoutesInvalid(f"{path}: not valid YAML: {exc}") from exc
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RoutesInvalid(f"{path}: not valid TOML: {exc}") from exc
    if not isinstance(data, dict):
        raise RoutesInvalid(f"{path}: expected a table of groups at the top.")
    return data


def _group(path: Path, name: str, value: Any, providers: Mapping[str, Any]) -> Group:
    where = f"{path}: group '{name}'"
    if not name or "/" in name or name != name.strip():
        raise RoutesInvalid(f"{where}: a group's name has no '/' and no surrounding spaces.")
    if not isinstance(value, dict):
        raise RoutesInvalid(f"{where}: expected a table.")
    unknown = set(value) - _GROUP_FIELDS
    if unknown:
        raise RoutesInvalid(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    strategy = value.get("strategy", "priority")
    if strategy not in STRATEGIES:
        raise RoutesInvalid(
            f"{where}: field 'strategy' is {strategy!r}; one of {', '.join(STRATEGIES)}."
        )
    label = value.get("label")
    if label is not None and not isinstance(label, str):
        raise RoutesInvalid(f"{where}: field 'label' must be a string.")
    listed = value.get("deployments")
    if not isinstance(listed, list) or not listed:
        raise RoutesInvalid(f"{where}: field 'deployments' must list at least one deployment.")
    deployments = tuple(
        _deployment(f"{where}, deployment {index + 1}", item, providers)
        for index, item in enumerate(listed)
    )
    names = [d.name for d in deployments]
    for seen in names:
        if names.count(seen) > 1:
            raise RoutesInvalid(
                f"{where}: two deployments are named '{seen}'; give them distinct 'name's."
            )
    if strategy == "weighted" and not any(d.weight > 0 for d in deployments):
        raise RoutesInvalid(f"{where}: field 'weight': a weighted group needs one weight > 0.")
    return Group(name, strategy, deployments, label)


def _deployment(where: str, item: Any, providers: Mapping[str, Any]) -> Deployment:
    if not isinstance(item, dict):
        raise RoutesInvalid(f"{where}: expected a table.")
    unknown = set(item) - _DEPLOYMENT_FIELDS
    if unknown:
        raise RoutesInvalid(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    provider = _text(where, item, "provider")
    if provider not in providers:
        known = ", ".join(sorted(providers))
        raise RoutesInvalid(
            f"{where}: field 'provider' names '{provider}', not a provider (known: {known})."
        )
    model = _text(where, item, "model")
    name = item.get("name", f"{provider}/{model}")
    if not isinstance(name, str) or not name.strip():
        raise RoutesInvalid(f"{where}: field 'name' must be a non-empty string.")
    key = item.get("key", "operator")
    if key not in KEY_SOURCES:
        raise RoutesInvalid(f"{where}: field 'key' is {key!r}; one of {', '.join(KEY_SOURCES)}.")
    weight = item.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise RoutesInvalid(f"{where}: field 'weight' must be a number >= 0.")
    priority = item.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise RoutesInvalid(f"{where}: field 'priority' must be an integer.")
    return Deployment(name.strip(), provider, model, key, float(weight), priority)


def _text(where: str, item: dict[str, Any], field: str) -> str:
    value = item.get(field)
    if not isinstance(value, str) or not value.strip():
        raise RoutesInvalid(f"{where}: field '{field}' is required (a non-empty string).")
    return value.strip()


def group_named(routes: dict[str, Group], request: Request) -> Group | None:
    """The group a request names: by its model alone, or on chatbot-ui's route ``route``."""
    if request.provider is None or request.provider == ROUTE:
        return routes.get(request.name)
    return None


def allow_group(user: UserRecord, group: str) -> None:
    """A 403 when a policy of the caller's does not allow the group's name (its patterns
    match the name as /v1/models lists it)."""
    for policy in (user.token_policy, user.policy):
        if policy is not None and policy.models is not None and not matches(policy.models, group):
            raise ModelNotAllowed(
                f"You may not use the model '{group[:200]}'; the models you may use are: "
                f"{', '.join(policy.models) or 'none'}.",
                policy.models,
            )
