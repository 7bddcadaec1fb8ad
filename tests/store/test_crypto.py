"""KeyBox and where its keys come from: rotation, mismatches, and private key files."""

from __future__ import annotations

import os
import pickle
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from chatwire.core.config import Settings
from chatwire.store.crypto import (
    KEY_FILE,
    KeyBox,
    SecretKeyInvalid,
    SecretKeyMismatch,
    ensure_data_dir,
    load_secret_keys,
)

PLAINTEXT = "sk-live-0123456789abcdef"


def settings(data_dir: Path, secret_key: str | None = None) -> Settings:
    # No .env file: only what the test says (explicit values win over the environment).
    values: dict[str, Any] = {
        "_env_file": None,
        "data_dir": data_dir,
        "secret_key": SecretStr(secret_key) if secret_key is not None else None,
    }
    return Settings(**values)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    # With umask 0 any mode that is not set explicitly would show up as world-readable.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    box = KeyBox([Fernet.generate_key()])
    ciphertext = box.encrypt(PLAINTEXT)
    assert PLAINTEXT not in ciphertext
    assert box.decrypt(ciphertext) == PLAINTEXT
    assert box.encrypt(PLAINTEXT) != ciphertext  # fresh IV each time
    assert box.decrypt(box.encrypt("")) == ""
    assert box.decrypt(box.encrypt("ключ ✓")) == "ключ ✓"


def test_rotation_old_key_still_decrypts_new_key_encrypts() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    stored = KeyBox([old]).encrypt(PLAINTEXT)
    rotated = KeyBox([new, old])
    assert rotated.decrypt(stored) == PLAINTEXT
    rewritten = rotated.encrypt(PLAINTEXT)
    assert KeyBox([new]).decrypt(rewritten) == PLAINTEXT
    with pytest.raises(SecretKeyMismatch):
        KeyBox([old]).decrypt(rewritten)


def test_wrong_key_raises_mismatch_without_key_material() -> None:
    right, wrong = Fernet.generate_key(), Fernet.generate_key()
    stored = KeyBox([right]).encrypt(PLAINTEXT)
    with pytest.raises(SecretKeyMismatch) as caught:
        KeyBox([wrong]).decrypt(stored)
    message = str(caught.value)
    assert "CHATWIRE_SECRET_KEY" in message
    assert "does not match" in message
    for secret in (right.decode(), wrong.decode(), PLAINTEXT, stored):
        assert secret not in message


def test_garbage_ciphertext_raises_mismatch() -> None:
    with pytest.raises(SecretKeyMismatch):
        KeyBox([Fernet.generate_key()]).decrypt("not a fernet token")


def test_keybox_never_shows_its_keys() -> None:
    key = Fernet.generate_key()
    box = KeyBox([key])
    assert key.decode() not in repr(box)
    assert key.decode() not in str(box)
    assert not hasattr(box, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(box)


def test_keybox_needs_a_valid_key() -> None:
    with pytest.raises(SecretKeyInvalid):
        KeyBox([])
    with pytest.raises(SecretKeyInvalid) as caught:
        KeyBox([b"too-short-key"])
    assert "too-short-key" not in str(caught.value)


def test_keys_from_setting_in_order(tmp_path: Path) -> None:
    first, second = Fernet.generate_key(), Fernet.generate_key()
    value = f" {first.decode()} , {second.decode()},"
    assert load_secret_keys(settings(tmp_path / "data", value)) == [first, second]
    assert not (tmp_path / "data").exists()  # no key file when the setting is used


@pytest.mark.parametrize("bad", ["not-a-key", "x" * 44, "   ,  ", "ok-looking-but-wrong=="])
def test_malformed_setting_is_refused_without_echoing_it(tmp_path: Path, bad: str) -> None:
    value = f"{Fernet.generate_key().decode()},{bad}" if bad.strip(" ,") else bad
    with pytest.raises(SecretKeyInvalid) as caught:
        load_secret_keys(settings(tmp_path, value))
    message = str(caught.value)
    assert "CHATWIRE_SECRET_KEY" in message
    assert value not in message
    if bad.strip(" ,"):
        assert bad not in message
    # The underlying error (which may quote part of the value) is not chained either.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_key_file_created_once_with_private_modes(tmp_path: Path, permissive_umask: None) -> None:
    data_dir = tmp_path / "nested" / "data"
    keys = load_secret_keys(settings(data_dir))
    key_file = data_dir / KEY_FILE
    assert len(keys) == 1
    Fernet(keys[0])
    assert mode(data_dir) == 0o700
    assert mode(key_file) == 0o600
    assert key_file.read_bytes().strip() == keys[0]
    assert load_secret_keys(settings(data_dir)) == keys
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE]  # no temporary file left


def test_key_file_race_gives_every_process_the_same_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    results: list[list[bytes]] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        results.append(load_secret_keys(settings(data_dir)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(keys == results[0] for keys in results)
    assert mode(data_dir / KEY_FILE) == 0o600


def test_key_file_may_list_several_keys(tmp_path: Path) -> None:
    first, second = Fernet.generate_key(), Fernet.generate_key()
    ensure_data_dir(tmp_path / "data")
    (tmp_path / "data" / KEY_FILE).write_bytes(first + b"\n" + second + b"\n")
    assert load_secret_keys(settings(tmp_path / "data")) == [first, second]


def test_corrupt_key_file_names_the_file_not_the_content(tmp_path: Path) -> None:
    ensure_data_dir(tmp_path / "data")
    key_file = tmp_path / "data" / KEY_FILE
    key_file.write_text("corrupted-content\n")
    with pytest.raises(SecretKeyInvalid) as caught:
        load_secret_keys(settings(tmp_path / "data"))
    assert str(key_file) in str(caught.value)
    assert "corrupted-content" not in str(caught.value)


def test_ensure_data_dir_leaves_existing_directories_alone(
    tmp_path: Path, permissive_umask: None
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    assert ensure_data_dir(existing) == existing
    assert mode(existing) == 0o755
    created = ensure_data_dir(tmp_path / "a" / "b")
    assert mode(created) == 0o700
