"""Read scalar summaries from TensorBoard event files without TensorFlow or TensorBoard.

The API server should not import TensorFlow (seconds and gigabytes) to draw a loss curve, so
this reads the two formats involved directly: TFRecord framing (length, CRC, payload, CRC) and
the few protobuf fields of `Event` / `Summary` / `TensorProto` that carry a scalar. A record
that does not parse (a file being written, a corrupt file) ends that file's reading; what was
read before it is kept.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

# protobuf wire types
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_DT_FLOAT, _DT_DOUBLE = 1, 2


class EventFileError(ValueError):
    """An event file whose bytes are not TFRecords of Event protos."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise EventFileError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise EventFileError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _FIXED64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == _FIXED32:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire == _BYTES:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise EventFileError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise EventFileError("truncated field")
        yield number, wire, value


def _tensor_scalar(data: bytes) -> float | None:
    dtype, content, floats, doubles = None, None, [], []
    for number, wire, value in _fields(data):
        if number == 1 and wire == _VARINT:
            dtype = value
        elif number == 4 and wire == _BYTES:
            content = value
        elif number == 5:  # float_val: packed (length-delimited) or one fixed32, bytes either way
            floats += struct.unpack(f"<{len(value) // 4}f", value)
        elif number == 6:  # double_val
            doubles += struct.unpack(f"<{len(value) // 8}d", value)
    if floats:
        return float(floats[0])
    if doubles:
        return float(doubles[0])
    if content and dtype == _DT_FLOAT and len(content) == 4:
        return struct.unpack("<f", content)[0]
    if content and dtype == _DT_DOUBLE and len(content) == 8:
        return struct.unpack("<d", content)[0]
    return None


def _summary_values(data: bytes) -> Iterator[tuple[str, float]]:
    for number, wire, value in _fields(data):
        if number != 1 or wire != _BYTES:
            continue
        tag, scalar = None, None
        for n, w, v in _fields(value):  # Summary.Value
            if n == 1 and w == _BYTES:
                tag = v.decode("utf-8", "replace")
            elif n == 2 and w == _FIXED32:  # simple_value (TF1 style)
                scalar = struct.unpack("<f", v)[0]
            elif n == 8 and w == _BYTES:  # tensor (TF2 tf.summary.scalar)
                scalar = _tensor_scalar(v)
        if tag is not None and scalar is not None:
            yield tag, scalar


def read_scalars(data: bytes, max_points: int | None = None) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value), ...]}` from the bytes of one event file, in file order (the
    first `max_points` of them, when given)."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    pos, count = 0, 0
    while pos + 12 <= len(data) and (max_points is None or count < max_points):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        start = pos + 12  # 8 bytes length + 4 bytes its CRC
        end = start + length
        if end + 4 > len(data):
            break  # a record still being written
        record, pos = data[start:end], end + 4
        step = 0
        try:
            for number, wire, value in _fields(record):
                if number == 2 and wire == _VARINT:
                    step = value
                elif number == 5 and wire == _BYTES:
                    for tag, scalar in _summary_values(value):
                        scalars.setdefault(tag, []).append((step, scalar))
                        count += 1
        except (EventFileError, struct.error, UnicodeDecodeError):
            break
    return scalars
