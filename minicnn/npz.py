"""Reading a NumPy .npz archive that may come from anywhere, trusting nothing in it.

An .npz is a zip of .npy members; each .npy is a short text header, then the raw bytes:

    \\x93NUMPY <major> <minor> <header length: 2 bytes (v1) or 4 (v2, v3)>
    {'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 3, 8), }     (padded with spaces, \\n)
    <prod(shape) * itemsize bytes>

np.load trusts that header: it hands it to Python's tokenizer and literal_eval (a garbled one raises
tokenize's TokenError), and it reads whatever the shape claims. Here every member is checked before
a byte of its data is read: a plain array member (.npy), stored or deflated, not encrypted, at most
MAX_EXPANSION times larger than its compressed bytes (a zip bomb is refused by its declared size);
its header matches the exact form NumPy writes, with a dtype from ALLOWED_DTYPES (numbers and bools;
never an object array, which would be a pickle); and prod(shape) * itemsize is exactly the member's
size less its header. So nothing is allocated beyond what the file holds, no code runs, and every
failure is a ValueError naming the file and the member (an OSError when the file cannot be read).
"""
import math
import os
import re
import stat
import struct
import zipfile
import zlib

import numpy as np

MAX_EXPANSION = 100            # a deflated member may declare at most 100x its compressed size
MAX_HEADER = 4096              # NumPy writes ~120 bytes; it accepts up to 10000
ALLOWED_DTYPES = {"|b1", "|i1", "|u1"} | {order + kind + size for order in "<>" for kind in "fiu" for size in "248"}
# NumPy's own header text, and nothing else: descr, fortran_order, shape (ints of at most 18 digits)
HEADER = re.compile(r"\{'descr': '([^']{1,16})', 'fortran_order': (True|False), "
                    r"'shape': \(((?:\d{1,18}, )*(?:\d{1,18},?)?)\), \} *\n")
# what zipfile and zlib raise on a damaged archive (a bad offset or size, a bad CRC, a cut stream,
# a version number or feature zipfile does not support)
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
              struct.error, OverflowError, NotImplementedError)


class Refused(ValueError):
    """One thing wrong in an archive, said in words (read_npz adds the file's name)."""


def read_npz(path, what="NumPy .npz archive"):
    """{name: array} of every member of the .npz at `path` (names without '.npy'), each checked
    as the module docstring says before it is read. `what` names the expected kind of file in
    error messages: "<path> is not a readable <what>: <reason>"."""
    path = os.fspath(path)
    with open(path, "rb") as f:                                 # missing, unreadable: OSError as it is
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path} is not a readable {what}: not a regular file")
        try:
            with zipfile.ZipFile(f) as archive:
                return {info.filename[:-4]: _read_member(archive, info) for info in _members(archive)}
        except Refused as e:
            raise ValueError(f"{path} is not a readable {what}: {e}") from None
        except ZIP_ERRORS as e:
            raise ValueError(f"{path} is not a readable {what} (truncated, corrupted, or another format): "
                             f"{type(e).__name__}: {e}") from None


def _members(archive):
    """The archive's members, each a plain .npy array whose declared size the file can back."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    for info in infos:
        name = info.filename
        if names.count(name) > 1:
            raise Refused(f"member {name!r} appears {names.count(name)} times")
        if not name.endswith(".npy"):
            raise Refused(f"member {name!r} is not a .npy array")
        check_member(info)
    return infos


def check_member(info):
    """Refuse a zip member that is encrypted, compressed other than stored or deflated, or that
    declares more bytes than its compressed ones can give (more than MAX_EXPANSION times them)."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise Refused(f"member {name!r} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise Refused(f"member {name!r} uses compression method {info.compress_type}; expected "
                      f"{zipfile.ZIP_STORED} (stored) or {zipfile.ZIP_DEFLATED} (deflated)")
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else MAX_EXPANSION * info.compress_size
    if info.file_size > limit:
        raise Refused(f"member {name!r} declares {info.file_size} bytes from {info.compress_size} "
                      f"compressed (more than {limit}: a zip bomb, or a damaged size)")


def _read_member(archive, info):
    """One member's array: the header checked against the member's size, then exactly its bytes."""
    name = info.filename
    with archive.open(info) as f:
        header_size, dtype, shape, fortran = _read_header(f, name)
        nbytes = math.prod(shape) * dtype.itemsize
        if header_size + nbytes != info.file_size:
            raise Refused(f"member {name!r}: its header says {dtype.str} {shape} ({nbytes} bytes of data), "
                          f"but the member holds {info.file_size - header_size} bytes after the header")
        data = _exactly(f, nbytes, name, "data")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_header(f, name):
    """(header size in bytes, dtype, shape, fortran_order) from the start of a .npy member."""
    magic = _exactly(f, 8, name, "magic string")
    if magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise Refused(f"member {name!r} is not a .npy array (it starts {magic!r}, expected \\x93NUMPY "
                      "and version 1, 2 or 3)")
    size_format = "<H" if magic[6] == 1 else "<I"
    length = struct.unpack(size_format, _exactly(f, struct.calcsize(size_format), name, "header length"))[0]
    if length > MAX_HEADER:
        raise Refused(f"member {name!r}: a .npy header of {length} bytes (at most {MAX_HEADER} expected)")
    text = _exactly(f, length, name, "header").decode("utf-8" if magic[6] == 3 else "latin-1", errors="replace")
    match = HEADER.fullmatch(text)
    if match is None:
        raise Refused(f"member {name!r}: unreadable .npy header {text.rstrip()[:120]!r} (expected NumPy's "
                      "\"{'descr': ..., 'fortran_order': ..., 'shape': (...), }\")")
    descr, fortran, dims = match.groups()
    if descr not in ALLOWED_DTYPES:
        raise Refused(f"member {name!r}: dtype {descr!r} is not one minicnn reads (numbers and bools: "
                      f"{', '.join(sorted(ALLOWED_DTYPES))})")
    shape = tuple(int(d) for d in dims.replace(",", " ").split())
    return 8 + struct.calcsize(size_format) + length, np.dtype(descr), shape, fortran == "True"


def _exactly(f, n, name, part):
    """n bytes from f, or a Refused naming the member and the part that was cut short."""
    data = f.read(n)
    if len(data) != n:
        raise Refused(f"member {name!r} is cut short in its {part} ({len(data)} of {n} bytes)")
    return data
