"""Files submitted with a step: checked by name, declared type and content, kept in
their own table (out of the request rows)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from approvals.errors import InvalidInput
from approvals.models import SubmissionFile

MAX_FILES = 5
ZIP = b"PK\x03\x04"
# extension -> (content type, how the file must begin)
ALLOWED = {
    ".pdf": ("application/pdf", (b"%PDF-",)),
    ".docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", (ZIP,)),
    ".xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (ZIP,)),
    ".pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation", (ZIP,)),
    ".odt": ("application/vnd.oasis.opendocument.text", (ZIP,)),
    ".ods": ("application/vnd.oasis.opendocument.spreadsheet", (ZIP,)),
    ".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)),
    ".txt": ("text/plain; charset=utf-8", ()),
}
_SAFE_NAME = re.compile(r"[^\w.\- ()]+", re.UNICODE)


class FileRefused(InvalidInput):
    """A file of a type we do not take, too large, or not what its name says."""


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    data: bytes


def clean_filename(name: str) -> str:
    """NFC, no folders, no control or shell characters, at most 120 characters."""
    name = unicodedata.normalize("NFC", PurePosixPath(name.replace("\\", "/")).name).strip()
    name = _SAFE_NAME.sub("_", name).strip(". ")
    stem, dot, ext = name.rpartition(".")
    return (stem[:100] + dot + ext[:10]) if dot else name[:120]


def check_file(upload: UploadedFile, *, max_bytes: int) -> tuple[str, str]:
    """Return (safe filename, content type) or raise FileRefused."""
    name = clean_filename(upload.filename)
    extension = PurePosixPath(name).suffix.lower()
    if not name or extension not in ALLOWED:
        raise FileRefused(f"'{upload.filename}': only {', '.join(sorted(ALLOWED))} files are accepted")
    if not upload.data:
        raise FileRefused(f"'{name}' is empty")
    if len(upload.data) > max_bytes:
        raise FileRefused(f"'{name}' is larger than {max_bytes // 1024} KB")
    content_type, signatures = ALLOWED[extension]
    if signatures and not any(upload.data.startswith(sig) for sig in signatures):
        raise FileRefused(f"'{name}' is not a real {extension} file")
    if extension == ".txt":
        try:
            upload.data.decode("utf-8")
        except UnicodeDecodeError:
            raise FileRefused(f"'{name}' is not UTF-8 text") from None
    return name, content_type


def check_files(uploads: list[UploadedFile], *, max_bytes: int) -> list[tuple[str, str, bytes]]:
    if len(uploads) > MAX_FILES:
        raise FileRefused(f"at most {MAX_FILES} files")
    return [(*check_file(u, max_bytes=max_bytes), u.data) for u in uploads]


async def store_files(
    session: AsyncSession, *, request_id: uuid.UUID, files: list[tuple[str, str, bytes]], now: dt.datetime
) -> list[SubmissionFile]:
    rows = [
        SubmissionFile(
            request_id=request_id,
            filename=name,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            data=data,
            created_at=now,
        )
        for name, content_type, data in files
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def files_of(session: AsyncSession, request_id: uuid.UUID) -> list[SubmissionFile]:
    """The files of a request, without loading their contents."""
    return list((await session.execute(_FILES_OF, {"request_id": request_id})).scalars())


# Built once: every approval page lists its files.
_FILES_OF = (
    select(SubmissionFile)
    .where(SubmissionFile.request_id == bindparam("request_id"))
    .options(defer(SubmissionFile.data, raiseload=True))
    .order_by(SubmissionFile.created_at)
)
