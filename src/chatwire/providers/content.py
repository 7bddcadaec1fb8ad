"""Reading chatbot-ui message content (a string or text / image_url parts) for other formats."""

from __future__ import annotations

import re
from dataclasses import dataclass

from chatwire.api.schemas import ImagePart, ImageURL, Message, TextPart

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Image:
    """An image part: inline base64 data with its media type, or a URL to fetch."""

    media_type: str | None
    data: str | None
    url: str | None


def parts(message: Message) -> list[str | Image]:
    """The message's content as text pieces and images, in order."""
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    found: list[str | Image] = []
    for part in content:
        if isinstance(part, TextPart):
            found.append(part.text)
        elif isinstance(part, ImagePart):
            found.append(image(part))
    return found


def image(part: ImagePart) -> Image:
    url = part.image_url.url if isinstance(part.image_url, ImageURL) else part.image_url
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return Image(media_type=None, data=None, url=url)
    return Image(media_type=match["type"], data=match["data"], url=None)


def text(message: Message) -> str:
    """Only the text of a message, parts joined by blank lines."""
    return "\n\n".join(p for p in parts(message) if isinstance(p, str))
