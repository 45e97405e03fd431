"""The idx file format of MNIST and Fashion-MNIST, read with numpy (gzip or plain).

Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions d, then d big-endian
int32 sizes; the data follows. A file whose length does not match its header is reported as corrupt.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tricklab.errors import DataError

UINT8 = 0x08


def read_idx(path: Path) -> np.ndarray:
    """The array stored in the idx file ``path`` (``.gz`` is decompressed)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is corrupt: it cannot be decompressed ({err}).") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != UINT8 or raw[3] == 0:
        raise DataError(f"{path} is corrupt: it does not start with an idx header of uint8 data.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">i4"))
    if len(raw) != header + int(np.prod(shape)):
        raise DataError(
            f"{path} is corrupt: its header announces shape {shape} ({int(np.prod(shape))} bytes) "
            f"but it holds {len(raw) - header} bytes of data."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
