"""The durable conversation outbox, on real files: append, read back in order, torn records, bounds."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import pytest

from data_plane.outbox import FRAME_HEADER, DiskOutbox, outbox_directory


def entries(count: int, size: int = 100) -> list[tuple[str, bytes]]:
    return [(str(uuid.uuid4()), bytes([index % 256]) * size) for index in range(count)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def held(outbox: DiskOutbox) -> list[tuple[str, bytes]]:
    return [(record.conversation_id, record.packed) for record in outbox.oldest(len(outbox))]


def append_and_close(
    directory: Path, batches: list[list[tuple[str, bytes]]], max_bytes: int = 1 << 20
) -> None:
    async def main() -> None:
        outbox = DiskOutbox(directory, max_bytes=max_bytes)
        for batch in batches:
            await outbox.append(batch)
        await outbox.close()

    asyncio.run(main())


def reopened(directory: Path, max_bytes: int = 1 << 20) -> list[tuple[str, bytes]]:
    async def main() -> list[tuple[str, bytes]]:
        outbox = DiskOutbox(directory, max_bytes=max_bytes)
        try:
            return held(outbox)
        finally:
            await outbox.close()

    return asyncio.run(main())


def test_records_are_read_back_in_order_by_the_next_process(tmp_path: Path) -> None:
    first, second = entries(3), entries(2)
    append_and_close(tmp_path, [first, second])

    assert reopened(tmp_path) == first + second


def test_the_directory_is_per_plane_id(tmp_path: Path) -> None:
    assert outbox_directory(tmp_path, "host:4000") == tmp_path / "outbox" / "host%3A4000"
    assert outbox_directory(tmp_path, "a/../b").parent == tmp_path / "outbox"


@pytest.mark.parametrize("cut", [1, FRAME_HEADER.size - 1, FRAME_HEADER.size + 3, 40])
def test_a_torn_last_record_is_skipped_and_the_start_goes_on(
    tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    written = entries(3)
    append_and_close(tmp_path, [written])
    (segment,) = segments(tmp_path)
    whole = segment.stat().st_size
    frame = whole // 3
    with segment.open("r+b") as file:
        file.truncate(2 * frame + cut)  # the third frame is torn

    with caplog.at_level(logging.WARNING, logger="ffaas.outbox"):
        assert reopened(tmp_path) == written[:2]
    assert f"the record at byte {2 * frame} is torn or corrupt" in caplog.text
    assert segment.stat().st_size == 2 * frame, "the torn tail is cut off the file"

    later = entries(1)
    append_and_close(tmp_path, [later])
    assert reopened(tmp_path) == written[:2] + later


def test_a_corrupt_record_is_detected_by_its_checksum(tmp_path: Path) -> None:
    written = entries(2)
    append_and_close(tmp_path, [written])
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))

    assert reopened(tmp_path) == written[:1]


def test_a_file_with_nothing_whole_is_removed(tmp_path: Path) -> None:
    append_and_close(tmp_path, [entries(1)])
    (segment,) = segments(tmp_path)
    segment.write_bytes(segment.read_bytes()[:5])

    assert reopened(tmp_path) == []
    assert segments(tmp_path) == []


def test_drained_records_leave_no_files(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        outbox = DiskOutbox(tmp_path, max_bytes=2000)  # segments of 500 bytes: several files
        await outbox.append(entries(10))
        files_before = len(segments(tmp_path))
        outbox.remove(outbox.oldest(6))
        await outbox.close()  # after the deletions, on the outbox's thread
        return files_before, len(segments(tmp_path))

    files_before, files_partly_drained = asyncio.run(main())
    assert files_before > 2
    assert 0 < files_partly_drained < files_before, "segments whose records are all drained are deleted"
    assert len(reopened(tmp_path)) >= 4

    async def drain_all() -> None:
        outbox = DiskOutbox(tmp_path, max_bytes=2000)
        outbox.remove(outbox.oldest(len(outbox)))
        await outbox.close()

    asyncio.run(drain_all())
    assert segments(tmp_path) == []


def test_past_max_bytes_the_oldest_are_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written = entries(20, size=100)
    frame = FRAME_HEADER.size + 1 + 36 + 100

    async def main() -> tuple[int, int, int, list[tuple[str, bytes]]]:
        outbox = DiskOutbox(tmp_path, max_bytes=5 * frame)
        for entry in written:
            await outbox.append([entry])
        result = (len(outbox), outbox.bytes, outbox.dropped, held(outbox))
        await outbox.close()
        return result

    with caplog.at_level(logging.ERROR, logger="ffaas.outbox"):
        count, size, dropped, kept = asyncio.run(main())
    assert (count, size, dropped) == (5, 5 * frame, 15)
    assert kept == written[-5:]
    assert "FFAAS_OUTBOX_MAX_BYTES" in caplog.text
    assert reopened(tmp_path, max_bytes=5 * frame)[-5:] == written[-5:]


def test_a_second_process_with_the_same_plane_id_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        outbox = DiskOutbox(tmp_path, max_bytes=1000)
        try:
            with pytest.raises(RuntimeError, match="FFAAS_PLANE_ID"):
                DiskOutbox(tmp_path, max_bytes=1000)
        finally:
            await outbox.close()

    asyncio.run(main())
