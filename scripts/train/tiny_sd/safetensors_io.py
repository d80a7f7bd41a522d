"""The safetensors format, written and read by hand (no extra package): an 8-byte little-endian header length,
a JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian tensor bytes."""
from __future__ import annotations

import json
import struct

import numpy as np

_DTYPES = {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32", np.dtype("<i8"): "I64", np.dtype("u1"): "U8"}
_NUMPY = {v: k for k, v in _DTYPES.items()}


def write(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    header: dict = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, array in tensors.items():
        a = np.ascontiguousarray(array)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype not in _DTYPES:
            raise ValueError(f"{name}: dtype {a.dtype} is not written by this tool")
        data = a.tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    # Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read(path: str, names: set[str] | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors, or only `names` (a file may hold dtypes this tool does not decode, e.g. BF16, beside them)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        if names is not None and name not in names:
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=_NUMPY[info["dtype"]]).reshape(info["shape"]).copy()
    return out, metadata
