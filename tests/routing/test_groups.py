"""The routes file: TOML and YAML read alike; every mistake named by file, group and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatwire.routing.groups import Group, RoutesInvalid, load_routes

PROVIDERS = {"mistral": object(), "anthropic": object()}
GOOD = """
[groups.team-large]
strategy = "weighted"
label = "Team large"
[[groups.team-large.deployments]]
name = "eu"
provider = "mistral"
model = "mistral-large-latest"
weight = 3
[[groups.team-large.deployments]]
provider = "anthropic"
model = "claude-sonnet-4-5"
key = "user"
priority = 1
"""


def _load(tmp_path: Path, text: str, name: str = "routes.toml") -> dict[str, Group]:
    path = tmp_path / name
    path.write_text(text)
    return load_routes(path, PROVIDERS)


def test_a_toml_file_is_read(tmp_path: Path) -> None:
    groups = _load(tmp_path, GOOD)
    group = groups["team-large"]
    assert (group.strategy, group.label) == ("weighted", "Team large")
    eu, claude = group.deployments
    assert (eu.name, eu.weight, eu.key, eu.priority) == ("eu", 3.0, "operator", 0)
    assert (claude.name, claude.key, claude.priority) == ("anthropic/claude-sonnet-4-5", "user", 1)


def test_a_yaml_file_is_read_the_same(tmp_path: Path) -> None:
    yaml_text = """
groups:
  team-large:
    strategy: weighted
    label: Team large
    deployments:
      - {name: eu, provider: mistral, model: mistral-large-latest, weight: 3}
      - {provider: anthropic, model: claude-sonnet-4-5, key: user, priority: 1}
"""
    assert _load(tmp_path, yaml_text, "routes.yaml") == _load(tmp_path, GOOD)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[groups.g]\nstrategy = 'fastest'\n", "group 'g': field 'strategy' is 'fastest'"),
        ("[groups.g]\n", "group 'g': field 'deployments'"),
        (
            "[[groups.g.deployments]]\nprovider = 'nobody'\nmodel = 'm'\n",
            "group 'g', deployment 1: field 'provider' names 'nobody'",
        ),
        (
            "[[groups.g.deployments]]\nprovider = 'mistral'\n",
            "group 'g', deployment 1: field 'model' is required",
        ),
        (
            "[[groups.g.deployments]]\nprovider = 'mistral'\nmodel = 'm'\nkey = 'env'\n",
            "group 'g', deployment 1: field 'key' is 'env'",
        ),
        (
            "[[groups.g.deployments]]\nprovider = 'mistral'\nmodel = 'm'\nweight = -1\n",
            "field 'weight' must be a number >= 0",
        ),
        (
            "[[groups.g.deployments]]\nprovider = 'mistral'\nmodel = 'm'\nwieght = 2\n",
            "group 'g', deployment 1: unknown field(s) wieght",
        ),
        (
            "[[groups.g.deployments]]\nprovider = 'mistral'\nmodel = 'm'\n"
            "[[groups.g.deployments]]\nprovider = 'mistral'\nmodel = 'm'\n",
            "group 'g': two deployments are named 'mistral/m'",
        ),
        ("[groups]\n", "no [groups.<name>] tables"),
        ("groups = [", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_group_and_field(tmp_path: Path, text: str, said: str) -> None:
    with pytest.raises(RoutesInvalid) as caught:
        _load(tmp_path, text)
    assert str(caught.value).startswith(str(tmp_path / "routes.toml"))
    assert said in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RoutesInvalid, match=r"missing\.toml: cannot be read"):
        load_routes(tmp_path / "missing.toml", PROVIDERS)


def test_the_readme_routes_file_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Routing: one model name") :]
    text = section[section.index("```toml\n") + 8 : section.index("```\n", 10)]
    path = tmp_path / "routes.toml"
    path.write_text(text)
    providers = dict.fromkeys(("openai", "openai-eu", "mistral", "anthropic"), object())
    groups = load_routes(path, providers)
    assert [d.name for d in groups["team-large"].deployments] == [
        "openai-eu",
        "openai-us",
        "mistral-fallback",
    ]
    assert groups["claude-sonnet-4-5"].strategy == "weighted"
