"""TFRecord files read without TensorFlow: the record framing with its CRCs, and ``tf.train.Example``.

A TFRecord file is a sequence of records, each::

    uint64 length (little-endian) | uint32 masked CRC32C of the length | data | uint32 masked CRC32C of data

and meta-dataset's records hold a serialized ``tf.train.Example``: ``Features features = 1``, a
``map<string, Feature> feature = 1``, each ``Feature`` one of ``BytesList bytes_list = 1``,
``FloatList float_list = 2`` or ``Int64List int64_list = 3``. :func:`parse_example` reads that with a small
protobuf wire-format reader. CRCs are computed by the ``crc32c`` package when it is installed (C speed), else
by a table-driven implementation here (about 13 MB/s).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from sb3_nas.data.base import DatasetError

_CASTAGNOLI = 0x82F63B78  # CRC-32C polynomial, reflected
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc32c_python(data: bytes | memoryview) -> int:
    """CRC-32C (Castagnoli) of ``data``, table-driven, one byte at a time."""
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the C implementation from PyPI (``pip install crc32c``, in the ``data`` extra)
    from crc32c import crc32c as _crc32c_c
except ImportError:  # pragma: no cover - depends on the environment
    _crc32c_c = None


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of ``data``: the ``crc32c`` package when installed, else :func:`crc32c_python`."""
    return _crc32c_c(data) if _crc32c_c is not None else crc32c_python(data)


def masked_crc(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC-32C: rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: str | Path, verify: bool = True) -> Iterator[bytes]:
    """The data of every record in a TFRecord file; a truncated record or a CRC that does not match raises
    :class:`DatasetError` naming the file, the record's index and its byte offset."""
    path = Path(path)
    with open(path, "rb") as file:
        index = 0
        while True:
            offset = file.tell()
            header = file.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise DatasetError(f"tfrecords file {path}: record {index} at byte {offset} is truncated")
            length, length_crc = _HEADER.unpack(header)
            if verify and masked_crc(header[:8]) != length_crc:
                raise DatasetError(
                    f"tfrecords file {path}: record {index} at byte {offset}: "
                    "length CRC mismatch (corrupt file)"
                )
            data = file.read(length)
            footer = file.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise DatasetError(
                    f"tfrecords file {path}: record {index} at byte {offset} is truncated "
                    f"({length} data bytes announced)"
                )
            if verify and masked_crc(data) != _FOOTER.unpack(footer)[0]:
                raise DatasetError(
                    f"tfrecords file {path}: record {index} at byte {offset}: "
                    "data CRC mismatch (corrupt file)"
                )
            yield data
            index += 1


def count_records(path: str | Path) -> int:
    """How many records a TFRecord file holds, from the framing alone (no data is read or checked)."""
    path = Path(path)
    size, count, offset = path.stat().st_size, 0, 0
    with open(path, "rb") as file:
        while offset < size:
            header = file.read(8)
            if len(header) < 8:
                raise DatasetError(f"tfrecords file {path}: record {count} at byte {offset} is truncated")
            offset += 16 + struct.unpack("<Q", header)[0]
            if offset > size:
                raise DatasetError(f"tfrecords file {path}: record {count} at byte {offset} is truncated")
            file.seek(offset)
            count += 1
    return count


# --- protobuf wire format ---------------------------------------------------------------------------------


class _WireError(ValueError):
    pass


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer):
            raise _WireError("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise _WireError("varint longer than 10 bytes")


def _fields(buffer: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a message: an int for varints and fixed-width values, a
    memoryview for length-delimited ones."""
    position, end = 0, len(buffer)
    view = memoryview(buffer)
    while position < end:
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire == 1:
            value, position = int.from_bytes(buffer[position : position + 8], "little"), position + 8
        elif wire == 2:
            length, position = _varint(buffer, position)
            value, position = view[position : position + length], position + length
        elif wire == 5:
            value, position = int.from_bytes(buffer[position : position + 4], "little"), position + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if position > end:
            raise _WireError("truncated field")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _feature(buffer: bytes) -> list[bytes] | list[int] | list[float]:
    for number, wire, value in _fields(buffer):
        if wire != 2:
            continue
        if number == 1:  # BytesList: repeated bytes value = 1
            return [bytes(item) for n, w, item in _fields(bytes(value)) if n == 1 and w == 2]
        if number == 3:  # Int64List: repeated int64 value = 1, packed or not
            values: list[int] = []
            for n, w, item in _fields(bytes(value)):
                if n == 1 and w == 0:
                    values.append(_signed64(item))
                elif n == 1 and w == 2:
                    packed, position = bytes(item), 0
                    while position < len(packed):
                        raw, position = _varint(packed, position)
                        values.append(_signed64(raw))
            return values
        if number == 2:  # FloatList: repeated float value = 1, packed or not
            floats: list[float] = []
            for n, w, item in _fields(bytes(value)):
                if n == 1 and w == 5:
                    floats.append(struct.unpack("<f", item.to_bytes(4, "little"))[0])
                elif n == 1 and w == 2:
                    floats.extend(x for (x,) in struct.iter_unpack("<f", bytes(item)))
            return floats
    return []


def parse_example(data: bytes) -> dict[str, list[bytes] | list[int] | list[float]]:
    """The features of a serialized ``tf.train.Example``: name → its list of values (``ValueError`` on
    bytes that are not one)."""
    features: dict[str, list[bytes] | list[int] | list[float]] = {}
    try:
        for number, wire, value in _fields(data):
            if number != 1 or wire != 2:  # Example.features
                continue
            for n, w, entry in _fields(bytes(value)):
                if n != 1 or w != 2:  # Features.feature: map entries
                    continue
                key, feature = "", b""
                for m, v, item in _fields(bytes(entry)):
                    if m == 1 and v == 2:
                        key = bytes(item).decode("utf-8", errors="replace")
                    elif m == 2 and v == 2:
                        feature = bytes(item)
                features[key] = _feature(feature)
    except _WireError as error:
        raise ValueError(f"not a tf.train.Example ({error})") from None
    return features
