"""User-set upstream URLs (custom models, a user's Azure endpoint) reach only public
addresses unless the operator allows more, checked on the address connected to; their
errors tell no more than a status. Through real sockets, on both chat APIs."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from chatwire.gateway.guard import AddressRules, GuardedResolver
from tests.conftest import FAKE_KEY, Running, ServerFactory
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.fake_openai import FakeOpenAI
from tests.scripted import ScriptedUpstream

# Every way of writing "this machine" or "the internal network" a user might try.
LOOPBACK_FORMS = [
    "http://127.0.0.1:{port}/v1",
    "http://localhost:{port}/v1",
    "http://localhost.:{port}/v1",
    "http://0x7f.1:{port}/v1",
    "http://127.1:{port}/v1",
    "http://2130706433:{port}/v1",
    "http://[::1]:{port}/v1",
    "http://[::ffff:127.0.0.1]:{port}/v1",
]
INTERNAL = [
    "http://169.254.169.254/latest/meta-data",
    "http://10.1.2.3/v1",
    "http://192.168.0.1/v1",
    "http://100.64.0.1/v1",
    "http://[fd00::1]/v1",
    "http://[fe80::1]/v1",
    "http://0.0.0.0:{port}/v1",
]
REFUSED = "is not an address chatwire may call"


async def add_model(server: Running, base_url: str, name: str = "mine") -> str:
    body = {
        "name": name,
        "model_id": "mistral-small-latest",
        "base_url": base_url,
        "api_key": FAKE_KEY,
        "context_length": 8192,
    }
    resp = await server.client.post("/api/custom-models", json=body, headers=server.auth)
    assert resp.status_code == 201, resp.text
    record_id: str = resp.json()["id"]
    return record_id


async def chat_custom(server: Running, record_id: str) -> tuple[int, str]:
    body = {**server.chat_body("Hi"), "customModelId": record_id}
    resp = await server.client.post("/api/chat/custom", json=body, headers=server.auth)
    message = resp.json()["message"] if resp.status_code != 200 else resp.text
    return resp.status_code, message


async def chat_v1(server: Running, name: str) -> tuple[int, str]:
    body = {"model": f"custom/{name}", "messages": [{"role": "user", "content": "Hi"}]}
    resp = await server.client.post("/v1/chat/completions", json=body, headers=server.auth)
    if resp.status_code == 200:
        return 200, resp.json()["choices"][0]["message"]["content"]
    return resp.status_code, resp.json()["error"]["message"]


def fake_port(fake: FakeMistral) -> int:
    port = URL(str(fake.base_url)).port
    assert port is not None
    return port


@pytest.fixture
async def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def test_by_default_no_form_of_loopback_or_internal_address_is_called(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    server = await make_server(upstream_allow="")
    port = fake_port(fake)
    for i, form in enumerate(LOOPBACK_FORMS + INTERNAL):
        url = form.format(port=port)
        record = await add_model(server, url, name=f"m{i}")
        for status, message in (await chat_custom(server, record), await chat_v1(server, f"m{i}")):
            if resolves(url):
                assert status == 403, (url, message)
                assert REFUSED in message, (url, message)
            else:  # e.g. "localhost." where the resolver knows no such name: DNS failed
                assert status == 502, (url, message)
    assert fake.requests == []


def resolves(url: str) -> bool:
    host = URL(url).raw_host or ""
    try:
        socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return True


async def test_the_operator_allows_by_address_or_name_and_denies_over_it(
    make_server: ServerFactory, fake: FakeMistral
) -> None:
    by_address = await make_server(upstream_allow="127.0.0.0/8")
    record = await add_model(by_address, f"http://127.0.0.1:{fake_port(fake)}/v1")
    assert (await chat_custom(by_address, record))[0] == 200
    by_name = await make_server(upstream_allow="localhost")
    record = await add_model(by_name, f"http://localhost:{fake_port(fake)}/v1")
    assert (await chat_custom(by_name, record))[0] == 200
    assert (await chat_v1(by_name, "mine"))[0] == 200
    # The name allows the name, not the address it stands for.
    record = await add_model(by_name, f"http://127.0.0.1:{fake_port(fake)}/v1", name="literal")
    assert (await chat_custom(by_name, record))[0] == 403
    denied = await make_server(upstream_allow="127.0.0.0/8,localhost", upstream_deny="127.0.0.1")
    for url in (f"http://127.0.0.1:{fake_port(fake)}/v1", f"http://localhost:{fake_port(fake)}/v1"):
        record = await add_model(denied, url, name=url)
        assert (await chat_custom(denied, record))[0] == 403
    assert len(fake.requests) == 3


async def test_a_users_azure_endpoint_is_guarded_the_operators_is_not(
    make_server: ServerFactory,
) -> None:
    async with FakeOpenAI() as azure:
        fields = {
            "azure_openai_api_key": str(azure.api_key),
            "azure_openai_endpoint": str(azure.root_url),
            "azure_openai_35_turbo_id": "gpt-35-turbo",
        }
        body = {
            "chatSettings": {"model": "gpt-3.5-turbo"},
            "messages": [{"role": "user", "content": "Hi"}],
        }
        users = await make_server(stored_key=None, upstream_allow="")
        patched = await users.client.patch("/api/profile", json=fields, headers=users.auth)
        assert patched.status_code == 200
        resp = await users.client.post("/api/chat/azure", json=body, headers=users.auth)
        assert resp.status_code == 403
        assert REFUSED in resp.json()["message"]
        assert azure.requests == []
        operators = await make_server(
            stored_key=None,
            upstream_allow="",
            azure_openai_api_key=str(azure.api_key),
            azure_openai_endpoint=str(azure.root_url),
            azure_gpt_35_turbo_name="gpt-35-turbo",
        )
        resp = await operators.client.post("/api/chat/azure", json=body, headers=operators.auth)
        assert resp.status_code == 200, resp.text
        assert azure.deployments_called == ["gpt-35-turbo"]


class _Rebinding(AbstractResolver):
    """A name whose DNS answers a public address and a private one."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
            for a in ("93.184.215.14", "127.0.0.1")
        ]

    async def close(self) -> None:
        pass


async def test_a_name_keeps_only_its_public_addresses() -> None:
    resolver = GuardedResolver(AddressRules(), _Rebinding())
    kept = await resolver.resolve("rebind.example", 80)
    assert [r["host"] for r in kept] == ["93.184.215.14"]
    rules = AddressRules.parse("", "")
    assert not rules.permits("x", ipaddress.ip_address("64:ff9b::a00:1"))  # NAT64 of 10.0.0.1
    assert rules.permits("x", ipaddress.ip_address("2606:4700::1111"))
    with pytest.raises(ValueError, match="CHATWIRE_UPSTREAM_ALLOW"):
        AddressRules.parse("10.0.0.0/33", "")


@pytest.fixture
async def forbidding() -> AsyncIterator[ScriptedUpstream]:
    page = b'{"error": {"message": "internal admin: db password hunter2"}}'
    head = f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(page)}\r\n\r\n".encode()
    scripted = ScriptedUpstream([head + page])
    await scripted.start()
    try:
        yield scripted
    finally:
        await scripted.stop()


@pytest.fixture
async def not_http() -> AsyncIterator[ScriptedUpstream]:
    scripted = ScriptedUpstream([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"])
    await scripted.start()
    try:
        yield scripted
    finally:
        await scripted.stop()


async def test_a_user_set_upstream_tells_only_its_status(
    make_server: ServerFactory,
    forbidding: ScriptedUpstream,
    not_http: ScriptedUpstream,
    closed_port: int,
) -> None:
    server = await make_server(upstream_error_detail=False)
    record = await add_model(server, forbidding.base_url)
    answers: list[Any] = [await chat_custom(server, record), await chat_v1(server, "mine")]
    assert [status for status, _ in answers] == [403, 403]
    for _, message in answers:
        assert message == "Custom model answered 403."
    # A closed port and an open one that does not speak HTTP are told apart by nothing.
    closed = await add_model(server, f"http://127.0.0.1:{closed_port}/v1", name="closed")
    other = await add_model(server, not_http.base_url, name="other")
    refused, wrong = await chat_custom(server, closed), await chat_custom(server, other)
    assert refused == wrong
    assert refused[0] == 502
    assert await chat_v1(server, "closed") == await chat_v1(server, "other")
