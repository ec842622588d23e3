"""Arrow IPC streams produced a record batch at a time, for HTTP bodies in both directions (the
server streaming table data out, the SDK streaming it in) without holding the whole stream."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

MEDIA_TYPE = "application/vnd.apache.arrow.stream"


def ipc_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    """The IPC stream of `reader`: the schema, then one chunk per record batch, then the end marker."""
    sink = _Chunks()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), reader.schema) as writer:
        yield sink.take()
        for batch in reader:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()  # the end-of-stream marker


class _Chunks:
    """A write-only file that hands back what was written since the last take()."""

    closed = False

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out
