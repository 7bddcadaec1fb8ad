"""The servers compared, each started as a user would start it, against the fake upstream.

- ``upstream``: nginx itself, called directly (what any relay adds is measured against it)
- ``floor``: ../shared/bench/floor_relay.py when present, in a virtual environment of its
  own with the same uvicorn, uvloop, httptools and aiohttp versions as chatwire's
- ``chatwire api`` and ``chatwire v1``: ``chatwire serve``, with its own data directory, a
  user and token made with the chatwire CLI, and that user's Mistral key stored
- ``litellm``: LiteLLM's proxy (only with --litellm), pinned, in a virtual environment of
  its own under the run directory, never a dependency of chatwire
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
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from chatbench.procs import Processes, free_port, wait_for_port
from chatbench.upstream import LAST_WORDS, MODEL

LITELLM_VERSION = "1.108.0"
_MESSAGES = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Say hello"},
]
CHATBOT_UI_BODY = json.dumps(
    {"chatSettings": {"model": MODEL, "temperature": 0.5}, "messages": _MESSAGES}
).encode()


def openai_body(model: str) -> bytes:
    return json.dumps({"model": model, "messages": _MESSAGES, "stream": True}).encode()


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


@dataclass
class Setup:
    """What is installed once per run and reused by every phase."""

    run: Path
    chatwire: Path  # the chatwire command of the project's .venv
    floor_app: Path | None
    floor_venv: Path | None = None
    litellm_venv: Path | None = None
    token: str = ""
    data_dir: Path = field(default_factory=Path)
    # The other chatwire measured beside this one (--baseline), with its own setup.
    baseline: Setup | None = None
    # How this chatwire's targets are named ("chatwire", or "base" for the baseline).
    label: str = "chatwire"


def _clean_env() -> dict[str, str]:
    """The environment without chatwire settings or provider keys of the caller's own."""
    drop = ("CHATWIRE_", "MISTRAL_", "OPENAI_", "LITELLM_")
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
    procs: Processes, setup: Setup, upstream: str, workers: int
) -> tuple[Target, Target]:
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
    }
    argv = [str(setup.chatwire), "serve", "--port", str(port), "--workers", str(workers)]
    process = procs.start(setup.label, argv, env=env, cwd=setup.run)
    wait_for_port(port, process, setup.label, 60)
    auth = {"Authorization": f"Bearer {setup.token}"}
    base = f"http://127.0.0.1:{port}"
    api = Target(
        f"{setup.label} api",
        f"{base}/api/chat/mistral",
        CHATBOT_UI_BODY,
        process.pid,
        LAST_WORDS.encode(),
        auth,
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


def start_floor(procs: Processes, setup: Setup, upstream: str, workers: int) -> Target:
    assert setup.floor_app is not None
    assert setup.floor_venv is not None
    port = free_port()
    argv = [
        str(setup.floor_venv / "bin" / "uvicorn"),
        "floor_relay:app",
        "--app-dir",
        str(setup.floor_app.parent),
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
    process = procs.start("floor", argv, env={**_clean_env(), "UPSTREAM": upstream})
    wait_for_port(port, process, "floor relay", 30)
    url = f"http://127.0.0.1:{port}/api/chat/mistral"
    return Target("floor", url, CHATBOT_UI_BODY, process.pid, LAST_WORDS.encode())


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


def upstream_target(base_url: str, pid: int) -> Target:
    return Target(
        "upstream",
        f"{base_url}/chat/completions",
        openai_body(MODEL),
        pid,
        b"data: [DONE]",
        sockets_per_stream=1,
    )
