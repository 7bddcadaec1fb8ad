"""Encryption of stored provider keys, and where the encryption keys come from.

Keys are Fernet keys. ``CHATWIRE_SECRET_KEY`` may hold several, comma-separated: the first
encrypts, all of them decrypt, so an operator rotates by prepending a new key (and drops the
old one once every stored value has been written again). Without it, one key is kept in
``<data_dir>/secret.key``, created on first use, readable by its owner only.

No key material ever appears in a message, a repr or a log.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from chatwire.core.config import Settings

KEY_FILE = "secret.key"
HOW_TO_MAKE_A_KEY = (
    'make one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


class SecretKeyMismatch(Exception):
    """A stored value does not decrypt with any of the configured keys."""

    def __init__(self) -> None:
        super().__init__(
            "A stored secret cannot be decrypted: CHATWIRE_SECRET_KEY (or <data_dir>/secret.key) "
            "does not match the key the data was encrypted with. Restore the original key, or "
            "list it after the new one (comma-separated) to rotate."
        )


class SecretKeyInvalid(ValueError):
    """A configured key is not a Fernet key; the message never repeats it."""


class KeyBox:
    """Encrypts with the first key, decrypts with any of them."""

    __slots__ = ("_count", "_fernet")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise SecretKeyInvalid("KeyBox needs at least one key")
        self._fernet = MultiFernet([_fernet(key, f"key #{i}") for i, key in enumerate(keys, 1)])
        self._count = len(keys)

    def __repr__(self) -> str:
        return f"<KeyBox with {self._count} key(s)>"

    def __reduce__(self) -> str | tuple[object, ...]:
        # Keys must not leave the process by way of pickle either.
        raise TypeError("KeyBox cannot be pickled")

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise SecretKeyMismatch() from exc


def _fernet(key: bytes, label: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        # The cause may quote part of the key: dropped on purpose.
        raise SecretKeyInvalid(
            f"{label} is not a valid Fernet key (32 url-safe base64-encoded bytes); "
            f"{HOW_TO_MAKE_A_KEY}"
        ) from None


def parse_keys(value: str, source: str) -> list[bytes]:
    """Comma- or line-separated Fernet keys, validated; errors name ``source``, not the value."""
    parts = [part.strip() for line in value.splitlines() for part in line.split(",")]
    keys = [part.encode("ascii", "replace") for part in parts if part]
    if not keys:
        raise SecretKeyInvalid(f"{source} holds no key; {HOW_TO_MAKE_A_KEY}")
    for i, key in enumerate(keys, 1):
        _fernet(key, f"{source}: key #{i}")
    return keys


def ensure_data_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700 if missing; an existing directory is left as it is."""
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return path
    # mkdir's mode is filtered by the umask; set it exactly.
    os.chmod(path, 0o700)
    return path


def load_secret_keys(settings: Settings) -> list[bytes]:
    """The keys from CHATWIRE_SECRET_KEY, or else from ``<data_dir>/secret.key`` (created once)."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value().strip():
        return parse_keys(settings.secret_key.get_secret_value(), "CHATWIRE_SECRET_KEY")
    path = ensure_data_dir(settings.data_dir) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return parse_keys(path.read_text("ascii", errors="replace"), str(path))


def _create_key_file(path: Path) -> None:
    # Written in full to a private temporary file, then published with link(), which fails if
    # the name exists: a process starting at the same time either wins or reads the winner's
    # complete key, never a half-written file.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(Fernet.generate_key() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:
            # No hard links on this filesystem: fall back to an exclusive create in place.
            _create_key_file_in_place(path)
    finally:
        temp.unlink(missing_ok=True)


def _create_key_file_in_place(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as file:
        file.write(Fernet.generate_key() + b"\n")
        file.flush()
        os.fsync(file.fileno())
