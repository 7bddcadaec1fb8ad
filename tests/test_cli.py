"""The ``chatwire`` command end to end, as a user runs it: a real subprocess each time, on a
data directory under tmp_path, with no provider key and no database URL from the caller. The
tests of what the commands say and store, not of the process around them, run the same
command line in this process instead (``InProcess``: the same environment, working
directory, stdin, exit code, stdout and stderr, and an uncaught exception shown as the
traceback a process would print).

The helpers here (``Cli``, ``make_cli``, ``token_of``...) are shared with ``test_serve`` and
``test_demo``.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import threading
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, chdir
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import chatwire
from chatwire.cli import open_store
from chatwire.core.config import Settings
from chatwire.providers.registry import declarations
from chatwire.store.repo import Store

# Every provider variable chatwire reads (the declarations' credentials): a developer's real key in
# the environment must neither reach these tests nor change what they see.
PROVIDER_VARIABLES = frozenset(
    credential.env
    for provider in declarations()
    for credential in provider.credentials
    if credential.env is not None
)
CONSOLE_SCRIPT = Path(sys.executable).with_name("chatwire")
COMMAND_TIMEOUT = 30.0
TOKEN = re.compile(r"cw_[A-Za-z0-9_-]{20,}")


def user_env(data_dir: Path) -> dict[str, str]:
    """The caller's environment without any CHATWIRE_* or provider variable, and the data
    directory given."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CHATWIRE_") and name not in PROVIDER_VARIABLES
    }
    env["CHATWIRE_DATA_DIR"] = str(data_dir)
    return env


@dataclass(frozen=True, slots=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"chatwire {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )


@dataclass(frozen=True, slots=True)
class Cli:
    """Runs ``chatwire`` the way a user would, in ``cwd`` (so no stray .env is read)."""

    data_dir: Path
    cwd: Path
    env: dict[str, str]

    def command(self, *, script: bool = False) -> list[str]:
        return [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "chatwire"]

    def run(
        self, *args: str, stdin: str | None = None, script: bool = False, umask: int = -1
    ) -> Result:
        done = subprocess.run(  # noqa: S603 (our own command, fixed arguments)
            [*self.command(script=script), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.cwd,
            timeout=COMMAND_TIMEOUT,
            umask=umask,
            check=False,
        )
        return Result(args, done.returncode, done.stdout, done.stderr)

    async def __call__(self, *args: str, stdin: str | None = None, script: bool = False) -> Result:
        """Run the command in a thread, so several can run at once and the loop stays free."""
        return await asyncio.to_thread(self.run, *args, stdin=stdin, script=script)

    async def ok(self, *args: str, stdin: str | None = None, script: bool = False) -> Result:
        result = await self(*args, stdin=stdin, script=script)
        assert result.returncode == 0, result
        assert "Traceback" not in result.stderr, result
        return result

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir, database_url=None, secret_key=None)

    @asynccontextmanager
    async def store(self) -> AsyncIterator[Store]:
        """The store the commands wrote to, opened in the test process."""
        async with open_store(self.settings()) as store:
            yield store


# CliRunner swaps the process's stdin, stdout, stderr and environment while a command runs:
# one command at a time.
_ONE_AT_A_TIME = threading.Lock()


@dataclass(frozen=True, slots=True)
class InProcess(Cli):
    """Runs the same ``chatwire`` command line in this process (click's CliRunner): no
    interpreter start per command. Commands given to run at once take turns."""

    def run(
        self, *args: str, stdin: str | None = None, script: bool = False, umask: int = -1
    ) -> Result:
        assert not script, "the console script is a process of its own: use Cli"
        assert umask == -1, "a umask is a process's: use Cli"
        from chatwire.cli import main

        # The caller's CHATWIRE_* and provider variables unset, as user_env leaves them out.
        env: dict[str, str | None] = {name: None for name in os.environ}
        env.update(self.env)
        with _ONE_AT_A_TIME, chdir(self.cwd):
            done = CliRunner(env=env).invoke(
                main, list(args), input=stdin if stdin is not None else "", prog_name="chatwire"
            )
        stderr = done.stderr
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            stderr += "".join(traceback.format_exception(done.exception))
        return Result(args, done.exit_code, done.stdout, stderr)


def make_cli(tmp_path: Path, name: str = "data") -> Cli:
    data_dir = tmp_path / name
    return Cli(data_dir=data_dir, cwd=tmp_path, env=user_env(data_dir))


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return make_cli(tmp_path)


def in_process_of(cli: Cli) -> InProcess:
    """``cli``'s commands (its data directory, working directory and environment), run in
    this process."""
    return InProcess(data_dir=cli.data_dir, cwd=cli.cwd, env=cli.env)


@pytest.fixture
def in_process(tmp_path: Path) -> Cli:
    return in_process_of(make_cli(tmp_path))


def token_of(result: Result) -> str:
    """The token a command printed: it must be alone on stdout, on one line."""
    assert result.stdout.endswith("\n"), result
    token = result.stdout.removesuffix("\n")
    assert TOKEN.fullmatch(token), result
    return token


def assert_fails(result: Result, *phrases: str) -> None:
    """A clear failure: non-zero exit, an 'Error:' line on stderr, no traceback, no stdout."""
    assert result.returncode != 0, result
    assert result.stdout == "", result
    assert "Error:" in result.stderr, result
    assert "Traceback" not in result.stderr, result
    for phrase in phrases:
        assert phrase in result.stderr, result


def rows(result: Result) -> list[list[str]]:
    """A listing's lines, split at tabs."""
    return [line.split("\t") for line in result.stdout.splitlines()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def user_of(cli: Cli, token: str) -> str | None:
    async with cli.store() as store:
        user = await store.user_for_token(token)
    return None if user is None else user.name


async def test_version(cli: Cli) -> None:
    result = await cli.ok("--version")
    assert result.stdout == f"chatwire, version {chatwire.__version__}\n"


async def test_users_create_prints_the_token_alone(cli: Cli) -> None:
    created = await cli.ok("users", "create", "alice", script=True)
    token = token_of(created)
    assert token.startswith("cw_")
    assert token not in created.stderr
    assert await user_of(cli, token) == "alice"

    # What the command says of a bad name is its own, not its process's.
    inside = in_process_of(cli)
    again, invalid, listed = await asyncio.gather(
        inside("users", "create", "alice"),
        inside("users", "create", " alice"),
        inside("users", "list"),
    )
    assert_fails(again, "user 'alice' exists already", "chatwire tokens create alice")
    assert_fails(invalid, "must not start or end with whitespace")
    assert listed.returncode == 0, listed
    assert [(name, role) for _, name, role, _ in rows(listed)] == [("alice", "admin")]


async def test_tokens_create_list_and_revoke(in_process: Cli) -> None:
    cli = in_process
    first = token_of(await cli.ok("users", "create", "alice"))
    created = await asyncio.gather(*(cli.ok("tokens", "create", "alice") for _ in range(3)))
    second, third, fourth = (token_of(result) for result in created)
    assert len({first, second, third, fourth}) == 4
    assert await user_of(cli, second) == "alice"

    listed, nobody = await asyncio.gather(
        cli.ok("tokens", "list", "alice"), cli("tokens", "create", "bob")
    )
    assert_fails(nobody, "no user 'bob'", "chatwire users create bob")
    for token in (first, second, third, fourth):
        assert token not in listed.stdout
    ids = [int(token_id) for token_id, _, state, _, _ in rows(listed) if state == "active"]
    assert len(ids) == 4
    first_id = min(ids)  # 'users create' made it before the others

    # By id, and by value read from stdin (never from argv): exactly those two.
    by_id, by_value, unknown = await asyncio.gather(
        cli("tokens", "revoke", str(first_id)),
        cli("tokens", "revoke", stdin=second + "\n"),
        cli("tokens", "revoke", stdin="cw_not-a-token-of-anyone\n"),
    )
    for revoked in (by_id, by_value):
        assert revoked.returncode == 0, revoked
        assert "revoked" in revoked.stderr
    assert second not in by_value.stdout + by_value.stderr
    assert_fails(unknown, "no such active token")
    assert [await user_of(cli, token) for token in (first, second, third, fourth)] == [
        None,
        None,
        "alice",
        "alice",
    ]

    # --user: every token still active (third and fourth); a revoked id stays revoked.
    everything, again, nobody = await asyncio.gather(
        cli("tokens", "revoke", "--user", "alice"),
        cli("tokens", "revoke", str(first_id)),
        cli("tokens", "revoke", "--user", "bob"),
    )
    assert everything.returncode == 0, everything
    assert "revoked 2 token(s) of 'alice'" in everything.stderr
    assert_fails(again, "no such active token")
    assert_fails(nobody, "no user 'bob'")
    for token in (first, second, third, fourth):
        assert await user_of(cli, token) is None
    states = [state for _, _, state, _, _ in rows(await cli.ok("tokens", "list", "alice"))]
    assert len(states) == 4
    assert all(state.startswith("revoked 20") for state in states), states


async def test_keys_set_list_and_clear(in_process: Cli) -> None:
    cli = in_process
    raw = "sk-raw-" + secrets.token_hex(16)  # random: an appearance can't be a coincidence
    await cli.ok("users", "create", "alice")

    stored, unknown_provider, on_argv, nobody_set, nobody_list = await asyncio.gather(
        cli.ok("keys", "set", "alice", "mistral", stdin=raw + "\n"),
        cli("keys", "set", "alice", "mistrall", stdin=raw + "\n"),
        cli("keys", "set", "alice", "openai", raw, stdin=raw + "\n"),
        cli("keys", "set", "bob", "mistral", stdin=raw + "\n"),
        cli("keys", "list", "bob"),
    )
    assert "mistral_api_key" in stored.stderr
    assert_fails(unknown_provider, "unknown provider", "'mistrall'")
    for name in ("openai", "anthropic", "google", "mistral", "groq", "openrouter"):
        assert name in unknown_provider.stderr
    assert on_argv.returncode == 2, on_argv  # a usage error: a key is never taken from argv
    assert "unexpected extra argument" in on_argv.stderr
    assert_fails(nobody_set, "no user 'bob'")
    assert_fails(nobody_list, "no user 'bob'")

    listed = await cli.ok("keys", "list", "alice")
    shown = {row[0]: row[1] for row in rows(listed)}
    assert shown["mistral_api_key"] == f"{raw[:3]}...{raw[-4:]}"
    assert shown["openai_api_key"] == "-"
    for result in (stored, unknown_provider, nobody_set, nobody_list, listed):
        assert raw not in result.stdout + result.stderr, result
    async with cli.store() as store:
        alice = await store.get_user("alice")
        assert alice is not None
        assert (await store.get_profile(alice.id)).get("mistral_api_key") == raw

    cleared = await cli.ok("keys", "clear", "alice", "mistral")
    assert "cleared" in cleared.stderr
    async with cli.store() as store:
        profile = await store.get_profile(alice.id)
    assert profile.values == dict.fromkeys(profile.values)  # nothing left, openai included


def test_db_upgrade_creates_a_private_data_dir(tmp_path: Path) -> None:
    # Nested and missing, with umask 0: the modes must not depend on the caller's umask.
    cli = make_cli(tmp_path, "fresh/data")
    result = cli.run("db", "upgrade", umask=0)
    assert result.returncode == 0, result
    assert "up to date" in result.stderr
    assert mode(cli.data_dir) == 0o700
    assert mode(cli.data_dir / "secret.key") == 0o600
    assert mode(cli.data_dir / "chatwire.db") == 0o600
    for path in cli.data_dir.iterdir():  # -wal / -shm too, if SQLite left any
        assert mode(path) == 0o600, path


# What --version, --help and a command's help must not load (README, Development).
HEAVY_MODULES = (
    "alembic",
    "sqlalchemy",
    "pydantic",
    "pydantic_settings",
    "cryptography",
    "aiohttp",
    "fastapi",
    "starlette",
    "uvicorn",
    "chatwire.app",
    "chatwire.server",
    "chatwire.store.repo",
)
RUN_THE_COMMAND = """
from chatwire.cli import main
try:
    main(sys.argv[1:], prog_name="chatwire")
except SystemExit:
    pass
"""


def loaded_by(cli: Cli, code: str, *args: str, among: tuple[str, ...]) -> list[str]:
    """The modules of ``among`` (packages and their submodules) that running ``code`` in a
    fresh interpreter imported."""
    script = (
        f"import sys\n{code}\n"
        f"print(sorted(n for n in sys.modules if n in {among!r} or n.split('.')[0] in {among!r}),"
        " file=sys.stderr)"
    )
    done = subprocess.run(  # noqa: S603 (our own command, fixed arguments)
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
        timeout=COMMAND_TIMEOUT,
        check=True,
    )
    loaded: list[str] = ast.literal_eval(done.stderr.splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "args",
    [("--version",), ("--help",), ("users", "--help"), ("db", "revision", "--help")],
)
def test_help_and_version_load_nothing_heavy(cli: Cli, args: tuple[str, ...]) -> None:
    assert loaded_by(cli, RUN_THE_COMMAND, *args, among=HEAVY_MODULES) == []


def test_the_app_does_not_load_alembic(cli: Cli) -> None:
    # Migrations run in `chatwire serve` before the app starts; its workers never migrate.
    code = "import chatwire.app, chatwire.server\nchatwire.server.worker_app"
    assert loaded_by(cli, code, among=("alembic", "mako")) == []


def test_db_revision_against_a_migrated_database_has_nothing_to_do(
    cli: Cli, tmp_path: Path
) -> None:
    """``chatwire db revision --autogenerate`` writes the next migration where Alembic finds
    it; against a database at head, with the models as they are, it has no operations.

    The command runs from a copy of the package (first on its PYTHONPATH), so the migration
    it writes is the copy's: one written into the source tree would be seen, while it
    existed, by every other test process migrating a database at the same time."""
    source_tree = Path(chatwire.__file__).parent
    real_versions = source_tree / "migrations" / "versions"
    untouched = _files_of(real_versions)
    copy = tmp_path / "package"
    shutil.copytree(source_tree, copy / "chatwire", ignore=shutil.ignore_patterns("__pycache__"))
    versions = copy / "chatwire" / "migrations" / "versions"
    head = max(int(path.name[:4]) for path in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))
    number, previous = f"{head + 1:04d}", f"{head:04d}"
    cli.env["PYTHONPATH"] = str(copy)
    result = cli.run("db", "revision", "-m", "Nothing to change", "--autogenerate")
    assert result.returncode == 0, result
    written = Path(result.stdout.removesuffix("\n"))
    assert written == versions / f"{number}_nothing_to_change.py", result
    source = written.read_text()
    assert f"revision: str = '{number}'" in source
    assert f"down_revision: str | None = '{previous}'" in source
    functions = {
        node.name: node.body for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)
    }
    assert set(functions) == {"upgrade", "downgrade"}
    for body in functions.values():
        assert [type(statement) for statement in body] == [ast.Pass], source
    assert _files_of(real_versions) == untouched


def _files_of(folder: Path) -> set[Path]:
    """The files under ``folder``, bytecode caches left out (other test processes write
    them at any time)."""
    return {path for path in folder.rglob("*") if "__pycache__" not in path.parts}
