"""A streamed pre-scan of a CSV file, before pandas reads it.

One pass over the file, in blocks, finds what a CSV reader would otherwise fail on or get
wrong silently:

- the **encoding**: a UTF-8/UTF-16/UTF-32 byte-order mark, BOM-less UTF-16/32 by the pattern
  of NUL bytes, else UTF-8 when the whole file decodes, else cp1252 (``encoding = "auto"``);
  and whether some byte is not valid in it (those rows are quarantined as
  ``encoding_error`` by the reader);
- the **header** as written (duplicate names are not renamed ``a.1`` as pandas does);
- rows with **more fields than the header** (``extra_fields``; one empty trailing field, a
  trailing delimiter, is allowed);
- **fields longer than the profile's ``max_field_bytes``** (``field_too_large``): such a row
  is cut out of the bytes pandas reads, so a multi-gigabyte field never reaches memory.

The pass is vectorised with numpy over the bytes (or UTF-16/32 code units) of each block;
memory is bounded by the block size and the longest row. Quotes are RFC 4180 (``"``,
doubled inside quoted fields), as pandas reads them; when a file quotes irregularly (a
quote inside an unquoted field, e.g. ``12" main``), the exact state machine of Python's
:mod:`csv` module (the same rules as pandas) takes over for the row structure.

Row numbers: ``ordinal`` is the 0-based index among the data rows (after the header, blank
lines left out), i.e. ``source_row - 1``. Rows with an oversize field are cut out of the byte
stream pandas reads (:func:`open_csv_without`); pandas reads a row with extra fields
(dropping the extra values, with ``index_col=False``) and the reader refuses it by its
ordinal.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import csv
import gzip
import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

import numpy as np
import pandas as pd

from ..errors import InputDataError

__all__ = [
    "DEFAULT_MAX_FIELD_BYTES",
    "CsvScan",
    "archive_errors",
    "open_csv_bytes",
    "open_csv_without",
    "scan_csv",
    "sniff_encoding",
]

#: fields longer than this (bytes as stored) quarantine their row (profile ``max_field_bytes``)
DEFAULT_MAX_FIELD_BYTES = 1 << 20
_BLOCK = 1 << 20
_QUOTE, _DELIM, _LF, _CR, _SPACE, _TAB = 0x22, 0x2C, 0x0A, 0x0D, 0x20, 0x09
#: bytes cp1252 leaves undefined (Python's codec refuses them), as a lookup table
_CP1252_UNDEFINED = np.zeros(256, dtype=bool)
_CP1252_UNDEFINED[[0x81, 0x8D, 0x8F, 0x90, 0x9D]] = True
#: the errors a damaged zip / gzip / bz2 / xz stream raises while being read
archive_errors = (zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError, OSError)
_UTF16_32 = {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}


class _Irregular(Exception):
    """The file quotes in a way the vectorised pass does not model (see the module doc)."""


@dataclass
class CsvScan:
    """What :func:`scan_csv` found; rows are numbered by ``ordinal`` (``source_row - 1``)."""

    encoding: str  # the codec pandas reads the file with
    decode_errors: bool  # some byte is not valid in ``encoding`` (decoded as U+FFFD)
    header: list[str]  # the header's names as written (stripped), duplicates kept
    header_record: int  # line (record) index of the header: blank lines may come first
    rows: int  # data rows (blank lines left out), anomalies included
    trailing: int = 0  # rows with one empty field more than the header (a trailing delimiter)
    #: rows with extra fields: ordinal, field count, and the rows themselves (header names
    #: plus ``(extra 1)``, ... as columns; text as in the file)
    extra_ordinal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra_fields: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra_rows: pd.DataFrame | None = None
    #: rows with a field above the limit: ordinal, field index (0-based), its size in bytes
    big_ordinal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    big_column: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    big_size: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    big_row_size: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: their byte ranges [start, end) in the (decompressed) file: cut out while reading
    big_spans: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    limit: int = DEFAULT_MAX_FIELD_BYTES

    @property
    def anomalies(self) -> np.ndarray:
        """Sorted ordinals of every row the scan refuses (extra fields, oversize fields)."""
        return np.union1d(self.extra_ordinal, self.big_ordinal)

    def kept_ordinals(self, start: int, n: int) -> np.ndarray:
        """Ordinals of the ``n`` rows pandas delivers from its ``start``-th one (0-based).

        Only rows with an oversize field are cut out of what pandas reads (``big_spans``);
        rows with extra fields are read (pandas drops the extra values) and refused by
        ordinal afterwards.
        """
        i = np.arange(start, start + n, dtype=np.int64)
        s = np.sort(self.big_ordinal)
        if not len(s):
            return i
        return i + np.searchsorted(s - np.arange(len(s)), i, side="right")


# --------------------------------------------------------------------------- opening


def _member(zf: zipfile.ZipFile, path: Path) -> zipfile.ZipInfo:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) != 1:
        raise InputDataError(
            f"{path}: a zipped CSV must hold exactly one file; it holds "
            f"{[i.filename for i in infos]}. Unzip it and point the source at the CSV"
        )
    return infos[0]


def zip_member_name(path: Path) -> str | None:
    """The member a zipped CSV is read from (``None`` when ``path`` is no zip)."""
    if path.suffix.lower() != ".zip":
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            return _member(zf, path).filename
    except (zipfile.BadZipFile, OSError, InputDataError):
        return None


@contextlib.contextmanager
def open_csv_bytes(path: Path) -> Iterator[IO[bytes]]:
    """The bytes of a CSV file, decompressed as pandas would (``.zip``, ``.gz``, ``.bz2``, ``.xz``).

    Raises
    ------
    InputDataError
        A truncated or corrupt archive (exit 3), naming the archive.
    """
    suffix = path.suffix.lower()
    if suffix == ".zip":
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputDataError(
                f"{path}: truncated or corrupt zip archive ({exc}); download the file again"
            ) from None
        with zf:
            info = _member(zf, path)
            with zf.open(info) as fh:
                yield fh
        return
    with _open_plain_or_compressed(path, suffix) as stream:
        yield stream


def _open_plain_or_compressed(path: Path, suffix: str) -> IO[bytes]:
    """``path`` opened for reading, decompressed for ``.gz``, ``.bz2`` and ``.xz``."""
    if suffix == ".gz":
        return cast(IO[bytes], gzip.open(path, "rb"))
    if suffix == ".bz2":
        return bz2.open(path, "rb")
    if suffix == ".xz":
        return lzma.open(path, "rb")
    return path.open("rb")


def _archive_error(path: Path, exc: BaseException) -> InputDataError:
    """The error for a stream that broke while being read (a damaged archive, or I/O)."""
    if path.suffix.lower() not in (".zip", ".gz", ".bz2", ".xz"):
        return InputDataError(f"{path}: cannot be read ({exc})")
    member = zip_member_name(path)
    what = f"corrupt archive member {member!r}" if member else "corrupt or truncated archive"
    return InputDataError(f"{path}: {what} ({exc}); download the file again")


class _Cut(io.RawIOBase):
    """A byte stream with some ranges cut out (the oversize rows), read block by block."""

    def __init__(self, raw: IO[bytes], spans: np.ndarray) -> None:
        self._raw = raw
        self._spans = [(int(a), int(b)) for a, b in spans]
        self._pos = 0
        self._k = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._k < len(self._spans) and self._pos >= self._spans[self._k][0]:
            end = self._spans[self._k][1]
            while self._pos < end:  # the row is read through, never held whole
                got = self._raw.read(min(end - self._pos, _BLOCK))
                if not got:
                    break
                self._pos += len(got)
            self._k += 1
        room = len(b)
        if self._k < len(self._spans):
            room = min(room, self._spans[self._k][0] - self._pos)
        data = self._raw.read(room)
        n = len(data)
        b[:n] = data
        self._pos += n
        return n


@contextlib.contextmanager
def open_csv_without(path: Path, spans: np.ndarray) -> Iterator[IO[bytes]]:
    """:func:`open_csv_bytes` with the byte ranges ``spans`` ([start, end) rows) cut out."""
    with open_csv_bytes(path) as fh:
        yield io.BufferedReader(_Cut(fh, spans), buffer_size=_BLOCK)


# --------------------------------------------------------------------------- encoding


def sniff_encoding(head: bytes) -> str | None:
    """The encoding a file's first bytes show: a byte-order mark, or UTF-16/32 NUL patterns.

    Returns a codec (``utf-32``/``utf-16``/``utf-8-sig`` with a BOM; ``utf-16-le``,
    ``utf-16-be``, ``utf-32-le``, ``utf-32-be`` without), or ``None`` when nothing shows
    (:func:`scan_csv` refuses other files with many NUL bytes as binary).
    """
    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return name
    n = len(head) // 4 * 4
    if n < 4:
        return None
    zero = np.frombuffer(head[:n], dtype=np.uint8) == 0
    if not zero.any():
        return None
    by4 = [float(zero[k::4].mean()) for k in range(4)]
    if min(by4[1:]) > 0.9 and by4[0] < 0.1:
        return "utf-32-le"
    if min(by4[:3]) > 0.9 and by4[3] < 0.1:
        return "utf-32-be"
    even, odd = float(zero[0::2].mean()), float(zero[1::2].mean())
    if odd > 0.6 and even < 0.1:
        return "utf-16-le"
    if even > 0.6 and odd < 0.1:
        return "utf-16-be"
    return None


def _units(encoding: str, head: bytes) -> tuple[np.dtype, int, str]:
    """The numpy code unit, the BOM length to skip, and the BOM-less codec of ``encoding``."""
    name = codecs.lookup(encoding).name
    if name in ("utf-16", "utf-32"):
        width = 2 if name == "utf-16" else 4
        big = head.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)) and not head.startswith(
            codecs.BOM_UTF32_LE
        )
        has_bom = head.startswith(
            (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
            if width == 4
            else (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        )
        order = ">" if big else "<"
        return (
            np.dtype(f"{order}u{width}"),
            width if has_bom else 0,
            f"{name}-{'be' if big else 'le'}",
        )
    if name in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        width = 2 if name.startswith("utf-16") else 4
        order = ">" if name.endswith("be") else "<"
        return np.dtype(f"{order}u{width}"), 0, name
    bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    return np.dtype(np.uint8), bom, "utf-8" if name in ("utf-8", "utf-8-sig") else encoding


def _resolve_encoding(path: Path, requested: str, head: bytes) -> str | None:
    """The encoding to read with (``None``: auto, UTF-8 or cp1252 decided by the scan)."""
    sniffed = sniff_encoding(head)
    if requested == "auto":
        if sniffed is None and head.count(0) > len(head) // 10:
            raise InputDataError(
                f"{path}: the file holds NUL bytes but is not UTF-16/UTF-32 text: is it a CSV "
                "file? (a spreadsheet or archive saved as .csv?) Export it as CSV again"
            )
        return None if sniffed in (None, "utf-8-sig") else sniffed
    name = codecs.lookup(requested).name
    if sniffed in _UTF16_32 and name not in _UTF16_32:
        raise InputDataError(
            f"{path}: the file is {sniffed.upper()} text but the profile says encoding = "
            f"{requested!r}; set encoding = 'auto' (or {sniffed!r}) in the profile"
        )
    if name not in _UTF16_32 and ',\n\r" '.encode(requested, "replace") != b',\n\r" ':
        raise InputDataError(
            f"{path}: encoding {requested!r} does not write CSV delimiters as ASCII; "
            "convert the file to UTF-8"
        )
    return requested


# --------------------------------------------------------------------------- the vectorised pass


@dataclass
class _State:
    """What the pass carries from one block to the next."""

    dtype: np.dtype
    limit: int  # in code units
    width: int  # bytes per code unit
    #: the unfinished row (starts at a row start), in parts so that a long row is not
    #: re-scanned block after block; with its length, quote parity, delimiters and the
    #: length of its open field
    carry: list[np.ndarray] = field(default_factory=list)
    carry_len: int = 0
    carry_pos: int = 0  # stream position (in units) of the carry's first unit
    pos: int = 0  # stream position of the next block
    carry_inside: bool = False
    carry_delims: int = 0
    carry_open: int = 0
    record: int = 0  # record index of the carry's first unit
    ordinal: int = 0  # data rows seen
    trailing: int = 0  # rows ending in one empty extra field (allowed)
    header: np.ndarray | None = None
    header_record: int = -1
    n_fields: int = 0
    skipping: bool = False  # inside an oversize row, looking for its end
    inside: bool = False  # quote parity while skipping
    drop_lf: bool = False  # the oversize row ended on a CR at a block end
    extra_ord: list[np.ndarray] = field(default_factory=list)
    extra_n: list[np.ndarray] = field(default_factory=list)
    extra_text: list[np.ndarray] = field(default_factory=list)
    big_ord: list[int] = field(default_factory=list)
    big_col: list[int] = field(default_factory=list)
    big_size: list[int] = field(default_factory=list)  # -1: more than the limit
    big_row: list[int] = field(default_factory=list)  # the row's size in units
    big_span: list[list[int]] = field(default_factory=list)  # [start, end) in units


@dataclass
class _Layout:
    """Where the quotes, field and row boundaries of a stretch of units are.

    Quote parity is never accumulated over every unit: a delimiter or line end is inside
    quotes when an odd number of quotes precede it (a binary search in the quote positions).
    """

    quotes: np.ndarray  # positions of every quote
    delim: np.ndarray  # delimiters outside quotes
    ends: np.ndarray  # row ends outside quotes (LF, or a CR not followed by a LF)
    start: bool  # inside quotes before the first unit
    end: bool  # inside quotes after the last unit


def _layout(u: np.ndarray, start: bool, final: bool) -> _Layout:
    """The :class:`_Layout` of ``u``; a CR ending a block that is not ``final`` is pending."""
    quotes = np.flatnonzero(u == _QUOTE)
    cand = np.flatnonzero((u == _DELIM) | (u == _LF) | (u == _CR))
    if len(quotes):
        cand = cand[((np.searchsorted(quotes, cand) + start) & 1) == 0]
    elif start:
        cand = cand[:0]
    c = u[cand]
    ends = c == _LF
    cr = c == _CR
    if cr.any():
        after = cand + 1
        nxt = np.where(after < len(u), u[np.minimum(after, len(u) - 1)], 0 if final else _LF)
        ends |= cr & (nxt != _LF)
    return _Layout(quotes, cand[c == _DELIM], cand[ends], start, bool((len(quotes) + start) & 1))


def _check_quotes(u: np.ndarray, lay: _Layout, open_end: bool = False) -> None:
    """Raise :class:`_Irregular` unless every run of quotes is where RFC 4180 puts it.

    A run that starts outside quotes must start a field; a run that leaves the quoted state
    must be followed by a delimiter or a line end. Then quote parity is exactly how pandas
    tokenises the units. A run at the start of ``u`` counts as starting a field (``u``
    starts a row, or continues one already checked), and with ``open_end`` a run at its
    end as ending one (what comes next is not known yet).
    """
    qi = lay.quotes
    if not len(qi):
        return
    k = np.arange(len(qi)) + lay.start  # quotes before each (plus the parity carried in)
    gap = np.diff(qi) > 1
    first_k, last_k = k[np.r_[True, gap]], k[np.r_[gap, True]]
    first, last = qi[np.r_[True, gap]], qi[np.r_[gap, True]]
    before_even = (first_k & 1) == 0
    prev = np.where(first > 0, u[np.maximum(first - 1, 0)], _LF)
    starts_field = (prev == _DELIM) | (prev == _LF) | (prev == _CR)
    after_even = ((last_k + 1) & 1) == 0
    after = last + 1
    nxt = np.where(after < len(u), u[np.minimum(after, len(u) - 1)], _LF if open_end else 0)
    ends_field = (nxt == _DELIM) | (nxt == _LF) | (nxt == _CR)
    if (before_even & ~starts_field).any() or (after_even & ~ends_field).any():
        raise _Irregular


def _set_carry(st: _State, rest: np.ndarray) -> None:
    """Make ``rest`` (starting at a row start, no row end in it) the unfinished row.

    ``st.carry_pos`` is already its stream position.
    """
    st.carry, st.carry_len = [], 0
    st.carry_inside, st.carry_delims, st.carry_open = False, 0, 0
    if len(rest):
        _grow_carry(st, rest, _layout(rest, False, False))


def _grow_carry(st: _State, u: np.ndarray, lay: _Layout) -> bool:
    """Add ``u`` (no row end in it) to the unfinished row; True when the row became oversize.

    Only ``u`` is looked at: the carry's parity, delimiter count and open field length
    are kept, so a row of many blocks costs one pass.
    """
    _check_quotes(u, lay, open_end=True)
    delim = lay.delim
    closed = np.diff(np.r_[-1 - st.carry_open, delim]) - 1  # fields closed in ``u``
    open_len = (len(u) - 1 - delim[-1]) if len(delim) else st.carry_open + len(u)
    sizes = np.r_[closed, open_len]
    big = np.flatnonzero(sizes > st.limit)
    if len(big):
        if st.header is None:
            raise InputDataError(
                f"the header is longer than max_field_bytes ({st.limit * st.width:,} bytes); "
                "this is not a CSV table. Check the file"
            )
        st.big_ord.append(st.ordinal)
        st.big_col.append(st.carry_delims + int(big[0]))
        st.big_size.append(-1)  # still growing: reported as "more than the limit"
        st.big_row.append(st.carry_len + len(u))
        st.big_span.append([st.carry_pos, -1])  # the end is found while skipping
        st.skipping, st.inside = True, lay.end
        st.carry, st.carry_len = [], 0
        return True
    if st.carry_len + len(u) > 16 * st.limit:
        raise InputDataError(
            f"row {st.ordinal + 1} is longer than {(st.carry_len + len(u)) * st.width:,} bytes "
            "with no line end in sight; this is not a table of rows. Check the file"
        )
    st.carry.append(u)
    st.carry_len += len(u)
    st.carry_inside = lay.end
    st.carry_delims += len(delim)
    st.carry_open = int(open_len)
    return False


def _skip_rest(st: _State, u: np.ndarray, final: bool) -> np.ndarray:
    """Skip the rest of an oversize row; return what follows it (``u`` fully consumed: empty)."""
    lay = _layout(u, st.inside, final)
    if not len(lay.ends):
        _check_quotes(u, lay, open_end=True)
        st.inside = lay.end
        st.big_row[-1] += len(u)
        return u[:0]
    e = int(lay.ends[0])
    _check_quotes(u[: e + 1], _layout(u[: e + 1], st.inside, True))
    st.big_row[-1] += e + 1
    st.skipping = False
    st.record += 1
    st.ordinal += 1
    rest = u[e + 1 :]
    if u[e] == _CR and not len(rest) and not final:
        st.drop_lf = True
    elif u[e] == _CR and len(rest) and rest[0] == _LF:
        rest = rest[1:]
    st.big_span[-1][1] = st.pos - len(rest)  # ``u`` ends where the stream is
    return rest


def _process(st: _State, block: np.ndarray, final: bool) -> None:
    """Consume the complete rows of ``carry + block``; keep the unfinished one as carry."""
    st.pos += len(block)
    if st.drop_lf and len(block):
        st.drop_lf = False
        if block[0] == _LF:
            block = block[1:]
            st.big_span[-1][1] += 1
    if st.skipping:
        block = _skip_rest(st, block, final)
        if st.skipping:
            return
    if not st.carry:
        st.carry_pos = st.pos - len(block)
    if not len(block) and not (final and st.carry_len):
        return
    if not final:
        lay = _layout(block, st.carry_inside, final)
        if not len(lay.ends):  # the row goes on: only the new part is looked at
            _grow_carry(st, block, lay)
            return
    u = np.concatenate([*st.carry, block]) if st.carry else block
    lay = _layout(u, False, final)
    if final and not lay.end and (not len(lay.ends) or lay.ends[-1] != len(u) - 1):
        u = np.r_[u, np.array([_LF], dtype=u.dtype)]  # the last row has no line end
        lay.ends = np.r_[lay.ends, len(u) - 1]
    if not len(lay.ends):  # the file ends inside quotes: unterminated, or irregular quoting
        raise _Irregular
    cut = int(lay.ends[-1]) + 1
    if cut < len(u):
        if final:  # the file ends inside quotes: unterminated, or irregular quoting
            raise _Irregular
        lay = _Layout(
            lay.quotes[lay.quotes < cut], lay.delim[lay.delim < cut], lay.ends, False, False
        )
    _rows(st, u[:cut], lay)
    st.carry_pos += cut
    _set_carry(st, u[cut:])


def _rows(st: _State, u: np.ndarray, lay: _Layout) -> None:
    """Field counts, blank rows and field sizes of the complete rows in ``u``."""
    _check_quotes(u, lay)
    ends, delim = lay.ends, lay.delim
    starts = np.r_[0, ends[:-1] + 1]
    before_end = np.searchsorted(delim, ends)  # delimiters before each row's end
    n_delim = np.diff(np.r_[0, before_end])
    fields = n_delim + 1
    text = (u != _SPACE) & (u != _TAB) & (u != _CR) & (u != _LF)
    blank = ~np.logical_or.reduceat(text, starts)  # a row's range ends with its line end
    # field sizes: every field ends at a delimiter or a row end (a CR before a LF counted in)
    is_bound = np.zeros(len(u), dtype=bool)
    is_bound[delim] = True
    is_bound[ends] = True
    bounds = np.flatnonzero(is_bound)
    sizes = bounds - np.r_[0, bounds[:-1] + 1]
    crlf_end = (u[bounds] == _LF) & (u[np.maximum(bounds - 1, 0)] == _CR) & (sizes > 0)
    sizes -= crlf_end  # a CR before a LF ends the row, it is not in the field
    n = len(ends)
    rec = st.record + np.arange(n, dtype=np.int64)
    data = ~blank
    if st.header is None:
        if not data.any():
            st.record += n
            return
        h = int(np.argmax(data))
        st.header = u[starts[h] : ends[h]].copy()
        st.header_record = int(rec[h])
        st.n_fields = int(fields[h])
        data[: h + 1] = False
    nf = st.n_fields
    ords = st.ordinal + np.cumsum(data) - 1
    big_field = np.flatnonzero(sizes > st.limit)
    big_row = np.zeros(n, dtype=bool)
    if len(big_field):
        row_of = np.searchsorted(ends, bounds[big_field])
        first = np.unique(row_of, return_index=True)
        for r, k in zip(first[0], first[1], strict=True):  # rare: one per oversize row
            if not data[r]:
                continue
            f = big_field[k]
            col = int(np.searchsorted(delim, bounds[f]) - (before_end[r] - n_delim[r]))
            st.big_ord.append(int(ords[r]))
            st.big_col.append(col)
            st.big_size.append(int(sizes[f]) * st.width)
            st.big_row.append(int(ends[r] - starts[r] + 1))
            st.big_span.append([st.carry_pos + int(starts[r]), st.carry_pos + int(ends[r]) + 1])
            big_row[r] = True
    last_delim = delim[np.maximum(before_end - 1, 0)] if len(delim) else np.zeros(n, np.int64)
    crlf = (u[ends] == _LF) & (u[np.maximum(ends - 1, 0)] == _CR) & (ends > starts)
    last_empty = (ends - last_delim - 1 - crlf) == 0
    one_more = data & ~big_row & (fields == nf + 1)
    st.trailing += int((one_more & last_empty).sum())
    extra = (data & ~big_row & (fields > nf + 1)) | (one_more & ~last_empty)
    if extra.any():
        st.extra_ord.append(ords[extra])
        st.extra_n.append(fields[extra])
        marks = np.zeros(len(u) + 1, dtype=np.int64)
        np.add.at(marks, starts[extra], 1)
        np.add.at(marks, ends[extra] + 1, -1)
        st.extra_text.append(u[np.cumsum(marks[:-1]) > 0])
    st.ordinal += int(data.sum())
    st.record += n


# --------------------------------------------------------------------------- decoding checks


class _Decoding:
    """Whether the file's bytes are valid in its encoding (auto: UTF-8, else cp1252)."""

    def __init__(self, encoding: str | None) -> None:
        self.encoding = encoding
        self.utf8_ok = True
        self.cp1252_bad = False
        self.bad = False
        name = "utf-8" if encoding is None else encoding
        self._dec: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder(name)()

    def feed(self, raw: bytes, final: bool = False) -> None:
        if self.encoding is None and not self.cp1252_bad:
            b = np.frombuffer(raw, dtype=np.uint8)
            self.cp1252_bad = bool((b >= 0x81).any() and _CP1252_UNDEFINED[b].any())
        if self._dec is None:
            return
        try:
            self._dec.decode(raw, final=final)
        except UnicodeDecodeError:
            self._dec = None
            if self.encoding is None:
                self.utf8_ok = False
            else:
                self.bad = True

    def result(self) -> tuple[str, bool]:
        """The codec to read with and whether some bytes are not valid in it."""
        if self.encoding is not None:
            return self.encoding, self.bad
        return ("utf-8-sig", False) if self.utf8_ok else ("cp1252", self.cp1252_bad)


# --------------------------------------------------------------------------- the csv module pass


def _scan_with_csv(
    path: Path, encoding: str, limit: int, out: CsvScan
) -> tuple[list[int], list[int], list[list[str]]]:
    """Row structure by Python's csv state machine (irregularly quoted files).

    Returns the ordinals and field counts of rows with extra fields, and those rows. A field above ``limit`` characters stops the read (exit 3): the csv module
    cannot skip it and go on.
    """
    ords: list[int] = []
    counts: list[int] = []
    rows: list[list[str]] = []
    header: list[str] | None = None
    ordinal = 0
    saved = csv.field_size_limit()
    csv.field_size_limit(limit)
    try:
        with open_csv_bytes(path) as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
            reader = csv.reader(text)
            record = -1
            for record, row in enumerate(reader):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if header is None:
                    header = row
                    out.header_record = record
                    continue
                if len(row) == len(header) + 1 and not row[-1]:
                    out.trailing += 1
                elif len(row) > len(header):
                    ords.append(ordinal)
                    counts.append(len(row))
                    rows.append(row)
                ordinal += 1
    except csv.Error as exc:
        if "field limit" not in str(exc):
            raise InputDataError(f"{path}: malformed CSV near row {ordinal + 1} ({exc})") from None
        raise InputDataError(
            f"{path}: row {ordinal + 1} has a field longer than max_field_bytes ({limit:,}); "
            "the file quotes irregularly, so the row cannot be skipped. Fix the row, or raise "
            "max_field_bytes in the profile"
        ) from None
    except archive_errors as exc:
        raise _archive_error(path, exc) from None
    finally:
        csv.field_size_limit(saved)
    out.header = [h.strip() for h in header or []]
    out.rows = ordinal
    return ords, counts, rows


# --------------------------------------------------------------------------- the scan


def _decode_header(path: Path, units: np.ndarray, codec: str, encoding: str) -> list[str]:
    try:
        text = units.tobytes().decode(codec)
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{path}: the header cannot be decoded as {encoding} ({exc}); "
            "set 'encoding' in the profile"
        ) from None
    return [h.strip() for h in next(csv.reader([text]), [])]


def _extra_frame(
    units: list[np.ndarray], codec: str, header: list[str], counts: np.ndarray, dtype: np.dtype
) -> pd.DataFrame:
    """The rows with extra fields, parsed in one go: header names, then ``(extra 1)``, ..."""
    width = int(counts.max()) if len(counts) else len(header)
    names = [*header, *(f"(extra {k})" for k in range(1, width - len(header) + 1))]
    blob = np.concatenate(units).astype(dtype, copy=False).tobytes().decode(codec, "replace")
    return pd.read_csv(
        io.StringIO(blob),
        header=None,
        names=_unique(names),
        dtype=str,
        keep_default_na=False,
        skip_blank_lines=False,
    )


def _unique(names: list[str]) -> list[str]:
    """Names made unique for pandas (a later duplicate gets `` (2)``, ...)."""
    seen: dict[str, int] = {}
    out = []
    for nm in names:
        k = seen.get(nm, 0)
        seen[nm] = k + 1
        out.append(nm if k == 0 else f"{nm} ({k + 1})")
    return out


def scan_csv(path: Path, encoding: str = "auto", limit: int = DEFAULT_MAX_FIELD_BYTES) -> CsvScan:
    """Scan ``path`` once (see the module doc); ``limit`` is ``max_field_bytes``.

    Raises
    ------
    InputDataError
        An empty file, a corrupt or truncated archive (naming the member), a header that
        cannot be decoded, UTF-16/32 text read with another encoding, a binary file.
    """
    try:
        with open_csv_bytes(path) as fh:
            head = fh.read(4096)
            if not head:
                raise InputDataError(f"{path}: the file is empty")
            requested = _resolve_encoding(path, encoding, head)
            dtype, bom, codec = _units(requested or "utf-8", head)
            bom0 = bom
            width = dtype.itemsize
            st = _State(dtype, max(limit // width, 1), width)
            dec = _Decoding(requested)
            irregular = False
            new, left = head, b""
            while True:
                more = fh.read(_BLOCK)
                final = not more
                dec.feed(new, final=final)
                if not irregular:
                    raw = left + new
                    cut = len(raw) // width * width
                    body = np.frombuffer(raw[:cut], dtype=dtype)
                    left = raw[cut:]
                    if bom:
                        body, bom = body[bom // width :], 0
                    try:
                        _process(st, body, final)
                    except _Irregular:
                        irregular = True
                if final:
                    break
                new = more
    except archive_errors as exc:
        raise _archive_error(path, exc) from None
    except InputDataError as exc:
        if str(path) in exc.message:
            raise
        raise InputDataError(f"{path}: {exc.message}", exc.problems) from None
    resolved, bad = dec.result()
    codec = codec if requested else ("utf-8" if resolved == "utf-8-sig" else "cp1252")
    out = CsvScan(encoding=resolved, decode_errors=bad, header=[], header_record=0, rows=0)
    out.limit = limit
    if irregular:
        ords, counts, rows = _scan_with_csv(path, resolved, limit, out)
        out.extra_ordinal = np.asarray(ords, dtype=np.int64)
        out.extra_fields = np.asarray(counts, dtype=np.int64)
        if rows:
            width_ = max(counts)
            names = [*out.header, *(f"(extra {k})" for k in range(1, width_ - len(out.header) + 1))]
            padded = [r + [""] * (width_ - len(r)) for r in rows]
            out.extra_rows = pd.DataFrame(padded, columns=_unique(names), dtype=object)
        return out
    if st.header is None:
        raise InputDataError(f"{path}: the file has no header (only blank lines)")
    out.header = _decode_header(path, st.header, codec, resolved)
    out.header_record = st.header_record
    out.rows = st.ordinal
    out.trailing = st.trailing
    if st.extra_ord:
        out.extra_ordinal = np.concatenate(st.extra_ord)
        out.extra_fields = np.concatenate(st.extra_n)
        out.extra_rows = _extra_frame(st.extra_text, codec, out.header, out.extra_fields, dtype)
    if st.big_ord:
        out.big_ordinal = np.asarray(st.big_ord, dtype=np.int64)
        out.big_column = np.asarray(st.big_col, dtype=np.int64)
        out.big_size = np.asarray(st.big_size, dtype=np.int64)
        out.big_row_size = np.asarray(st.big_row, dtype=np.int64) * st.width
        out.big_spans = np.asarray(st.big_span, dtype=np.int64).reshape(-1, 2) * st.width + bom0
    return out


def detect_encoding(path: Path) -> str:
    """``encoding = "auto"`` for one file: BOM / UTF-16-32 pattern, else UTF-8, else cp1252."""
    with open_csv_bytes(Path(path)) as fh:
        head = fh.read(4096)
        sniffed = sniff_encoding(head)
        if sniffed is not None:
            return sniffed
        dec = _Decoding(None)
        raw = head
        while raw:
            dec.feed(raw)
            raw = fh.read(_BLOCK)
        dec.feed(b"", final=True)
    return dec.result()[0]
