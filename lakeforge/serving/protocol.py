"""The wire protocol between the serving server and its model workers (over a Unix socket).

Every message is a fixed header (payload length uint32, sequence number uint64, kind uint8) and
then the payload. The client numbers its requests; the worker answers each with the same number,
so one connection carries many requests at once and answers may come back in any order.

    PING    (empty)                                       -> PONG   JSON {"pid", "model_dir", ...}
    PREDICT request_id \\n content_type \\n body bytes      -> RESULT 2-byte HTTP status + JSON body
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!IQB")
MAX_FRAME = 64 * 1024 * 1024

PING = 1
PONG = 2
PREDICT = 3
RESULT = 4

_STATUS = struct.Struct("!H")


class ProtocolError(Exception):
    """A peer sent something that is not a frame of this protocol."""


def encode_frame(seq: int, kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame payload of {len(payload)} bytes exceeds the {MAX_FRAME} byte limit")
    return HEADER.pack(len(payload), seq, kind) + payload


def decode_header(header: bytes) -> tuple[int, int, int]:
    """(payload length, sequence number, kind); rejects lengths over MAX_FRAME before reading them."""
    length, seq, kind = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame payload of {length} bytes exceeds the {MAX_FRAME} byte limit")
    return length, seq, kind


def encode_predict(request_id: str, content_type: str, body: bytes) -> bytes:
    # Neither field may hold the separator; a newline in a header value is not valid HTTP anyway.
    return b"".join((request_id.replace("\n", " ").encode(), b"\n",
                     content_type.replace("\n", " ").encode(), b"\n", body))


def decode_predict(payload: bytes) -> tuple[str, str, bytes]:
    first = payload.find(b"\n")
    second = payload.find(b"\n", first + 1) if first >= 0 else -1
    if second < 0:
        raise ProtocolError("PREDICT payload lacks the request id and content type lines")
    return (payload[:first].decode("utf-8", "replace"), payload[first + 1:second].decode("utf-8", "replace"),
            payload[second + 1:])


def encode_result(status: int, body: bytes) -> bytes:
    return _STATUS.pack(status) + body


def decode_result(payload: bytes) -> tuple[int, bytes]:
    if len(payload) < _STATUS.size:
        raise ProtocolError("RESULT payload lacks the status")
    return _STATUS.unpack_from(payload)[0], payload[_STATUS.size:]
