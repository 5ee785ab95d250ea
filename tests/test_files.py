"""vc.files: outputs are checked before the work, written atomically with the usual permissions
(0666 minus the umask, never mkstemp's private 600), and a failure names the user's path."""
import csv
import os
import re
import stat

import numpy as np
import pytest

from vc.audio import save_audio
from vc.files import OutputError, atomic_open, check_output_file, check_output_folder


@pytest.fixture
def umask():
    """Set a umask for one test, restore the old one afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _audio(path):
    save_audio(path, np.zeros(2205, np.float32), 22050)


def _checkpoint(path):
    from conftest import tiny_model
    from vc.checkpoint import save_checkpoint
    from vc.features import MelConfig
    save_checkpoint(path, tiny_model(), MelConfig())


def _batch_report(path):
    from vc.batch import write_report
    write_report(path, [])


def _tsv(path):
    from vc.vctk import write_rows
    write_rows([], path)


def _text(path):
    with atomic_open(path, "w") as f:
        f.write("hello\n")


WRITERS = {"audio.wav": _audio, "audio.flac": _audio, "model.pt": _checkpoint,
           "batch_report.tsv": _batch_report, "manifest.tsv": _tsv, "notes.txt": _text}


@pytest.mark.parametrize("name", list(WRITERS))
@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_outputs_get_the_usual_permissions(tmp_path, umask, name, mask):
    umask(mask)
    path = tmp_path / "sub" / name
    WRITERS[name](path)
    assert mode(path) == 0o666 & ~mask, oct(mode(path))
    WRITERS[name](path)                       # replacing an existing file: the same
    assert mode(path) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == [name]    # no temporary file left


def test_failed_write_names_the_users_path(tmp_path):
    (tmp_path / "taken.wav").mkdir()
    with pytest.raises(OutputError) as e:
        _audio(tmp_path / "taken.wav")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'taken.wav'}: cannot write") and ".part" not in msg, msg
    assert "\n" not in msg
    assert [p.name for p in tmp_path.iterdir()] == ["taken.wav"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file/out.wav: cannot write"):
        _audio(tmp_path / "file" / "out.wav")


def test_unsupported_extension_is_refused_by_save_audio(tmp_path):
    with pytest.raises(OutputError, match="unsupported format '.mp3'"):
        _audio(tmp_path / "out.mp3")
    assert not any(tmp_path.iterdir())


def test_checks_create_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.wav").mkdir()
    (tmp_path / "in.wav").write_bytes(b"x")
    cases = {
        tmp_path / "dir.wav": "is a folder",
        tmp_path / "out.mp3": "unsupported format '.mp3'",
        tmp_path / "out": "unsupported format '(no extension)'",
        tmp_path / "file" / "deeper" / "out.wav": "is a file, not a folder",
        tmp_path / "in.wav": "it is an input",
    }
    for path, words in cases.items():
        with pytest.raises(OutputError, match=re.escape(words)):
            check_output_file(path, {".wav", ".flac", ".ogg"}, inputs=[tmp_path / "in.wav"])
    assert check_output_file(tmp_path / "new" / "deep" / "out.WAV", {".wav"}) == tmp_path / "new" / "deep" / "out.WAV"
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "sub")
    check_output_folder(tmp_path / "new" / "deep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.wav", "file", "in.wav"]


def test_no_permission_is_refused(tmp_path, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(tmp_path) else real(p, m))
    with pytest.raises(OutputError, match="no permission to write in"):
        check_output_file(tmp_path / "a" / "out.wav", {".wav"})
    with pytest.raises(OutputError, match="no permission to write in"):
        check_output_folder(tmp_path / "out")


def test_atomic_open_writes_whole_files_only(tmp_path):
    path = tmp_path / "t.tsv"
    with atomic_open(path, "w", newline="") as f:
        csv.writer(f, delimiter="\t").writerow(["a", "b"])
    assert path.read_bytes() == b"a\tb\r\n"
    with pytest.raises(RuntimeError):
        with atomic_open(path, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"a\tb\r\n" and [p.name for p in tmp_path.iterdir()] == ["t.tsv"]
