"""The wheel as a user installs it: it ships only the product, and every command runs with
only the dependencies it declares.

The wheel is built from a copy of the sources (``pip wheel --no-deps``) and installed in a
fresh virtual environment together with its declared dependencies and nothing else. There,
every module of the package is imported (so what a command imports when it runs is covered
too), every command's ``--help`` is shown, and ``chatwire demo``, started by its console
script, runs the migrations and answers a chat.

The dependencies are not downloaded: the distributions the wheel's ``Requires-Dist`` needs,
followed transitively with their extras and markers, are linked in from this environment,
file by file from their RECORD, at the versions installed here. So the test needs no network
and takes seconds, and the fresh environment holds exactly what a user's ``pip install``
would bring, httpx and the other test tools not among them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import httpx
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_cli import user_env
from tests.test_demo import banner_of, printed_curl
from tests.test_serve import Served

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 60.0

# Run inside the fresh environment: import every module, show every command's --help, and
# python -m chatwire --version.
INSPECT = """
import contextlib, importlib, importlib.util, io, json, pkgutil, runpy, sys
import click
from click.testing import CliRunner
import chatwire
from chatwire.cli import main

# __main__ runs the command (below, as python -m chatwire); the migrations are Alembic's to
# run (the demo runs them).
modules = [
    m.name for m in pkgutil.walk_packages(chatwire.__path__, "chatwire.")
    if m.name != "chatwire.__main__"
]
for name in modules:
    importlib.import_module(name)

def commands(command, path):
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from commands(sub, [*path, name])

helped = []
for path in commands(main, []):
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, (path, result.output, result.exception)
    helped.append(" ".join(path))
sys.argv = ["chatwire", "--version"]
with contextlib.redirect_stdout(io.StringIO()) as version:
    try:
        runpy.run_module("chatwire", run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0, exc.code
assert version.getvalue().startswith("chatwire, version"), version.getvalue()
present = [n for n in ("httpx", "pytest", "openai") if importlib.util.find_spec(n) is not None]
print(json.dumps({"modules": modules, "commands": helped, "test_tools": present}))
"""


def build_wheel(into: Path) -> Path:
    """The wheel of a copy of the sources (a build leaves files in the tree it builds)."""
    source = into / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", str(into / "dist"), str(source)),
    )
    (wheel,) = (into / "dist").glob("chatwire-*.whl")
    return wheel


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    done = subprocess.run(  # noqa: S603 (our own commands, fixed arguments)
        args, capture_output=True, text=True, timeout=TIMEOUT, env=env, cwd=cwd, check=False
    )
    assert done.returncode == 0, f"{args} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dependencies(requires: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions these requirements need, transitively (extras and
    markers evaluated as pip does)."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(line), frozenset({""})) for line in requires]
    while todo:
        requirement, wanted_by = todo.pop()
        marker = requirement.marker
        if marker is not None and not any(marker.evaluate({"extra": e}) for e in wanted_by):
            continue
        name = canonicalize_name(requirement.name)
        extras = frozenset({"", *requirement.extras})
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        dist = found.setdefault(name, metadata.distribution(name))
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"{requirement} is declared, but {dist.version} is installed here"
        )
        todo += [(Requirement(line), extras) for line in dist.requires or []]
    return found


def link_in(dists: Iterable[metadata.Distribution], site: Path) -> None:
    """Each distribution's installed files, linked into ``site`` (scripts left out)."""
    for dist in dists:
        assert dist.files is not None, f"{dist.metadata['Name']} has no RECORD"
        for file in dist.files:
            if ".." in file.parts:
                continue  # console scripts, outside site-packages
            target = site / file
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(Path(str(file.locate())).resolve())


def test_the_wheel_runs_with_only_its_declared_dependencies(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    shipped = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in shipped} == {"chatwire", "chatwire-0.1.0.dist-info"}
    assert "chatwire/demo_upstream.py" in shipped
    assert "chatwire/catalogue.json" in shipped
    # The web pages, each file of them: nothing to fetch or build once installed.
    web = ROOT / "src/chatwire/web"
    pages = sorted(p.relative_to(web).as_posix() for p in web.rglob("*") if p.is_file())
    assert "vendor/uPlot.iife.min.js" in pages
    assert [name for name in pages if f"chatwire/web/{name}" not in shipped] == []
    assert not [name for name in shipped if name.startswith(("chatwire/testing", "tests/"))]

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel))
    (site,) = venv.glob("lib/python*/site-packages")
    # The wheel's own Requires-Dist; the test extra's lines are dropped by their marker.
    requires = metadata.Distribution.at(next(site.glob("chatwire-*.dist-info"))).requires
    link_in(dependencies(requires or []).values(), site)

    env = user_env(tmp_path / "data")
    env.pop("PYTHONPATH", None)
    found = json.loads(run(str(python), "-c", INSPECT, env=env, cwd=tmp_path))
    assert found["test_tools"] == []  # the environment holds only what chatwire declares
    assert {"chatwire.demo", "chatwire.demo_upstream", "chatwire.server"} <= set(found["modules"])
    assert {"", "serve", "demo", "db upgrade", "users create", "keys set"} <= set(found["commands"])
    assert not {"soak", "fake-upstream"} & set(found["commands"])
    demo_answers_a_chat([str(venv / "bin" / "chatwire"), "demo", "--port", "0"], env, tmp_path)


def demo_answers_a_chat(command: list[str], env: dict[str, str], tmp_path: Path) -> None:
    output = tmp_path / "demo"
    with (
        output.with_suffix(".stdout").open("wb") as stdout,
        output.with_suffix(".stderr").open("wb") as stderr,
    ):
        proc = subprocess.Popen(  # noqa: S603 (our own command, fixed arguments)
            command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=tmp_path
        )
    try:
        asyncio.run(_chat_with_the_demo(Served(proc, "", output)))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0, output.with_suffix(".stderr").read_text()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def _chat_with_the_demo(served: Served) -> None:
    await banner_of(served)
    url, headers, body = printed_curl(served, "/v1/chat/completions")
    not_streamed = {**json.loads(body), "stream": False}
    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
        resp = await client.post(url, headers=headers, json=not_streamed)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"].startswith("Hello"), resp.text
