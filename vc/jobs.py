"""The rows of a batch: read a table or walk a folder, name the outputs, keep them inside
OUT_DIR, take one shard's share, and tell which outputs are already done.

Nothing here touches the model. Planning is cheap and deterministic: every shard of a cluster
run computes the same plan of the whole batch (names, duplicates, refusals) and then keeps its
own rows of it, so shards need no coordination and never write the same file.

A row (``Job``) names one source, the clips of one target voice (their speaker vectors are
averaged) and one output path inside OUT_DIR; rows refused while planning carry their reason.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .audio import SUPPORTED, AudioError

WRITABLE = (".wav", ".flac", ".ogg")       # what vc.audio.save_audio writes
COLUMNS = ("source", "target", "output")
# vc.audio.save_audio writes ``.<name>.<8 random chars>.part`` next to ``<name>``, then renames it.
TEMP_FILE = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.part$")


class PlanError(ValueError):
    """The command itself is wrong (no table, bad header, nothing to convert): exit status 2."""


@dataclass
class Job:
    row: int                      # 1-based: n-th data row of the table, or n-th file of the folder
    source: Path | None           # absolute
    targets: tuple[Path, ...]     # absolute clips of one voice
    output: Path | None           # absolute, inside OUT_DIR (None when refused)
    source_text: str = ""         # as written in the table (for the report)
    target_text: str = ""
    output_text: str = ""
    status: str = "todo"          # todo | done | skipped | failed
    reason: str = ""
    seconds: float = 0.0          # wall time of the conversion

    def fail(self, reason: str) -> "Job":
        self.status, self.reason = "failed", reason
        return self


# -- inputs ------------------------------------------------------------------------------------

def absolute(path: str | Path, base: Path) -> Path:
    """``path`` resolved against ``base`` when relative; '..' collapsed, symlinks kept."""
    return Path(os.path.normpath(base / Path(path).expanduser()))


def audio_files(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted, hidden files and ``exclude`` skipped)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not (exclude and Path(root, d).resolve() == exclude))
        found += [Path(root, f) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in SUPPORTED]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def voice_clips(text: str, base: Path) -> tuple[tuple[Path, ...], str]:
    """A target cell -> (clips, problem): a file, a folder of clips, or files joined by ';'."""
    clips = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        path = absolute(part, base)
        if path.is_dir():
            inside = audio_files(path)
            if not inside:
                return (), f"{path}: no audio files in this folder"
            clips += inside
        elif not path.is_file():
            return (), str(AudioError(path, "file not found"))
        else:
            clips.append(path)
    return (tuple(clips), "") if clips else ((), "empty target")


def voice_name(text: str) -> str:
    """Short name of a target cell for default output names: 'b', 'speaker7', 'b+2'."""
    parts = [Path(p.strip()) for p in text.split(";") if p.strip()]
    first = parts[0].stem if parts[0].suffix.lower() in SUPPORTED else parts[0].name
    return first + (f"+{len(parts) - 1}" if len(parts) > 1 else "")


# -- outputs -----------------------------------------------------------------------------------

def place(out_root: Path, rel: str, fmt: str) -> Path:
    """``rel`` inside ``out_root`` (which is resolved), or ValueError with the reason."""
    if not rel.strip():
        raise ValueError("empty output")
    path = Path(rel)
    if path.is_absolute() or path.drive or rel.startswith("~"):
        raise ValueError(f"output '{rel}' refused: absolute paths are not allowed (outputs stay inside OUT_DIR)")
    if not path.suffix:
        path = path.with_name(path.name + "." + fmt)
    if path.suffix.lower() not in WRITABLE:
        raise ValueError(f"output '{rel}' refused: cannot write '{path.suffix}' (use {', '.join(WRITABLE)})")
    full = (out_root / path).resolve()
    if full == out_root or not full.is_relative_to(out_root):
        raise ValueError(f"output '{rel}' refused: it would be written outside OUT_DIR")
    return full


def default_names(jobs: list[Job], base: Path, fmt: str) -> dict[int, str]:
    """``<source stem>__in_voice_of__<voice>.<fmt>`` for every job; where two different
    conversions would get the same name (same stems in different folders), each of them gets
    ``__<8 hex>`` of its input paths (relative to the table folder: stable when the tree moves)."""
    names, inputs = {}, {}
    for job in jobs:
        names[job.row] = f"{job.source.stem}__in_voice_of__{voice_name(job.target_text)}"
        inputs[job.row] = "|".join(os.path.relpath(p, base) for p in (job.source, *job.targets))
    groups: dict[str, set[str]] = {}
    for row, name in names.items():
        groups.setdefault(name.lower(), set()).add(inputs[row])    # case-insensitive file systems
    for row, name in names.items():
        if len(groups[name.lower()]) > 1:
            names[row] = f"{name}__{hashlib.sha1(inputs[row].encode()).hexdigest()[:8]}"
    return {row: f"{name}.{fmt}" for row, name in names.items()}


def check_outputs(jobs: list[Job]):
    """Refuse an output that would overwrite an input or that an earlier row already writes
    (the same conversion twice is skipped instead)."""
    first: dict[Path, Job] = {}
    for job in jobs:
        if job.status != "todo":
            continue
        if job.output in {p.resolve() for p in (job.source, *job.targets)}:
            job.fail(f"output {job.output} would overwrite an input")
        elif job.output in first:
            other = first[job.output]
            if (other.source, other.targets) == (job.source, job.targets):
                job.status, job.reason = "skipped", f"same conversion as row {other.row}"
            else:
                job.fail(f"output {job.output} is also the output of row {other.row}")
        else:
            first[job.output] = job


# -- the two ways to describe a batch ------------------------------------------------------------

def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV or TSV table: tab-separated when the header holds a tab."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table not found")
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise PlanError(f"{path}: not a text table (expected UTF-8 CSV or TSV)") from None
    if not lines:
        raise PlanError(f"{path}: empty table (expected the header 'source,target[,output]')")
    delimiter = "\t" if "\t" in lines[0] else ","
    header, *rows = csv.reader(lines, delimiter=delimiter)
    header = [h.strip().lower() for h in header]
    if {"source", "target"} - set(header) or set(header) - set(COLUMNS) or len(set(header)) < len(header):
        raise PlanError(f"{path}: bad header '{delimiter.join(header)}': expected the columns "
                        "source, target and optionally output (comma- or tab-separated)")
    return header, rows


def plan_table(table, out_dir, fmt: str = "wav") -> list[Job]:
    """Every row of ``table``; relative input paths resolve against the table's folder,
    relative outputs against ``out_dir``."""
    table = Path(table).absolute()
    base, out_root = table.parent, Path(out_dir).resolve()
    header, rows = read_table(table)
    jobs, clips = [], {}
    for i, cells in enumerate(rows, 1):
        cell = dict(zip(header, (c.strip() for c in cells)))
        job = Job(i, None, (), None, cell.get("source", ""), cell.get("target", ""), cell.get("output", ""))
        jobs.append(job)
        if len(cells) != len(header):
            job.fail(f"row has {len(cells)} cells, the header has {len(header)}")
            continue
        if not job.source_text or not job.target_text:
            job.fail("empty source" if not job.source_text else "empty target")
            continue
        job.source = absolute(job.source_text, base)
        if job.target_text not in clips:      # a voice used by many rows is looked up once
            clips[job.target_text] = voice_clips(job.target_text, base)
        job.targets, problem = clips[job.target_text]
        if problem:
            job.fail(f"target {problem}")
        elif not job.source.is_file():
            job.fail(str(AudioError(job.source, "file not found")))
    named = [j for j in jobs if j.status == "todo" and not j.output_text]
    names = default_names(named, base, fmt)
    for job in jobs:
        if job.status == "todo":
            try:
                job.output = place(out_root, job.output_text or names[job.row], fmt)
            except ValueError as e:
                job.fail(str(e))
    check_outputs(jobs)
    return jobs


def plan_folder(sources, targets: list[str], out_dir, fmt: str = "wav") -> list[Job]:
    """Every audio file under ``sources`` in one voice; OUT_DIR mirrors the tree of ``sources``."""
    sources, out_root = Path(sources).absolute(), Path(out_dir).resolve()
    if not sources.is_dir():
        raise FileNotFoundError(f"{sources}: folder not found")
    if sources.resolve() == out_root:
        raise PlanError("the output folder must differ from the --sources folder")
    voice: list[Path] = []
    for text in targets:
        clips, problem = voice_clips(text, Path.cwd())
        if problem:
            raise PlanError(f"--target {problem}")
        voice += clips
    files = audio_files(sources, exclude=out_root)     # never take our own outputs for inputs
    if not files:
        raise PlanError(f"{sources}: no audio files ({', '.join(SUPPORTED)}) in this folder")
    jobs = []
    for i, src in enumerate(files, 1):
        rel = src.relative_to(sources).with_suffix("." + fmt)
        jobs.append(Job(i, src, tuple(voice), place(out_root, rel.as_posix(), fmt), str(src),
                        ";".join(map(str, voice)), rel.as_posix()))
    check_outputs(jobs)        # a.wav and a.flac side by side would both become a.<fmt>
    return jobs


# -- shards, resuming --------------------------------------------------------------------------

def parse_shard(text: str | None) -> tuple[int, int]:
    """'I/N' (1-based) -> (I, N); None -> (1, 1)."""
    if text is None:
        return 1, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise PlanError(f"--shard '{text}': expected I/N with 1 <= I <= N (e.g. 2/8)")
    return int(m[1]), int(m[2])


def shard(jobs: list[Job], index: int, count: int) -> list[Job]:
    """Rows index, index + count, index + 2 count, ... (1-based): the same for every shard's plan,
    and long and short rows spread evenly when the table is sorted by anything."""
    return [job for k, job in enumerate(jobs) if k % count == index - 1]


def is_complete(path: Path) -> bool:
    """An output counts as done when it exists and its header reads with at least one frame
    (save_audio renames a file into place only once it is whole)."""
    import soundfile as sf
    try:
        return path.is_file() and sf.info(str(path)).frames > 0
    except Exception:       # unreadable: redo it
        return False


def remove_temp_files(jobs: list[Job]) -> int:
    """Delete the temporary files that a killed run left for these jobs' outputs. Only this
    shard's own outputs are concerned, so a shard never removes the file another is writing."""
    wanted: dict[Path, set[str]] = {}
    for job in jobs:
        if job.output is not None:
            wanted.setdefault(job.output.parent, set()).add(job.output.name)
    removed = 0
    for folder, names in wanted.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            m = TEMP_FILE.match(entry.name)
            if m and m["name"] in names and entry.is_file():
                try:
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed
