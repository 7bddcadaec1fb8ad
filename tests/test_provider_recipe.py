"""The README's recipe for adding a provider, followed as written.

The recipe's declaration, entry point and models are read from the README itself, put into a
package of the test's own (a module and its dist-info, found by the entry point machinery as
an installed package's would be), and a real ``chatwire serve`` process is started beside
it: the new provider must then serve both chat APIs from the fake OpenAI-compatible server,
list its models, take its operator key from its environment variable, and refuse what its
rules refuse.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import openai
import pytest

from tests.fakes.fake_openai import FakeOpenAI
from tests.test_cli import Cli, make_cli
from tests.test_serve import Launch, free_port, launcher

README = Path(__file__).resolve().parents[1] / "README.md"


def recipe() -> dict[str, str]:
    """The code blocks of the README's section on adding a provider, by language."""
    text = README.read_text()
    start = text.index("### Adding an OpenAI-compatible provider")
    section = text[start : text.index("\n## ", start)]
    blocks = re.findall(r"^ *```(\w+)\n(.*?)^ *```", section, flags=re.S | re.M)
    found = {}
    for language, body in blocks:
        found[language] = "\n".join(line.removeprefix("   ") for line in body.splitlines())
    assert set(found) >= {"python", "toml", "json"}, found
    return found


def package(root: Path, steps: dict[str, str]) -> str:
    """The recipe's package: its module, and a dist-info carrying its entry point."""
    points = tomllib.loads(steps["toml"])["project"]["entry-points"]["chatwire.providers"]
    [(name, target)] = points.items()
    module = target.split(":")[0]
    (root / f"{module}.py").write_text(steps["python"])
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[chatwire.providers]\n{name} = {target}\n")
    return str(name)


async def test_the_readme_recipe_adds_a_working_provider(tmp_path: Path) -> None:
    steps = recipe()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    name = package(plugins, steps)
    models_file = tmp_path / "models.json"
    models_file.write_text(steps["json"])
    [(model, entry)] = json.loads(steps["json"])[name].items()

    key = "acme-operator-key-0123"
    fake = FakeOpenAI(api_key=key, models=[model])
    base = await fake.start()
    env = {
        "PYTHONPATH": str(plugins),
        "CHATWIRE_MODELS_FILE": str(models_file),
        f"CHATWIRE_{name.upper()}_BASE_URL": base,
        f"{name.upper()}_API_KEY": key,
    }
    try:
        with launcher(tmp_path) as launch:
            await check(make_cli(tmp_path), launch, env, fake, name, model, entry["max_output"])
    finally:
        await fake.stop()


async def check(
    cli: Cli,
    launch: Launch,
    env: dict[str, str],
    fake: FakeOpenAI,
    name: str,
    model: str,
    max_output: int,
) -> None:
    token = (await cli.ok("users", "create", "alice")).stdout.strip()
    port = free_port()
    served = launch(cli, "serve", "--port", str(port), port=port, env=env)
    await served.wait_ready()
    async with served.client(token) as client:
        keys = (await client.get("/api/keys")).json()["isUsingEnvKeyMap"]
        assert keys[name] is True
        listed = (await client.get("/api/models")).json()
        assert [m["modelId"] for m in listed[name]] == [model]
        body = {
            "chatSettings": {"model": model, "temperature": 0.5},
            "messages": [{"role": "user", "content": "Tell me about the sea"}],
        }
        resp = await client.post(f"/api/chat/{name}", json=body)
        assert resp.status_code == 200, resp.text
        sent = fake.requests[-1]
        assert sent.headers["authorization"] == f"Bearer {fake.api_key}"
        assert resp.text == fake.expected_reply(sent.json["messages"], model=model)
        # The declaration's rules: usage asked for; the budget from the models file.
        assert sent.json["stream_options"] == {"include_usage": True}
        assert sent.json["max_tokens"] == max_output

    async with openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key=token, max_retries=0) as sdk:
        ids = [m.id async for m in sdk.models.list()]
        assert f"{name}/{model}" in ids
        answer = await sdk.chat.completions.create(
            model=f"{name}/{model}", messages=[{"role": "user", "content": "Hi"}]
        )
        assert answer.choices[0].message.content == fake.expected_reply(
            fake.requests[-1].json["messages"], model=model
        )
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model=f"{name}/{model}",
                messages=[{"role": "user", "content": "Hi"}],
                logit_bias={"1": 5},
            )
        assert "Acme does not accept the parameter 'logit_bias'" in caught.value.message
    await served.stop()
