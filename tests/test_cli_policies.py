"""The commands for roles, token names and limits, as a user runs them (``InProcess``: the
same command lines, in this process): their options, what they print, what they store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from chatwire.store.records import Policy
from tests.test_cli import Cli, assert_fails, in_process_of, make_cli, rows, token_of


@pytest.fixture
def in_process(tmp_path: Path) -> Cli:
    return in_process_of(make_cli(tmp_path))


async def test_tokens_create_with_a_name_and_limits(in_process: Cli) -> None:
    cli = in_process
    await cli.ok("users", "create", "alice")
    created = await cli.ok(
        "tokens",
        "create",
        "alice",
        "--name",
        "ci-bot",
        "--models",
        "mistral/*,anthropic/claude-*",
        "--models",
        "openai/gpt-4o*",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--parallel",
        "4",
        "--budget",
        "12.50",
        "--budget-period",
        "day",
    )
    token = token_of(created)  # alone on stdout, as without options
    assert "(ci-bot) of 'alice'" in created.stderr
    bot = Policy(
        models=("mistral/*", "anthropic/claude-*", "openai/gpt-4o*"),
        rpm=60,
        tpm=100_000,
        parallel=4,
        budget=Decimal("12.5"),
        budget_period="day",
    )
    async with cli.store() as store:
        found = await store.user_for_token(token)
    assert found is not None
    assert found.token_name == "ci-bot"
    assert found.token_policy == bot

    listed = rows(await cli.ok("tokens", "list", "alice"))
    assert [row[3:] for row in listed] == [
        ["-", "-"],
        [
            "ci-bot",
            "models=mistral/*,anthropic/claude-*,openai/gpt-4o* rpm=60 tpm=100000 parallel=4 "
            "budget=$12.5/day",
        ],
    ]
    again, zero, words, nobody = await asyncio.gather(
        cli("tokens", "create", "alice", "--name", "ci-bot"),
        cli("tokens", "create", "alice", "--rpm", "0"),
        cli("tokens", "create", "alice", "--budget", "lots"),
        cli("tokens", "create", "bob", "--rpm", "5"),
    )
    assert_fails(again, "'alice' has a token named 'ci-bot' already")
    assert zero.returncode == 2
    assert "--rpm" in zero.stderr
    assert words.returncode == 2
    assert "--budget" in words.stderr
    assert_fails(nobody, "no user 'bob'")


async def test_tokens_limit_changes_only_what_is_given(in_process: Cli) -> None:
    cli = in_process
    await cli.ok("users", "create", "alice")
    token_of(await cli.ok("tokens", "create", "alice", "--rpm", "60", "--budget", "5"))
    token_id = rows(await cli.ok("tokens", "list", "alice"))[-1][0]

    shown = await cli.ok("tokens", "limit", token_id)
    assert shown.stdout == f"{token_id}\trpm=60 budget=$5/month\n"
    changed = await cli.ok("tokens", "limit", token_id, "--rpm", "none", "--tpm", "1000")
    assert changed.stdout == f"{token_id}\ttpm=1000 budget=$5/month\n"
    models = await cli.ok("tokens", "limit", token_id, "--models", "mistral/*")
    assert models.stdout == f"{token_id}\tmodels=mistral/* tpm=1000 budget=$5/month\n"
    anything = await cli.ok("tokens", "limit", token_id, "--models", "none")
    assert anything.stdout == f"{token_id}\ttpm=1000 budget=$5/month\n"
    cleared = await cli.ok("tokens", "limit", token_id, "--clear")
    assert cleared.stdout == f"{token_id}\t-\n"
    async with cli.store() as store:
        record = await store.get_token(int(token_id))
    assert record is not None
    assert record.policy is None

    nothing, both, bad = await asyncio.gather(
        cli("tokens", "limit", "999", "--rpm", "1"),
        cli("tokens", "limit", token_id, "--clear", "--rpm", "1"),
        cli("tokens", "limit", token_id, "--budget", "0.0000001"),
    )
    assert_fails(nothing, "no token with id 999")
    assert both.returncode == 2
    assert "--clear removes the whole policy" in both.stderr
    assert_fails(bad, "budget has more than 6 digits after the point")


async def test_users_limit_role_and_list(in_process: Cli) -> None:
    cli = in_process
    await cli.ok("users", "create", "alice")
    await cli.ok("users", "create", "bob")
    listed = rows(await cli.ok("users", "list"))
    assert [row[1:] for row in listed] == [["alice", "admin", "-"], ["bob", "member", "-"]]

    default = await cli.ok("users", "limit", "--default", "--rpm", "30", "--parallel", "2")
    assert default.stdout == "default\trpm=30 parallel=2\n"
    own = await cli.ok(
        "users",
        "limit",
        "bob",
        "--models",
        "openai/*",
        "--budget",
        "100",
        "--budget-period",
        "week",
    )
    assert own.stdout == "bob\tmodels=openai/* budget=$100/week\n"
    listed = rows(await cli.ok("users", "list"))
    assert [row[1:] for row in listed] == [
        ["alice", "admin", "default: rpm=30 parallel=2"],
        ["bob", "member", "models=openai/* budget=$100/week"],
    ]
    assert (await cli.ok("users", "limit", "bob")).stdout == own.stdout
    assert (await cli.ok("users", "limit", "--default")).stdout == default.stdout
    cleared = await cli.ok("users", "limit", "bob", "--clear")
    assert cleared.stdout == "bob\t- (the default applies)\n"
    assert (await cli.ok("users", "limit", "--default", "--clear")).stdout == "default\t-\n"

    last = await cli("users", "role", "alice", "member")
    assert_fails(last, "'alice' is the only admin")
    promoted = await cli.ok("users", "role", "bob", "admin")
    assert "'bob' is now an admin" in promoted.stderr
    await cli.ok("users", "role", "alice", "member")
    listed = rows(await cli.ok("users", "list"))
    assert [row[1:3] for row in listed] == [["alice", "member"], ["bob", "admin"]]

    nobody, neither, owner, zero = await asyncio.gather(
        cli("users", "limit", "carol", "--rpm", "1"),
        cli("users", "limit", "--rpm", "1"),
        cli("users", "role", "bob", "owner"),
        cli("users", "limit", "bob", "--tpm", "-3"),
    )
    assert_fails(nobody, "no user 'carol'")
    assert neither.returncode == 2
    assert "give a user's name or --default" in neither.stderr
    assert owner.returncode == 2
    assert zero.returncode == 2
    async with cli.store() as store:
        assert await store.default_policy() is None
