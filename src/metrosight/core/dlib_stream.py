"""Decoding dlib's serialisation primitives (integers, floats, strings, tensors), for
:mod:`metrosight.core.dlib_dat`."""

from __future__ import annotations

import math

import numpy as np

from metrosight.core.dlib_layers import DlibFormatError, DlibTruncatedError

# Largest string dlib layer/version names have; a string length above this is treated as corruption.
MAX_NAME_LEN = 256


# ---------------------------------------------------------------------------------------------------------------
# Primitive decoding
# ---------------------------------------------------------------------------------------------------------------


class DlibStream:
    """A cursor over bytes with dlib's primitive decoders."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.data):
            raise DlibTruncatedError(
                f"stream ended while reading {what}: needed {n} bytes, {len(self.data) - self.pos} left",
                offset=self.pos,
                value=len(self.data),
            )

    def read_bytes(self, n: int, what: str) -> bytes:
        self._need(n, what)
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def read_int(self, what: str = "integer", *, signed: bool = True) -> int:
        start = self.pos
        self._need(1, what)
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        if ctrl & 0x70 or size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte while reading {what}", offset=start, value=ctrl)
        if ctrl & 0x80 and not signed:
            raise DlibFormatError(f"negative value for unsigned {what}", offset=start, value=ctrl)
        self.pos += 1
        raw = self.read_bytes(size, what)
        value = int.from_bytes(raw, "little", signed=False)
        return -value if ctrl & 0x80 else value

    def peek_int(self) -> int | None:
        """The next integer without consuming it, or ``None`` if the next bytes are not a valid integer."""
        saved = self.pos
        try:
            return self.read_int()
        except DlibFormatError:
            return None
        finally:
            self.pos = saved

    def read_float(self, what: str = "float") -> float:
        start = self.pos
        self._need(1, what)
        if self.data[self.pos] & 0x70:
            # dlib's pre-2013 ASCII float format; no DNN file uses it.
            raise DlibFormatError(
                f"ASCII float encoding is not supported ({what})", offset=start, value=self.data[self.pos]
            )
        mantissa = self.read_int(what)
        exponent = self.read_int(what)
        if not -32768 <= exponent <= 32767:
            raise DlibFormatError(f"float exponent out of int16 range ({what})", offset=start, value=exponent)
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def read_bool(self, what: str = "bool") -> bool:
        start = self.pos
        b = self.read_bytes(1, what)[0]
        if b == ord("1"):
            return True
        if b == ord("0"):
            return False
        raise DlibFormatError(f"bad bool byte while reading {what}", offset=start, value=b)

    def read_u8(self, what: str = "uint8") -> int:
        return self.read_bytes(1, what)[0]

    def read_string(self, what: str = "string") -> str:
        start = self.pos
        n = self.read_int(what, signed=False)
        if n > MAX_NAME_LEN and what.endswith("tag"):
            raise DlibFormatError(f"implausible length for {what}", offset=start, value=n)
        raw = self.read_bytes(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DlibFormatError(f"non-text bytes in {what}", offset=start, value=raw[:32]) from exc

    def peek_is_name(self) -> bool:
        """Whether a layer/input/loss name string starts here (versions are 1..3; names are 4+ chars)."""
        saved = self.pos
        try:
            n = self.read_int(signed=False)
            if not 4 <= n <= MAX_NAME_LEN or self.pos + n > len(self.data):
                return False
            raw = bytes(self.data[self.pos : self.pos + n])
            return all(c == 0x5F or 0x30 <= c <= 0x39 or 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A for c in raw)
        except DlibFormatError:
            return False
        finally:
            self.pos = saved

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A (resizable_)tensor as a ``(num_samples, k, nr, nc)`` float32 array."""
        start = self.pos
        version = self.read_int(f"{what} version")
        dims = [self.read_int(f"{what} dims", signed=False) for _ in range(4)]
        count = dims[0] * dims[1] * dims[2] * dims[3]
        if version == 2:
            self._need(4 * count, f"{what} data")
            arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
            self.pos += 4 * count
        elif version == 1:
            arr = np.array([self.read_float(f"{what} data") for _ in range(count)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown {what} version", offset=start, value=version)
        return arr.reshape(dims)

    def read_alias(self, what: str = "alias_tensor") -> tuple[int, int, int, int]:
        start = self.pos
        version = self.read_int(f"{what} version")
        if version != 1:
            raise DlibFormatError(f"unknown {what} version", offset=start, value=version)
        n, k, nr, nc = (self.read_int(f"{what} dims", signed=False) for _ in range(4))
        return (n, k, nr, nc)


def view_params(params: np.ndarray, shape: tuple[int, int, int, int], offset: int, what: str, pos: int) -> np.ndarray:
    flat = params.reshape(-1)
    size = shape[0] * shape[1] * shape[2] * shape[3]
    if offset + size > flat.size:
        raise DlibFormatError(
            f"{what} alias {shape} at {offset} exceeds parameter tensor of {flat.size}", offset=pos, value=shape
        )
    return flat[offset : offset + size].reshape(shape).copy()
