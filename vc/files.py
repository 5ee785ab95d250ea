"""Writing output files safely: check the path before the work, write atomically, usual permissions.

    check_output_file(path, {".wav", ".flac"})   before a long computation: one-line OutputError
    check_output_folder(path)                    the same for a folder that outputs go into
    with atomic_path(path) as tmp: write(tmp)    temporary file in the same folder, renamed at the end
    with atomic_open(path, "w") as f: ...        the same, as an open file

A temporary file made with ``tempfile.mkstemp`` is private (mode 600) and keeps that mode when
renamed; the files here are created like any other (0666 minus the umask), so outputs can be
read by the people the user's umask lets read them. Every failure names the user's path, never
the temporary one.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from contextlib import contextmanager
from pathlib import Path


class OutputError(ValueError):
    """An output that cannot be written; ``str(err)`` is one line naming the user's path."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: cannot write: {problem}")


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def _first_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_can_create_in(path: Path, shown) -> None:
    """``path``'s folder exists or can be made (nothing is created): raises OutputError."""
    base = _first_existing(path.parent)
    if not base.is_dir():
        raise OutputError(shown, f"{base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(shown, f"no permission to write in {base}")
    try:
        if os.statvfs(base).f_flag & os.ST_RDONLY:
            raise OutputError(shown, f"{base} is on a read-only file system")
    except (AttributeError, OSError):     # no statvfs (Windows): the write itself will tell
        pass


def check_output_file(path, extensions=None, inputs=()) -> Path:
    """Refuse, before any work, an output file that could not be written: a folder, an extension
    not in ``extensions`` (lower case, with the dot), one of ``inputs``, a folder that cannot be
    made, no permission. Creates nothing. -> Path(path)."""
    path = Path(path)
    if extensions is not None and path.suffix.lower() not in extensions:
        raise OutputError(path, f"unsupported format '{path.suffix or '(no extension)'}' "
                                f"(use {', '.join(sorted(extensions))})")
    if path.is_dir():
        raise OutputError(path, "is a folder (give a file name)")
    for src in inputs:
        try:
            if path.exists() and Path(src).exists() and path.samefile(src):
                raise OutputError(path, "it is an input (the output would overwrite it)")
        except OSError:
            pass
    _check_can_create_in(path, path)
    return path


def check_output_folder(path) -> Path:
    """Refuse, before any work, a folder that outputs cannot go into: an existing file, a parent
    that is a file, no permission, a read-only file system. Creates nothing. -> Path(path)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "exists and is not a folder")
    if path.is_dir():
        _check_can_create_in(path / "x", path)
    else:
        _check_can_create_in(path, path)
    return path


def make_folder(path) -> Path:
    """mkdir -p, with a failure as OutputError naming ``path``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        base = _first_existing(path)
        raise OutputError(path, f"{base} is a file, not a folder" if not base.is_dir()
                          else f"cannot make the folder ({_reason(e)})") from None
    return path


def _new_temp(path: Path, suffix: str) -> Path:
    """An empty new file next to ``path``, created with mode 0666 minus the umask."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


@contextmanager
def atomic_path(path, suffix: str = ".part"):
    """Yield a temporary path next to ``path`` (an empty file, usual permissions); when the block
    ends without error it is renamed onto ``path``, else deleted. A reader never sees half a file.
    An OSError (disk full, no permission, ``path`` is a folder) becomes an OutputError naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        base = _first_existing(path.parent)
        raise OutputError(path, f"{base} is a file, not a folder" if not base.is_dir()
                          else f"cannot make the folder {path.parent} ({_reason(e)})") from None
    try:
        tmp = _new_temp(path, suffix)
    except OSError as e:
        raise OutputError(path, _reason(e)) from None
    try:
        yield tmp
        if path.is_dir():
            raise OutputError(path, "is a folder (give a file name)")
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(path, _reason(e)) from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_open(path, mode: str = "w", suffix: str = ".part", **kwargs):
    """``open()`` for writing through :func:`atomic_path` (``kwargs``: encoding, newline ...)."""
    with atomic_path(path, suffix) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def file_sha1(path) -> str:
    """The SHA-1 of a file's bytes (a model's identity in reports and calibration files)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
