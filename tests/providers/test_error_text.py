"""A readable message comes out of every error shape Mistral has sent (mistral-wire.md)."""

from __future__ import annotations

import pytest

from chatwire.providers.error_text import readable_message

DETAIL = '[{"type":"extra_forbidden","loc":["body","n"],"msg":"Extra inputs are not permitted","input":1}]'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # 401, both shapes
        (b'{"message":"Unauthorized","request_id":"0123abcd"}', "Unauthorized"),
        (b'{"detail":"Unauthorized"}', "Unauthorized"),
        # 422, three generations
        (
            b'{"object":"error","message":{"detail":' + DETAIL.encode() + b"},"
            b'"type":"invalid_request_error","param":null,"code":null}',
            "n: Extra inputs are not permitted",
        ),
        (
            b'{"object":"error","message":"{\\"detail\\":'
            + DETAIL.replace('"', '\\"').encode()
            + b'}","type":"internal_error_proxy","param":null,"code":"1000"}',
            "n: Extra inputs are not permitted",
        ),
        (b'{"detail":' + DETAIL.encode() + b"}", "n: Extra inputs are not permitted"),
        # 400 invalid model and role order
        (
            b'{"object":"error","message":"Invalid model: mistral-medium-3.5","type":"invalid_model",'
            b'"param":null,"code":"1500","raw_status_code":400}',
            "Invalid model: mistral-medium-3.5",
        ),
        (
            b'{"object":"error","message":"Expected last role User or Tool (or Assistant with prefix '
            b'True) for serving but got assistant","type":"invalid_request_error","param":null,"code":null}',
            "Expected last role User or Tool (or Assistant with prefix True) for serving but got assistant",
        ),
        # 429, both shapes
        (b'{"message":"Requests rate limit exceeded"}', "Requests rate limit exceeded"),
        (
            b'{"object":"error","message":"Rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}',
            "Rate limit exceeded",
        ),
        # OpenAI's shape, used by the OpenAI-compatible providers
        (
            b'{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}',
            "Incorrect API key provided",
        ),
        # 5xx with a plain-text body
        (b"upstream connect error", "upstream connect error"),
    ],
)
def test_every_error_shape_yields_its_message(body: bytes, expected: str) -> None:
    assert readable_message(body) == expected


def test_several_validation_errors_are_all_named() -> None:
    body = (
        b'{"detail":[{"type":"extra_forbidden","loc":["body","seed"],"msg":"Extra inputs are not permitted"},'
        b'{"type":"extra_forbidden","loc":["body","messages",1,"user","name"],"msg":"Extra inputs are not permitted"}]}'
    )
    assert readable_message(body) == (
        "seed: Extra inputs are not permitted; messages.1.user.name: Extra inputs are not permitted"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"<html><body>502 Bad Gateway</body></html>",
        b"{}",
        b'{"object":"error"}',
        b"null",
    ],
)
def test_bodies_without_a_message_give_none(body: bytes) -> None:
    assert readable_message(body) is None


def test_long_messages_are_shortened() -> None:
    message = readable_message(b'{"message":"' + b"x" * 5000 + b'"}')
    assert message is not None
    assert len(message) == 500
    assert message.endswith("...")
