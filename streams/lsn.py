"""PostgreSQL log sequence numbers (LSNs).

An LSN is a 64-bit byte position in the write-ahead log. PostgreSQL prints it
as two upper-case hexadecimal halves, ``'16/B374D848'`` (high 32 bits, slash,
low 32 bits, no zero padding), and ``0/0`` is ``InvalidXLogRecPtr``.

:class:`Lsn` is an ``int`` subclass, so it orders, hashes and compares like
the integer position (an ``Lsn`` equals the plain ``int`` of the same value,
and code that keeps LSNs as ints keeps working). Arithmetic follows WAL
positions: ``Lsn - Lsn`` is a distance in bytes (a plain ``int``, e.g.
replication lag), ``Lsn ± int`` is another ``Lsn``.
"""

from __future__ import annotations

import re

_MAX = (1 << 64) - 1
_TEXT = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


class Lsn(int):
    """A WAL position, 0 .. 2**64-1."""

    __slots__ = ()

    def __new__(cls, value: int | str = 0) -> Lsn:
        if isinstance(value, str):
            return cls.parse(value)
        if not 0 <= value <= _MAX:
            raise ValueError(f"LSN out of range: {value}")
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """Read PostgreSQL's ``'X/Y'`` text form (what ``pg_lsn`` prints and accepts)."""
        match = _TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"not an LSN: {text!r}")
        return int.__new__(cls, (int(match[1], 16) << 32) | int(match[2], 16))

    def __str__(self) -> str:
        value = int(self)
        return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"

    def __format__(self, spec: str) -> str:
        # An empty spec (f"{lsn}") gives PostgreSQL's text form; numeric specs
        # (f"{lsn:x}", f"{lsn:,d}") format the integer position.
        return str(self) if not spec else int.__format__(int(self), spec)

    @property
    def is_valid(self) -> bool:
        """False for ``0/0`` (``InvalidXLogRecPtr``)."""
        return int(self) != 0

    def __add__(self, other: object) -> Lsn:
        if isinstance(other, int):
            return Lsn(int(self) + int(other))
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: object):  # -> int | Lsn
        if isinstance(other, Lsn):
            return int(self) - int(other)
        if isinstance(other, int):
            return Lsn(int(self) - other)
        return NotImplemented

    def __rsub__(self, other: object) -> int:
        if isinstance(other, int):
            return int(other) - int(self)
        return NotImplemented

    def lag_bytes(self, behind: int) -> int:
        """Bytes of WAL from ``behind`` up to this position, never negative.

        ``server_end.lag_bytes(confirmed_flush)`` is the replication lag a
        slot's consumer reports; a consumer ahead of the server reads 0.
        """
        return max(0, int(self) - int(behind))


INVALID_LSN = Lsn(0)
