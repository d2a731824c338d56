"""The conversation outbox on the data plane's disk: records that could not reach Redis yet.

Layout: `<FFAAS_DATA_DIR>/outbox/<plane id, %-quoted>/<number>.seg`, append-only segment
files written by one process only (a lock file refuses a second process with the same plane
id).  Each record is one frame: `length (u32) | crc32 (u32) | payload`, big-endian, where the
payload is `id length (u8) | conversation id | packed record`; so a torn last record (a crash
in the middle of a write) or a corrupt one is detected at start, logged and cut off, never
mistaken for a record, and the start goes on.

Invariants:
- `append` returns once the records are written and fsynced: one fsync for all the records
  given together (the recorder groups the runs finishing together).  If the disk fails, it
  returns after logging and counting the error; the records are still held in memory.
- Records are also held in memory, in append order, for the drainer: `oldest`/`after` read
  them, `remove` forgets the oldest once they are in Redis.  A segment whose records are all
  gone is deleted; once the outbox is empty no segment is left.
- The outbox holds at most `max_bytes` of frames (FFAAS_OUTBOX_MAX_BYTES): past it the oldest
  records are dropped, logged and counted (`dropped`).  A dropped record may stay in its
  segment file until that segment is deleted, so a crash before then brings it back at start
  (where the bound applies again).
- Every file operation runs, in order, on the outbox's own thread: the event loop never
  waits on the disk, and a segment is never deleted while a write to it is pending.
- At start the segments an earlier process with the same plane id left are read back, oldest
  first; new records go to new segments after them.
- An outbox no worker owns any more (the worker count changed) is opened the same way by
  another worker, which drains it and removes the directory, holding its lock throughout
  (`outbox_adoption.py`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import itertools
import logging
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("ffaas.outbox")

FRAME_HEADER = struct.Struct(">II")
"""Payload length and CRC-32 of the payload."""
SEGMENT_SUFFIX = ".seg"
MAX_SEGMENT_BYTES = 4 << 20


class OutboxLocked(RuntimeError):
    """Another process holds the outbox's lock."""


def outbox_root(data_dir: Path) -> Path:
    return data_dir / "outbox"


def outbox_directory(data_dir: Path, plane_id: str) -> Path:
    return outbox_root(data_dir) / quote(plane_id, safe="")


def encode_frame(conversation_id: str, packed: bytes) -> bytes:
    ident = conversation_id.encode()
    payload = bytes([len(ident)]) + ident + packed
    return FRAME_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes) -> tuple[list[tuple[str, bytes, int]], int]:
    """The (conversation id, packed record, frame size) of each whole frame from the start of
    `data`, and the offset where they end: reading stops at the first torn or corrupt frame."""
    frames: list[tuple[str, bytes, int]] = []
    offset = 0
    while offset + FRAME_HEADER.size <= len(data):
        length, checksum = FRAME_HEADER.unpack_from(data, offset)
        start = offset + FRAME_HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or length == 0 or zlib.crc32(payload) != checksum:
            break
        id_end = 1 + payload[0]
        if id_end > length:
            break
        frames.append(
            (payload[1:id_end].decode("ascii", "replace"), payload[id_end:], FRAME_HEADER.size + length)
        )
        offset = start + length
    return frames, offset


@dataclass(eq=False)
class Segment:
    number: int
    path: Path
    held: int = 0
    """Records of this segment still in the outbox."""
    fd: int | None = None
    """Open for appending; only the outbox's thread uses it."""
    size: int = 0


@dataclass(eq=False)
class HeldRecord:
    seq: int
    """Increasing in append order, without gaps."""
    conversation_id: str
    packed: bytes
    segment: Segment
    size: int
    gone: bool = False
    """Removed (in Redis) or dropped."""


class DiskOutbox:
    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        """Open the outbox at `directory` and read back what an earlier process left there."""
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        self.disk_errors = 0
        self.bytes = 0
        self._segment_bytes = max(1, min(MAX_SEGMENT_BYTES, max_bytes // 4))
        self._records: collections.deque[HeldRecord] = collections.deque()
        self._current: Segment | None = None
        self._seq = itertools.count()
        directory.mkdir(parents=True, exist_ok=True)
        for made in (directory.parent, directory.parent.parent):  # the new entries survive a crash
            _sync_directory(made)
        self._lock_fd = _lock(directory)
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ffaas-outbox")
        self._next_number = self._replay()

    def __len__(self) -> int:
        return len(self._records)

    async def append(self, entries: list[tuple[str, bytes]]) -> None:
        """Hold `entries` (conversation id, packed record) after the others; return once on disk."""
        written: list[tuple[HeldRecord, bytes]] = []
        for conversation_id, packed in entries:
            frame = encode_frame(conversation_id, packed)
            written.append((self._hold(conversation_id, packed, len(frame)), frame))
        self._drop_over_bound()
        writes = [(record.segment, frame) for record, frame in written if not record.gone]
        if not writes:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._disk, _write_and_sync, writes)
        except OSError as exc:
            self.disk_errors += 1
            if any(segment is self._current for segment, _ in writes):
                self._current = None  # later records go to a new segment, not after a torn write
            log.error(
                "could not write %d conversation records to the outbox in %s (%s): "
                "they are held in memory only",
                len(writes),
                self.directory,
                exc,
            )

    def oldest(self, limit: int) -> list[HeldRecord]:
        return list(itertools.islice(self._records, limit))

    def after(self, seq: int, limit: int) -> list[HeldRecord]:
        """Up to `limit` records appended after the record numbered `seq`, oldest first."""
        if not self._records:
            return []
        start = max(0, seq - self._records[0].seq + 1)
        return list(itertools.islice(self._records, start, start + limit))

    def remove(self, records: list[HeldRecord]) -> None:
        """Forget `records`, the oldest ones (as `oldest` gave them), now that they are in Redis."""
        for record in records:
            if record.gone:  # dropped meanwhile
                continue
            oldest = self._records.popleft()
            assert oldest is record, "records leave the outbox oldest first"
            self._forget(oldest)

    async def close(self, *, remove_if_empty: bool = False) -> None:
        """Finish the pending file operations and close the files; held records stay on disk.
        `remove_if_empty`: an outbox that holds nothing loses its directory too (while still
        locked, so no other process is using it)."""
        loop = asyncio.get_running_loop()
        segments = {record.segment for record in self._records}
        if self._current is not None:
            segments.add(self._current)
        await loop.run_in_executor(self._disk, _close_all, list(segments))
        self._disk.shutdown(wait=True)
        if remove_if_empty and not self._records:
            with contextlib.suppress(OSError):  # not empty (a stranger's file): it stays, harmless
                (self.directory / "lock").unlink()
                self.directory.rmdir()
        os.close(self._lock_fd)
        if self._records:
            log.warning(
                "%d conversation records (%d bytes) stay in the outbox %s; they are written to Redis "
                "when this data plane starts again",
                len(self._records),
                self.bytes,
                self.directory,
            )

    def _hold(self, conversation_id: str, packed: bytes, size: int) -> HeldRecord:
        segment = self._current
        if segment is None or (segment.size > 0 and segment.size + size > self._segment_bytes):
            path = self.directory / f"{self._next_number:012d}{SEGMENT_SUFFIX}"
            segment = self._current = Segment(self._next_number, path)
            self._next_number += 1
        record = HeldRecord(next(self._seq), conversation_id, packed, segment, size)
        self._records.append(record)
        segment.held += 1
        segment.size += size
        self.bytes += size
        return record

    def _forget(self, record: HeldRecord) -> None:
        record.gone = True
        self.bytes -= record.size
        segment = record.segment
        segment.held -= 1
        if segment.held == 0:
            if segment is self._current:
                self._current = None
            self._disk.submit(_delete, segment)

    def _drop_over_bound(self) -> None:
        dropped = 0
        while self.bytes > self.max_bytes and self._records:
            self._forget(self._records.popleft())
            dropped += 1
        if dropped:
            self.dropped += dropped
            log.error(
                "conversation outbox over %d bytes (FFAAS_OUTBOX_MAX_BYTES): dropped the %d oldest "
                "records (%d dropped since start)",
                self.max_bytes,
                dropped,
                self.dropped,
            )

    def _replay(self) -> int:
        """Read back the segments left in the directory; the number of the next segment."""
        numbers = sorted(
            int(path.name.removesuffix(SEGMENT_SUFFIX))
            for path in self.directory.glob(f"*{SEGMENT_SUFFIX}")
            if path.name.removesuffix(SEGMENT_SUFFIX).isdigit()
        )
        for number in numbers:
            path = self.directory / f"{number:012d}{SEGMENT_SUFFIX}"
            data = path.read_bytes()
            frames, end = decode_frames(data)
            if end < len(data):
                log.warning(
                    "conversation outbox %s: the record at byte %d is torn or corrupt; skipped the "
                    "last %d bytes of the file",
                    path,
                    end,
                    len(data) - end,
                )
                os.truncate(path, end)
            if not frames:
                path.unlink()
                continue
            segment = Segment(number, path)
            for conversation_id, packed, size in frames:
                self._records.append(HeldRecord(next(self._seq), conversation_id, packed, segment, size))
                segment.held += 1
                segment.size += size
                self.bytes += size
        if self._records:
            log.info(
                "conversation outbox %s: %d records (%d bytes) left by an earlier start, to be written "
                "to Redis",
                self.directory,
                len(self._records),
                self.bytes,
            )
        self._drop_over_bound()
        return numbers[-1] + 1 if numbers else 1


def _lock(directory: Path) -> int:
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutboxLocked(
            f"another data plane process uses the conversation outbox {directory}: each process "
            "needs its own FFAAS_PLANE_ID"
        ) from None
    return fd


# -- on the outbox's thread ------------------------------------------------------------------------


def _write_and_sync(writes: list[tuple[Segment, bytes]]) -> None:
    touched: dict[int, Segment] = {}
    for segment, frame in writes:
        if segment.fd is None:
            segment.fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            _sync_directory(segment.path.parent)
        view = memoryview(frame)
        while view:
            view = view[os.write(segment.fd, view) :]
        touched[segment.number] = segment
    for segment in touched.values():
        assert segment.fd is not None
        os.fsync(segment.fd)


def _delete(segment: Segment) -> None:
    try:
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None
        segment.path.unlink(missing_ok=True)
    except OSError as exc:
        log.error("could not delete the drained outbox segment %s: %s", segment.path, exc)


def _close_all(segments: list[Segment]) -> None:
    for segment in segments:
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
