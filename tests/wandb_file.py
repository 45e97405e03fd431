"""Read back what offline W&B wrote: the records of a binary ``run-<id>.wandb`` file.

Offline wandb 0.31 keeps config, history and summary only in this file: a 7-byte header
(``:W&B``, magic 0xBEE1, version) then LevelDB-log framing (32 KiB blocks; each chunk has a
crc32, a length and a type FULL/FIRST/MIDDLE/LAST) around ``wandb_internal_pb2.Record`` messages.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32768
CHUNK_HEADER = 7  # crc32 (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: Path) -> list:
    """Every protobuf Record stored in ``path``."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pending, pos = [], b"", 7
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        if kind == 0 and length == 0:
            pos += left_in_block
            continue
        payload = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        pending = payload if kind in (FULL, FIRST) else pending + payload
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@dataclass
class WandbRun:
    """The parts of an offline run a test wants to check."""

    run_id: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _items(items) -> dict:
    out = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        out[key] = json.loads(item.value_json)
    return out


def read_run(path: Path) -> WandbRun:
    """Collect run metadata, config, history rows and summary from a ``.wandb`` file."""
    run = WandbRun()
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.run_id, run.group, run.job_type = record.run.run_id, record.run.run_group, record.run.job_type
            run.tags = list(record.run.tags)
            run.config.update(_items(record.run.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
    return run


def find_run_files(root: Path) -> list[Path]:
    """All ``run-*.wandb`` files below ``root``."""
    return sorted(Path(root).rglob("run-*.wandb"))


def read_finished_run(path: Path, timeout: float = 30.0) -> WandbRun:
    """``read_run`` once the file holds its closing ``exit`` record: after ``wandb.finish()`` returns, the
    offline writer may still be flushing the last records (seen: a history row missing on a first read)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_records(path)
        if records and records[-1].WhichOneof("record_type") == "exit":
            break
        time.sleep(0.1)
    return read_run(path)
