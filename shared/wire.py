"""Wire records: the versioned msgpack maps that planes exchange through Redis.

Routes, route events and conversation records are dataclasses that travel as msgpack
maps of their fields, versioned by the field `v`, the layout. Planes of two releases run
side by side during every upgrade, so:

- A reader ignores fields it does not know: a newer plane may add fields (with a
  default), and adding a field does not change the layout. A field added later can be
  left out while it holds its default (`omit_if_default`), so that planes from before it
  see nothing new in the common case.
- The layout changes only when an older reader could misread a record (a field changes
  meaning or type); a record whose `v` is newer than `WIRE_VERSION` is unreadable here.
- A map without `v` is layout 1, and layout 1 is written without `v`: planes from before
  records were versioned read maps with a key they do not know as malformed, so the
  field appears on the wire with the first layout that needs it (2).
- A record that cannot be read (not msgpack, not a map, a missing or mistyped field, a
  newer layout) raises `UnreadableRecord`, which says why. Callers never drop such a
  record silently: ingest parks it in the dead-letter stream, the route follower keeps
  what it serves and re-reads everything.

Decoding is msgspec's: it checks every field against the dataclass's annotations.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

import msgspec

WIRE_VERSION = 1
"""The newest record layout this code reads, and the one it writes."""
IMPLICIT_VERSION = 1
"""The layout of a map without `v`."""
VERSION_FIELD = "v"

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()


class UnreadableRecord(ValueError):
    """A wire record this plane cannot read; the message says which record and why."""


class _Layout(msgspec.Struct):
    v: int = IMPLICIT_VERSION


_layout_decoder = msgspec.msgpack.Decoder(_Layout)
_decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}


def pack(record: Any, *, omit_if_default: Collection[str] = ()) -> bytes:
    """`record` (a dataclass; nested dataclasses allowed) as a msgpack map of its layout.

    Fields named in `omit_if_default` are left out while they hold their default."""
    fields = dict(vars(record))  # vars(), not dataclasses.asdict(): asdict deep-copies (~40 µs a record)
    declared = record.__dataclass_fields__
    for name in omit_if_default:
        if fields[name] == declared[name].default:
            del fields[name]
    if WIRE_VERSION != IMPLICIT_VERSION:
        fields[VERSION_FIELD] = WIRE_VERSION
    return _encoder.encode(fields)


def unpack(data: bytes, record_type: type[T]) -> T:
    """The `record_type` dataclass packed in `data`, unknown fields ignored; `UnreadableRecord` if not."""
    try:
        version = _layout_decoder.decode(data).v
        if version > WIRE_VERSION:
            raise UnreadableRecord(
                f"{record_type.__name__} has layout v{version}, newer than this plane reads "
                f"(v{WIRE_VERSION}); upgrade this plane"
            )
        decoder = _decoders.get(record_type)
        if decoder is None:
            decoder = _decoders[record_type] = msgspec.msgpack.Decoder(record_type)
        record: T = decoder.decode(data)
    except msgspec.MsgspecError as exc:
        raise UnreadableRecord(f"{record_type.__name__} cannot be read: {exc}") from exc
    return record
