"""A content-addressed document store on the local file system.

A document is kept at `<root>/<sha256[:2]>/<sha256>.<ext>` (two-character
fan-out so no directory grows past a few thousand entries). Its location, the
part after the root, is what `InvoiceRendered` records, so the store can move
with BILLRUN_HOME. Writes go to a temporary file in the same directory, are
fsynced and then renamed into place: a reader never sees a partial file, and a
crash leaves at most a stray temporary file, never a wrong document under a
hash. Putting the same content twice finds it there and writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infrastructure.settings import Settings

_LOCATION = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}\.[a-z0-9]{1,8}$")
_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")


def documents_root(settings: Settings) -> Path:
    return settings.home / "documents"


class DocumentMissing(FileNotFoundError):
    """A recorded location holds no document (the store was moved or pruned)."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    location: str
    """`<sha256[:2]>/<sha256>.<ext>`, relative to the store's root."""
    size: int


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, content: bytes, extension: str) -> StoredFile:
        if not _EXTENSION.match(extension):
            raise ValueError(f"not a file extension: {extension!r}")
        digest = hashlib.sha256(content).hexdigest()
        location = f"{digest[:2]}/{digest}.{extension}"
        path = self.root / location
        # Same name means same bytes (SHA-256), so an existing file of the right
        # size is this content: nothing to write.
        if not (path.exists() and path.stat().st_size == len(content)):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, content)
        return StoredFile(sha256=digest, location=location, size=len(content))

    def get(self, location: str) -> bytes:
        try:
            return self.path(location).read_bytes()
        except FileNotFoundError:
            raise DocumentMissing(f"no document at {location!r} under {self.root}") from None

    def path(self, location: str) -> Path:
        """The file of a location; refuses anything that is not one of ours (no `..`)."""
        if not _LOCATION.match(location):
            raise ValueError(f"not a document location: {location!r}")
        return self.root / location


def write_atomically(path: Path, content: bytes) -> None:
    """Write `content` to `path` so that `path` is either absent or complete.

    The data and then the directory entry are fsynced: the event recorded after
    this returns must never point at a file a power cut could leave empty.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
