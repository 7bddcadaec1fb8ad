"""The servers compared, each started as a user would start it, against the fake upstream.

- ``upstream``: nginx itself, called directly (what any relay adds is measured against it)
- the floors, from ../shared/bench when present, in a virtual environment of their own with
  the same uvicorn, uvloop, httptools and aiohttp versions as chatwire's:
  ``floor batched`` (floor_relay_batched.py's chatbot-ui relay: one write per upstream read,
  the response started with the first text), ``floor passthrough`` (the same server's
  ``/v1/chat/completions``: the body upstream as is, the SSE bytes back as they came) and
  ``floor per-delta`` (floor_relay.py: one write per delta)
- ``chatwire api`` and ``chatwire v1``: ``chatwire serve``, with its own data directory, a
  user and token made with the chatwire CLI, and that user's Mistral key stored
- ``chatwire v1 routed``: the same server's ``/v1/chat/completions`` asked for a routes
  file's group (``ROUTES``) whose first deployment is the upstream itself: what routing adds
  to a chat its first deployment answers, beside ``chatwire v1``
- ``litellm``: LiteLLM's proxy (only with --litellm), pinned, in a virtual environment of
  its own under the run directory, never a dependency of chatwire
- ``portkey``: Portkey's gateway (only with --portkey), the newest ``@portkey-ai/gateway``
  installed with npm under the run directory and run with Node, reaching the upstream as an
  OpenAI-compatible custom host; when its streamed replies fail, its non-streamed route,
  ``portkey (non-streamed)``, against the upstream's non-streamed reply
- ``base api`` and ``base v1`` (only with --baseline REF): chatwire as it was at the git
  commit REF, installed from that commit's tree into a virtual environment of its own, set up
  and called as the working tree's chatwire is, so a change is measured against its starting
  point in one run
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

from chatbench.procs import Processes, free_port, wait_for_port
from chatbench.upstream import LAST_WORDS, MODEL

LITELLM_VERSION = "1.108.0"
PORTKEY_PACKAGE = "@portkey-ai/gateway"
# What Portkey answers a streamed chat through a custom host, up to at least 1.15.2.
PORTKEY_STREAM_FAILURE = b"Something went wrong"
_MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello"},
]
CHATBOT_UI_BODY = json.dumps(
    {"chatSettings": {"model": MODEL, "temperature": 0.5}, "messages": _MESSAGES}
).encode()


def openai_body(model: str, stream: bool = True) -> bytes:
    return json.dumps({"model": model, "messages": _MESSAGES, "stream": stream}).encode()


# A group of two deployments (the bench's user's own Mistral key), the first one answering.
ROUTED_GROUP = "bench-group"
ROUTES = f"""
[groups.{ROUTED_GROUP}]
strategy = "priority"
[[groups.{ROUTED_GROUP}.deployments]]
name = "first"
provider = "mistral"
model = "{MODEL}"
key = "user"
[[groups.{ROUTED_GROUP}.deployments]]
name = "fallback"
provider = "mistral"
model = "{MODEL}"
key = "user"
priority = 1
"""


@dataclass(frozen=True)
class Target:
    """One thing to measure: where to POST, what, and whose CPU and memory it costs."""

    name: str
    url: str
    body: bytes
    pid: int
    # What the end of a complete reply carries: the last words, or the SSE end.
    done: bytes
    headers: dict[str, str] = field(default_factory=dict)
    # Sockets the server holds per open stream (a relay holds the client's and the upstream's).
    sockets_per_stream: int = 2
    # Which front door it stands for: "api" (chatbot-ui's route) or "v1" (the OpenAI route);
    # each is compared with its own floor.
    route: str = "v1"
    # False: a non-streamed reply (one JSON body), compared with the upstream's such reply.
    streamed: bool = True


@dataclass
class Setup:
    """What is installed once per run and reused by every phase."""

    run: Path
    chatwire: Path  # the chatwire command of the project's .venv
    # ../shared/bench, with floor_relay.py and floor_relay_batched.py, when present.
    floor_dir: Path | None
    floor_venv: Path | None = None
    litellm_venv: Path | None = None
    # Portkey's start-server.js and its version, when installed (--portkey).
    portkey_script: Path | None = None
    portkey_version: str = ""
    token: str = ""
    data_dir: Path = field(default_factory=Path)
    # The other chatwire measured beside this one (--baseline), with its own setup.
    baseline: Setup | None = None
    # How this chatwire's targets are named ("chatwire", or "base" for the baseline).
    label: str = "chatwire"


def _clean_env() -> dict[str, str]:
    """The environment without chatwire settings or provider keys of the caller's own."""
    drop = ("CHATWIRE_", "MISTRAL_", "OPENAI_", "LITELLM_", "PORTKEY_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def prepare_chatwire(setup: Setup, log: Path) -> None:
    """A fresh data directory, a user and token, and the user's Mistral key, via the CLI."""
    setup.data_dir = setup.run / f"{setup.label}-data"
    shutil.rmtree(setup.data_dir, ignore_errors=True)
    env = {**_clean_env(), "CHATWIRE_DATA_DIR": str(setup.data_dir)}
    with log.open("ab") as out:
        made = subprocess.run(
            [str(setup.chatwire), "users", "create", "bench"],
            env=env,
            cwd=setup.run,
            capture_output=True,
            check=True,
        )
        out.write(made.stderr)
        stored = subprocess.run(
            [str(setup.chatwire), "keys", "set", "bench", "mistral"],
            env=env,
            cwd=setup.run,
            input=b"bench-upstream-key\n",
            stdout=out,
            stderr=out,
            check=False,
        )
    if stored.returncode != 0:
        raise RuntimeError(f"chatwire keys set failed: see {log}")
    setup.token = made.stdout.decode().strip()


def install_venv(path: Path, requirements: list[str], log: Path, what: str) -> None:
    stamp = path / ".bench-installed"
    wanted = " ".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"bench: installing {what} into {path} (pip: {wanted}) ...", file=sys.stderr)
    with log.open("ab") as out:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q", *requirements]
        if subprocess.run(pip, stdout=out, stderr=out, check=False).returncode != 0:
            raise RuntimeError(f"installing {what} failed: see {log}")
    stamp.write_text(wanted)


def install_baseline(project: Path, ref: str, run: Path, log: Path) -> Path:
    """chatwire at the commit ``ref``, installed from that commit's tree into a venv of its
    own (reused while the commit is the same); its ``chatwire`` command."""
    commit = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    source = run / "baseline-src"
    if not (source / ".bench-commit").exists() or (source / ".bench-commit").read_text() != commit:
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(project), "archive", commit], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        (source / ".bench-commit").write_text(commit)
    venv = run / "baseline-venv"
    install_venv(venv, [str(source)], log, f"chatwire at {commit[:12]}")
    return venv / "bin" / "chatwire"


def floor_requirements() -> list[str]:
    """The floor's libraries at the versions chatwire runs on, so the two compare fairly."""
    pins = [f"{name}=={metadata.version(name)}" for name in ("aiohttp", "uvloop", "httptools")]
    pins.append(f"uvicorn=={metadata.version('uvicorn')}")
    try:
        pins.append(f"orjson=={metadata.version('orjson')}")
    except metadata.PackageNotFoundError:
        pins.append("orjson")
    return pins


def start_chatwire(
    procs: Processes,
    setup: Setup,
    upstream: str,
    workers: int,
    extra_env: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[Target, Target]:
    """``chatwire serve`` against ``upstream``; its chatbot-ui and /v1 targets (called with
    the setup's token, or ``token``)."""
    port = free_port()
    env = {
        **_clean_env(),
        "CHATWIRE_DATA_DIR": str(setup.data_dir),
        "CHATWIRE_MISTRAL_BASE_URL": upstream,
        "CHATWIRE_LOG_LEVEL": "warning",
        # The bench's one user stands for the many a real deployment's streams come from.
        "CHATWIRE_MAX_STREAMS_PER_USER": "0",
        # ...and its one address for the many clients (thousands of slow streams at once).
        "CHATWIRE_MAX_CONNECTIONS_PER_CLIENT": "0",
        **(extra_env or {}),
    }
    argv = [str(setup.chatwire), "serve", "--port", str(port), "--workers", str(workers)]
    process = procs.start(setup.label, argv, env=env, cwd=setup.run)
    wait_for_port(port, process, setup.label, 60)
    auth = {"Authorization": f"Bearer {token or setup.token}"}
    base = f"http://127.0.0.1:{port}"
    api = Target(
        f"{setup.label} api",
        f"{base}/api/chat/mistral",
        CHATBOT_UI_BODY,
        process.pid,
        LAST_WORDS.encode(),
        auth,
        route="api",
    )
    v1 = Target(
        f"{setup.label} v1",
        f"{base}/v1/chat/completions",
        openai_body(f"mistral/{MODEL}"),
        process.pid,
        b"data: [DONE]",
        auth,
    )
    return api, v1


def routes_env(setup: Setup) -> dict[str, str]:
    """The routes file of the routed target, written into the run's folder."""
    path = setup.run / "routes.toml"
    path.write_text(ROUTES)
    return {"CHATWIRE_ROUTES_FILE": str(path)}


def routed(v1: Target) -> Target:
    """``chatwire v1``'s server asked for the routes file's group instead of the model."""
    return replace(v1, name=f"{v1.name} routed", body=openai_body(ROUTED_GROUP))


def _uvicorn_floor(
    procs: Processes, setup: Setup, module: str, name: str, upstream: str, workers: int
) -> tuple[int, int]:
    """One of ../shared/bench's floor apps under uvicorn; its port and process id."""
    assert setup.floor_dir is not None
    assert setup.floor_venv is not None
    port = free_port()
    argv = [
        str(setup.floor_venv / "bin" / "uvicorn"),
        f"{module}:app",
        "--app-dir",
        str(setup.floor_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = procs.start(name, argv, env={**_clean_env(), "UPSTREAM": upstream})
    wait_for_port(port, process, module, 30)
    return port, process.pid


def start_floors(
    procs: Processes, setup: Setup, upstream: str, workers: int, per_delta: bool = True
) -> list[Target]:
    """The batched floor's two routes (one server) and, with ``per_delta``, the first floor."""
    port, pid = _uvicorn_floor(procs, setup, "floor_relay_batched", "floor", upstream, workers)
    base = f"http://127.0.0.1:{port}"
    targets = [
        Target(
            "floor batched",
            f"{base}/api/chat/mistral",
            CHATBOT_UI_BODY,
            pid,
            LAST_WORDS.encode(),
            route="api",
        ),
        Target(
            "floor passthrough",
            f"{base}/v1/chat/completions",
            openai_body(MODEL),
            pid,
            b"data: [DONE]",
        ),
    ]
    if per_delta:
        port, pid = _uvicorn_floor(
            procs, setup, "floor_relay", "floor-per-delta", upstream, workers
        )
        url = f"http://127.0.0.1:{port}/api/chat/mistral"
        targets.append(
            Target("floor per-delta", url, CHATBOT_UI_BODY, pid, LAST_WORDS.encode(), route="api")
        )
    return targets


def start_litellm(procs: Processes, setup: Setup, upstream: str, workers: int) -> Target:
    assert setup.litellm_venv is not None
    port = free_port()
    master_key = f"sk-{secrets.token_hex(16)}"
    config = setup.run / "litellm.yaml"
    # JSON is YAML: the proxy reads this as its config file.
    config.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"mistral/{MODEL}",
                            "api_base": upstream,
                            "api_key": "bench-upstream-key",
                        },
                    }
                ],
                "litellm_settings": {"drop_params": True, "telemetry": False},
                # Callers authenticate with this key, as they do with chatwire's tokens.
                "general_settings": {"master_key": master_key},
            },
            indent=2,
        )
    )
    env = {
        **_clean_env(),
        # No fetch of the model price list at start: the bench runs offline.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    argv = [
        str(setup.litellm_venv / "bin" / "litellm"),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        str(workers),
    ]
    process = procs.start("litellm", argv, env=env, cwd=setup.run)
    wait_for_port(port, process, "LiteLLM proxy", 180)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    auth = {"Authorization": f"Bearer {master_key}"}
    return Target("litellm", url, openai_body(MODEL), process.pid, b"data: [DONE]", auth)


def upstream_target(base_url: str, pid: int, streamed: bool = True) -> Target:
    return Target(
        "upstream" if streamed else "upstream (non-streamed)",
        f"{base_url}/chat/completions",
        openai_body(MODEL, streamed),
        pid,
        b"data: [DONE]" if streamed else LAST_WORDS.encode(),
        sockets_per_stream=1,
        streamed=streamed,
    )


def non_streamed(target: Target) -> Target:
    """A /v1 target asking for the whole reply at once (``stream: false``)."""
    body = json.loads(target.body)
    body["stream"] = False
    return Target(
        f"{target.name} (non-streamed)",
        target.url,
        json.dumps(body).encode(),
        target.pid,
        LAST_WORDS.encode(),
        target.headers,
        streamed=False,
    )


def install_portkey(run: Path, log: Path) -> tuple[Path, str]:
    """The newest Portkey gateway from npm, under the run directory (kept while the run
    directory is); its start-server.js and version."""
    where = run / "portkey"
    package = where / "node_modules" / PORTKEY_PACKAGE
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("--portkey needs Node.js and npm (apt-get install nodejs npm)")
    if not (where / ".bench-installed").exists():
        print(f"bench: installing {PORTKEY_PACKAGE} into {where} (npm) ...", file=sys.stderr)
        where.mkdir(parents=True, exist_ok=True)
        argv = ["npm", "install", "--prefix", str(where), "--no-audit", "--no-fund"]
        argv += ["--no-save", f"{PORTKEY_PACKAGE}@latest"]
        with log.open("ab") as out:
            if subprocess.run(argv, stdout=out, stderr=out, check=False).returncode != 0:
                raise RuntimeError(f"installing {PORTKEY_PACKAGE} failed: see {log}")
        (where / ".bench-installed").write_text("")
    version = json.loads((package / "package.json").read_text())["version"]
    return package / "build" / "start-server.js", str(version)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    # A loopback http:// URL the bench made itself.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_portkey(
    procs: Processes, setup: Setup, streamed: str, whole: str, notes: list[str]
) -> Target:
    """Portkey's gateway, reaching the upstream as an OpenAI-compatible custom host.

    A streamed chat is tried first, against ``streamed`` (the upstream's SSE reply). When it
    fails as Portkey's custom-host streaming is known to (500 "Something went wrong"), that
    is noted and its non-streamed route is measured instead, against ``whole`` (the
    upstream's non-streamed reply)."""
    assert setup.portkey_script is not None
    port = free_port()
    # Production: no log console, nothing but the gateway itself.
    env = {**_clean_env(), "NODE_ENV": "production"}
    argv = ["node", str(setup.portkey_script), f"--port={port}", "--headless"]
    process = procs.start("portkey", argv, env=env, cwd=setup.run)
    wait_for_port(port, process, "Portkey gateway", 60)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    def headers(base: str) -> dict[str, str]:
        return {
            "Authorization": "Bearer bench-upstream-key",
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": base,
        }

    target = Target(
        "portkey", url, openai_body(MODEL), process.pid, b"data: [DONE]", headers(streamed)
    )
    status, reply = _post(url, target.body, target.headers)
    if status == 200 and target.done in reply:
        return target
    log = setup.run / "logs" / "portkey.log"
    seen = log.read_text(errors="replace") if log.exists() else ""
    why = " (its log: TypeError: immutable, in updateHeaders)" if "immutable" in seen else ""
    if status == 500 and PORTKEY_STREAM_FAILURE in reply:
        known = "Portkey's known issues #1389 and #1550"
    else:
        known = "not the known failure of its issues #1389 and #1550"
    notes.append(
        f"portkey {setup.portkey_version}: a streamed chat through a custom host answered "
        f"{status} {reply[:120]!r}{why}; {known}. Its non-streamed route is measured instead, "
        "against the upstream's non-streamed reply: 'portkey (non-streamed)'."
    )
    return Target(
        "portkey (non-streamed)",
        url,
        openai_body(MODEL, stream=False),
        process.pid,
        LAST_WORDS.encode(),
        headers(whole),
        streamed=False,
    )


def asyncpg_url(server: str) -> str:
    """``postgresql://...`` as SQLAlchemy names it with chatwire's driver."""
    return server.replace("postgresql://", "postgresql+asyncpg://", 1)


def postgres_database(server: str, statement: str, **params: str) -> object:
    """Run one statement on the PostgreSQL server's maintenance database, outside a
    transaction (as CREATE and DROP DATABASE must be); the first column of its first row."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> object:
        engine = create_async_engine(
            f"{asyncpg_url(server)}/postgres",
            isolation_level="AUTOCOMMIT",
            connect_args={"timeout": 10},
        )
        try:
            async with engine.connect() as connection:
                result = await connection.execute(text(statement), params)
                return result.scalar() if result.returns_rows else None
        finally:
            await engine.dispose()

    return asyncio.run(run())


def postgres_sessions(server: str, database: str) -> int:
    """Connections ever opened to ``database`` (pg_stat_database.sessions, PostgreSQL 14+;
    -1 when the server does not count them)."""
    try:
        found = postgres_database(
            server, "SELECT sessions FROM pg_stat_database WHERE datname = :name", name=database
        )
    except Exception:  # an older server: no such column
        return -1
    return int(found) if isinstance(found, int) else -1


def chatwire_command(setup: Setup, env: dict[str, str], args: list[str], log: Path) -> str:
    """``chatwire ARGS...`` with the setup's data directory and ``env``; what it printed."""
    full = {**_clean_env(), "CHATWIRE_DATA_DIR": str(setup.data_dir), **env}
    with log.open("ab") as out:
        done = subprocess.run(
            [str(setup.chatwire), *args], env=full, cwd=setup.run, capture_output=True, check=False
        )
        out.write(done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"chatwire {' '.join(args[:2])} failed: see {log}")
    return done.stdout.decode().strip()


def make_users(setup: Setup, database_url: str, count: int, log: Path) -> list[str]:
    """``count`` users with a token and a stored Mistral key each, in chatwire's database,
    through chatwire's own store (chatbench.make_users, run by chatwire's Python); their
    tokens, in order."""
    tokens = setup.run / "users-tokens.txt"
    python = setup.chatwire.parent / "python"
    env = {
        **_clean_env(),
        "CHATWIRE_DATA_DIR": str(setup.data_dir),
        "CHATWIRE_DATABASE_URL": database_url,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    argv = [str(python), "-m", "chatbench.make_users", str(count), str(tokens)]
    with log.open("ab") as out:
        done = subprocess.run(argv, env=env, cwd=setup.run, stdout=out, stderr=out, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"making {count:,} users failed: see {log}")
    return tokens.read_text().split()
