"""The jobs' files: uploads, and the output and error files of batches. Their bytes live on
disk under the data folder, copied a piece at a time (an upload or an output never has to fit
in memory); the database holds their metadata. Mixed into `JobStore`, which owns the engine."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from ..files import atomic_open
from .tables import files

COPY_BYTES = 1 << 20  # how much of a file is held in memory at once while it is stored


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


class FileStore:
    engine: Engine
    data_dir: Path

    def file_path(self, file_id: str) -> Path:
        return self.data_dir / "files" / file_id

    def derived_path(self, batch_id: str, name: str) -> Path:
        """Where something made once from an ended batch is kept (its summary, its report)."""
        folder = self.data_dir / "derived"
        folder.mkdir(exist_ok=True)
        return folder / f"{batch_id}.{name}"

    def add_file(self, owner: str, filename: str, purpose: str, content: bytes | BinaryIO | Iterable[bytes],
                 file_id: str | None = None) -> dict:
        """Store a file from bytes, a readable file or pieces, copied to disk a piece at a time
        (an upload or an output never has to fit in memory)."""
        file_id = file_id or new_id("file-")
        path = self.file_path(file_id)
        pieces: Iterable[bytes]
        if isinstance(content, bytes):
            pieces = (content,)
        elif hasattr(content, "read"):
            pieces = iter(lambda: content.read(COPY_BYTES), b"")
        else:
            pieces = content
        with atomic_open(path, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
        row = {"id": file_id, "owner": owner, "filename": filename, "purpose": purpose, "bytes": path.stat().st_size,
               "created_at": int(time.time())}  # fmt: skip
        with self.engine.begin() as db:
            db.execute(insert(files).values(**row))
        return file_object(row)

    def get_file(self, owner: str, file_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(files).where(files.c.id == file_id, files.c.owner == owner)).mappings().first()
        return file_object(row) if row else None

    def list_files(self, owner: str) -> list[dict]:
        with self.engine.connect() as db:
            rows = db.execute(select(files).where(files.c.owner == owner).order_by(files.c.created_at)).mappings()
            return [file_object(row) for row in rows]

    def delete_file(self, owner: str, file_id: str) -> bool:
        with self.engine.begin() as db:
            gone = db.execute(files.delete().where(files.c.id == file_id, files.c.owner == owner)).rowcount
        if gone:
            self.file_path(file_id).unlink(missing_ok=True)
        return bool(gone)


def file_object(row: Any) -> dict[str, Any]:
    """OpenAI's file object."""
    return {"id": row["id"], "object": "file", "bytes": row["bytes"], "created_at": row["created_at"],
            "filename": row["filename"], "purpose": row["purpose"], "status": "processed"}  # fmt: skip
