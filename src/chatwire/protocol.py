"""uvicorn's httptools protocol with a bound on the request head.

httptools (llhttp) and uvicorn's protocol take any number of headers of any size: a client
could stream megabytes of headers and have them all held in memory (measured: 100,000
headers, 2 MB, answered 200). uvicorn has no setting for it with httptools (h11's limit is
slower on the hot path), so the head is counted here, where the parser hands it over, and
a request past the bound is answered 431 and its connection closed.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # the URL and every header name and value
MAX_HEADERS = 100
READ_SLACK = 64 * 1024


class HeadTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _header_count = 0
    _too_large = False
    # Bytes read while a head is incomplete: the parser holds a header line that has not
    # ended yet in a buffer of its own and calls on_header only at its end, so those bytes
    # are counted here, as they arrive (with one read's worth of slack for a body that came
    # in the same read as the end of its head).
    _awaiting_head = True
    _raw_head = 0

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            self._raw_head += len(data)
            if self._raw_head > MAX_HEAD_BYTES + READ_SLACK:
                self._too_large = True
                self.send_400_response("")
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._raw_head = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._header_count = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value), 1)
        super().on_header(name, value)

    def _count(self, size: int, headers: int) -> None:
        self._head_bytes += size
        self._header_count += headers
        if self._head_bytes > MAX_HEAD_BYTES or self._header_count > MAX_HEADERS:
            self._too_large = True
            # Raised inside the parser's callback: uvicorn then answers the request as
            # malformed (send_400_response, below) and closes the connection.
            raise HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._too_large:
            super().send_400_response(msg)
            return
        text = (
            f"Request head too large: at most {MAX_HEADERS} headers and "
            f"{MAX_HEAD_BYTES} bytes of URL and headers."
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(text)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + text
        )
        self.transport.close()
