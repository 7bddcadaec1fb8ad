"""The fake upstream: nginx serving fixed Mistral-shaped SSE replies.

nginx is C and serves a file from memory, so the upstream is never what limits a relay.
One server block per reply kind, each on its own port: ``fast`` (a short reply), ``long``
(many deltas, to measure the cost per delta), ``slow`` (the short reply dripped at a
fixed byte rate, to hold many streams open at once) and ``json`` (the short reply's text as
one non-streamed ``chat.completion``, for a server that cannot stream through a custom host).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from chatbench.procs import Processes, free_port, wait_for_port

MODEL = "mistral-small-latest"
# The last delta's text: a reply that carries it arrived whole.
LAST_WORDS = " end."


def sse_reply(deltas: int) -> bytes:
    """A streamed Mistral chat completion with ``deltas`` content deltas: the role chunk,
    the deltas (the last one with the finish reason and usage), then [DONE]."""

    def chunk(delta: dict[str, str], finish: str | None = None, usage: bool = False) -> str:
        body: dict[str, object] = {
            "id": "cmpl-0123456789abcdef0123456789abcdef",
            "object": "chat.completion.chunk",
            "created": 1732548656,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage:
            body["usage"] = {
                "prompt_tokens": 12,
                "completion_tokens": deltas,
                "total_tokens": 12 + deltas,
            }
        return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": f" tok{i}"}) for i in range(deltas - 1)]
    parts.append(chunk({"content": LAST_WORDS}, finish="stop", usage=True))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


def json_reply(deltas: int) -> bytes:
    """The same answer as ``sse_reply(deltas)``, not streamed: one ``chat.completion``."""
    text = "".join(f" tok{i}" for i in range(deltas - 1)) + LAST_WORDS
    body = {
        "id": "cmpl-0123456789abcdef0123456789abcdef",
        "object": "chat.completion",
        "created": 1732548656,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": deltas, "total_tokens": 12 + deltas},
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Upstream:
    """Where each reply kind is served: ``base_url(kind)`` is a Mistral API base."""

    ports: dict[str, int]
    pid: int

    def base_url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.ports[kind]}/v1"


_SERVER = """
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/chat/completions {{
      default_type {mime};
      client_max_body_size 10m;
      alias {file};
      {rate}
      # A static file answers POST with 405: serve it as the reply instead.
      error_page 405 =200 $uri;
    }}
  }}"""

_CONFIG = """worker_processes 1;
worker_rlimit_nofile {fds};
daemon off;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  client_body_temp_path {run}/nginx-body;
  proxy_temp_path {run}/nginx-proxy;
  fastcgi_temp_path {run}/nginx-fastcgi;
  uwsgi_temp_path {run}/nginx-uwsgi;
  scgi_temp_path {run}/nginx-scgi;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  # One descriptor per reply file, shared by every request: else each open stream costs
  # nginx two (socket and file) and it runs out of files before the relay does.
  open_file_cache max=16 inactive=1h;
{servers}
}}
"""


def start_nginx(
    procs: Processes,
    run: Path,
    short_deltas: int,
    long_deltas: int,
    drip_seconds: float,
    max_fds: int,
) -> Upstream:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    files = {
        "fast": run / "reply-short.sse",
        "long": run / "reply-long.sse",
        "json": run / "reply-short.json",
    }
    files["fast"].write_bytes(sse_reply(short_deltas))
    files["long"].write_bytes(sse_reply(long_deltas))
    files["json"].write_bytes(json_reply(short_deltas))
    size = files["fast"].stat().st_size
    # nginx's rate limit is per connection: the short reply lasts about drip_seconds.
    drip_rate = max(1, int(size / drip_seconds))
    sse, json_type = "text/event-stream", "application/json"
    plans = {
        "fast": (files["fast"], "", sse),
        "long": (files["long"], "", sse),
        "slow": (files["fast"], f"limit_rate {drip_rate};", sse),
        "json": (files["json"], "", json_type),
    }
    ports = {kind: free_port() for kind in plans}
    servers = "".join(
        _SERVER.format(port=ports[kind], file=file, rate=rate, mime=mime)
        for kind, (file, rate, mime) in plans.items()
    )
    config = run / "nginx.conf"
    config.write_text(
        _CONFIG.format(fds=max_fds, connections=max_fds - 16, run=run, servers=servers)
    )
    check = subprocess.run(
        [nginx, "-t", "-q", "-e", str(run / "nginx-error.log"), "-p", str(run), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise RuntimeError(f"nginx refused its configuration: {check.stderr.strip()}")
    process = procs.start(
        "nginx", [nginx, "-e", str(run / "nginx-error.log"), "-p", str(run), "-c", str(config)]
    )
    for port in ports.values():
        wait_for_port(port, process, "nginx", 10)
    return Upstream(ports=ports, pid=process.pid)
