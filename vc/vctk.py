"""VCTK: read the corpus in either published layout, split it for unseen-speaker testing, and pair
its parallel sentences for evaluation. ``recipes/vctk/run.sh`` runs these steps as
``vc vctk prepare|split|features|pairs`` (vc.vctk_cli, which the ``vc`` command registers;
this module knows nothing of its command line).

Layouts (``ROOT`` is the folder holding ``speaker-info.txt``):
  0.80  ROOT/wav48/p225/p225_001.wav                   48 kHz wav, one microphone
  0.92  ROOT/wav48_silence_trimmed/p225/p225_001_mic1.flac and ..._mic2.flac
  both  ROOT/txt/p225/p225_001.txt (one sentence), ROOT/speaker-info.txt
speaker-info.txt: 0.80 "ID  AGE  GENDER  ACCENTS  REGION" with IDs without the "p" ("225  23  F
English  Southern  England"); 0.92 adds "COMMENTS" and writes "p225", "s5", with remarks such as
"(mic2 files unavailable)" for p280. Known gaps, all handled without stopping: p315 has no
transcripts (kept for training, with empty text), p280 has no mic2 audio, some transcripts have
no audio (p362) and some audio has no transcript.

Splits (the unseen-speaker protocol of AdaIN-VC, Chou et al. 2019, which held out 20 VCTK speakers
and 10 % of the utterances of the others): ``dev`` = every utterance of 20 held-out speakers
(10 F, 10 M; :func:`default_heldout`, committed as recipes/vctk/heldout_speakers.txt); ``val`` =
10 % of the utterances of every training speaker; ``train`` = the rest.

Utterance numbers 001-024 are the same sentences for every speaker (elicitation paragraph and
rainbow passage): :func:`parallel_pairs` matches them by their normalised transcript, so that the
reference of a conversion is the target speaker reading the source's sentence (for MCD).
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import soundfile as sf

from .files import atomic_open

CORPUS = "vctk"
AUDIO_DIRS = {"0.92": "wav48_silence_trimmed", "0.80": "wav48"}
MICS = ("mic1", "mic2")
UNASSIGNED = "unassigned"          # the split of a prepared, not yet split, manifest
PARALLEL = range(1, 25)            # utterance numbers read by every speaker
N_HELDOUT, HELDOUT_SEED, VAL_FRACTION = 20, 0, 0.1
AUDIO_NAME = re.compile(r"^(?P<spk>[a-z]+\d+)_(?P<num>\d{3})(?:_(?P<mic>mic\d))?\.(?:wav|flac)$", re.I)

# Every speaker of VCTK 0.80 with the gender of its speaker-info.txt (0.92 has these and s5).
SPEAKERS_080 = """
225F 226M 227M 228F 229F 230F 231F 232M 233F 234F 236F 237M 238F 239F 240F 241M 243M 244F 245M
246M 247M 248F 249F 250F 251M 252M 253F 254M 255M 256M 257F 258M 259M 260M 261F 262F 263M 264F
265F 266F 267F 268F 269F 270M 271M 272M 273M 274M 275M 276F 277F 278M 279M 280F 281M 282F 283F
284M 285M 286M 287M 288F 292M 293F 294F 295F 297F 298M 299F 300F 301F 302M 303F 304M 305F 306F
307F 308F 310F 311M 312F 313F 314F 315M 316M 317F 318F 323F 326M 329F 330F 333F 334M 335F 336F
339F 340F 341F 343F 345M 347M 351F 360M 361F 362F 363M 364M 374M 376M
"""
NOT_HELD_OUT = {"p280": "no mic2 audio in 0.92", "p315": "no transcripts", "s5": "not in 0.80"}


def log(msg: str):
    print(f"vctk: {msg}", flush=True)


@dataclass
class Row:
    """One manifest row, in the columns of shared/data/manifest.tsv."""
    path: str
    speaker: str                   # "vctk-p225"
    corpus: str = CORPUS
    split: str = UNASSIGNED
    gender: str = ""               # "f", "m" or "" (unknown)
    age: str = ""
    seconds: str = ""
    sample_rate: str = ""
    text: str = ""

    @property
    def utt_id(self) -> str:       # "p225_001", the same for both microphones
        m = AUDIO_NAME.match(os.path.basename(self.path))
        return f"{m['spk'].lower()}_{m['num']}" if m else Path(self.path).stem

    @property
    def number(self) -> int:
        m = AUDIO_NAME.match(os.path.basename(self.path))
        return int(m["num"]) if m else -1


COLUMNS = tuple(f.name for f in fields(Row))


def _write_tsv(dicts, columns, path) -> Path:
    """Write a TSV atomically (temporary name, then rename): a kill never leaves half a file."""
    path = Path(path)
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns, delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(dicts)
    return path


def write_rows(rows, path) -> Path:
    """Write a manifest (absolute audio paths)."""
    return _write_tsv((vars(r) for r in rows), COLUMNS, path)


def read_rows(path) -> list[Row]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest (run the prepare stage first)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if rows and not {"path", "speaker"} <= set(rows[0]):
        raise ValueError(f"{path}: not a manifest (needs the columns 'path' and 'speaker')")
    root = path.parent
    return [Row(**{**{k: r.get(k) or "" for k in COLUMNS}, "path": _absolute(root, r["path"])}) for r in rows]


def _absolute(root: Path, p: str) -> str:
    return p if os.path.isabs(p) else str((root / p).resolve())


# -- the corpus ---------------------------------------------------------------------------------

def _layout(p: Path) -> str | None:
    for version, audio in AUDIO_DIRS.items():   # 0.92 first: it wins if both were unpacked here
        if (p / audio).is_dir() and ((p / "txt").is_dir() or (p / "speaker-info.txt").is_file()):
            return version
    return None


def find_root(root) -> Path | None:
    """The corpus root: ``root`` itself, or its only sub-folder that is one (the unpacked archive)."""
    root = Path(root)
    if not root.is_dir():
        return None
    if _layout(root):
        return root
    inner = [p for p in sorted(root.iterdir()) if p.is_dir() and _layout(p)]
    return inner[0] if len(inner) == 1 else None


def is_vctk(root) -> bool:
    return find_root(root) is not None


def speaker_id(token: str) -> str:
    """'225' (0.80) and 'p225' (0.92) -> 'p225'; 's5' -> 's5'."""
    token = token.strip().lower()
    return f"p{token}" if token.isdigit() else token


def read_speaker_info(path) -> dict[str, dict]:
    """speaker-info.txt of either release -> {"p225": {gender, age, accent, region}}."""
    out = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        parts = re.sub(r"\(.*?\)", " ", line).split()   # drop "(mic2 files unavailable)" remarks
        if len(parts) < 3 or parts[0].upper() == "ID" or line.lstrip().startswith((";", "#")):
            continue
        g = parts[2][:1].lower()
        out[speaker_id(parts[0])] = {"gender": g if g in ("f", "m") else "",
                                     "age": parts[1] if parts[1].isdigit() else "",
                                     "accent": parts[3] if len(parts) > 3 else "",
                                     "region": " ".join(parts[4:])}
    return out


def _read_texts(txt_dir: Path) -> dict[str, str]:
    texts = {}
    if txt_dir.is_dir():
        for f in txt_dir.glob("*/*.txt"):
            texts[f.stem.lower()] = " ".join(f.read_text(encoding="utf-8", errors="replace").split())
    return texts


def _header(path: str):
    """-> (seconds, sample_rate, None) or (None, None, problem); reads the header only."""
    try:
        info = sf.info(path)
    except Exception as e:  # libsndfile's "Format not recognised", truncated files, ...
        return None, None, f"unreadable or corrupt audio ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, None, "empty audio (no samples)"
    return info.frames / info.samplerate, info.samplerate, None


def scan(root, mic: str = "mic1", workers: int = 16) -> list[Row]:
    """Every readable recording of the corpus (one microphone for 0.92), with its transcript,
    speaker, gender, age, length. Gaps are logged, never fatal. Split: ``unassigned``."""
    found = find_root(root)
    if found is None:
        raise ValueError(f"{root}: not a VCTK corpus (expected speaker-info.txt, txt/ and "
                         f"wav48_silence_trimmed/ (0.92) or wav48/ (0.80))")
    if mic not in MICS:
        raise ValueError(f"unknown microphone '{mic}' (use {' or '.join(MICS)})")
    root, version = found, _layout(found)
    log(f"{root}: VCTK {version} layout" + (f", {mic}" if version == "0.92" else
                                             " (one microphone: --mic does not apply)"))
    info_path = root / "speaker-info.txt"
    info = read_speaker_info(info_path) if info_path.is_file() else {}
    if not info:
        log(f"{info_path}: missing or empty: genders and ages unknown")
    texts = _read_texts(root / "txt")

    files = []
    for spk_dir in sorted(p for p in (root / AUDIO_DIRS[version]).iterdir() if p.is_dir()):
        for f in sorted(spk_dir.iterdir()):
            m = AUDIO_NAME.match(f.name)
            if m and f.is_file() and (version == "0.80" or (m["mic"] or "").lower() == mic):
                files.append(f)
    with ThreadPoolExecutor(workers) as pool:
        headers = list(pool.map(_header, [str(f.resolve()) for f in files]))

    rows, skipped = [], []
    for f, (seconds, rate, problem) in zip(files, headers):
        if problem:
            log(f"skipped {f}: {problem}")
            skipped.append(f)
            continue
        m = AUDIO_NAME.match(f.name)
        spk = speaker_id(m["spk"])
        meta = info.get(spk, {})
        rows.append(Row(path=str(f.resolve()), speaker=f"{CORPUS}-{spk}", gender=meta.get("gender", ""),
                        age=meta.get("age", ""), seconds=f"{seconds:.2f}", sample_rate=str(rate),
                        text=texts.get(f"{spk}_{m['num']}", "")))
    _report(rows, info, texts, mic if version == "0.92" else "", skipped)
    return rows


def _report(rows: list[Row], info: dict, texts: dict, mic: str, skipped: list[Path]):
    with_audio = {r.speaker.split("-", 1)[1] for r in rows}
    for spk in sorted(set(info) - with_audio):
        log(f"{spk}: in speaker-info.txt but no {mic + ' ' if mic else ''}audio: skipped")
    for spk in sorted(with_audio - set(info)):
        log(f"{spk}: not in speaker-info.txt: gender and age unknown")
    no_text: dict[str, int] = {}
    for r in rows:
        if not r.text:
            no_text[r.speaker] = no_text.get(r.speaker, 0) + 1
    for spk, n in sorted(no_text.items()):
        log(f"{spk}: {n} recording(s) without a transcript (kept, with empty text)")
    ids = {r.utt_id for r in rows} | {Row(str(f), "").utt_id for f in skipped}
    orphans = sorted(t for t in texts if t not in ids)
    if orphans:
        log(f"{len(orphans)} transcript(s) without {mic + ' ' if mic else ''}audio, e.g. {', '.join(orphans[:3])}")
    hours = sum(float(r.seconds) for r in rows) / 3600
    log(f"{len(rows)} recordings of {len(with_audio)} speakers, {hours:.2f} h"
        + (f"; {len(skipped)} unreadable file(s) skipped" if skipped else ""))


# -- the split ----------------------------------------------------------------------------------

def _rank(*parts) -> str:
    """A fixed pseudo-random order that any tool can reproduce: sha256 of 'vctk:<parts>'."""
    return hashlib.sha256(":".join(["vctk", *map(str, parts)]).encode()).hexdigest()


def choose_heldout(genders: dict[str, str], n: int = N_HELDOUT, seed: int = HELDOUT_SEED) -> list[str]:
    """``n`` speakers, half female and half male (the other gender fills in if one runs short):
    of each gender those with the smallest sha256('vctk:heldout:<seed>:<speaker id>')."""
    pools = {g: sorted((s for s, x in genders.items() if x == g), key=lambda s: _rank("heldout", seed, s))
             for g in ("f", "m")}
    n_f = min(n - n // 2, len(pools["f"]))
    n_m = min(n - n_f, len(pools["m"]))
    n_f = min(n - n_m, len(pools["f"]))
    return sorted(pools["f"][:n_f] + pools["m"][:n_m])


def default_heldout(seed: int = HELDOUT_SEED) -> list[str]:
    """The committed protocol: 10 F + 10 M among the speakers of both releases that have
    transcripts and both microphones (every 0.80 speaker but p280 and p315)."""
    genders = {f"p{t[:-1]}": t[-1].lower() for t in SPEAKERS_080.split()}
    return choose_heldout({s: g for s, g in genders.items() if s not in NOT_HELD_OUT}, N_HELDOUT, seed)


def read_heldout(path) -> list[str]:
    """First word of every line that is not blank or a '#' comment."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [speaker_id(line.split()[0]) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def heldout_for(rows: list[Row], listed: list[str], seed: int = HELDOUT_SEED) -> list[str]:
    """The listed speakers if the corpus has them all; otherwise (a partial corpus, a test
    fixture) the same rule applied to the speakers present, which is logged."""
    genders, has_text = {}, set()
    for r in rows:
        spk = r.speaker.split("-", 1)[1]
        genders[spk] = r.gender
        if r.text:
            has_text.add(spk)
    missing = [s for s in listed if s not in genders]
    if not missing:
        return sorted(listed)
    n = min(len(listed), max(2, len(genders) // 5))
    chosen = choose_heldout({s: g for s, g in genders.items() if s in has_text}, n, seed)
    log(f"{len(missing)} of the {len(listed)} listed held-out speakers are not in this corpus "
        f"({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}): FALLING BACK to {len(chosen)} "
        f"speakers chosen by the same rule (seed {seed}) among the {len(genders)} present: {', '.join(chosen)}")
    return chosen


def assign_splits(rows: list[Row], heldout: list[str], val_fraction: float = VAL_FRACTION,
                  seed: int = HELDOUT_SEED) -> list[Row]:
    """dev: held-out speakers; val: ``val_fraction`` of each other speaker's recordings (at least
    one where it has three or more; chosen by utterance id, so both microphones agree); train: rest."""
    held = {f"{CORPUS}-{s}" for s in heldout}
    if len({r.speaker for r in rows} - held) < 2:
        raise ValueError(f"a split needs at least two training speakers besides the {len(held)} held out")
    by_spk: dict[str, list[Row]] = {}
    for r in rows:
        by_spk.setdefault(r.speaker, []).append(r)
    split_of = {}
    for spk, utts in by_spk.items():
        if spk in held:
            split_of.update({u.path: "dev" for u in utts})
            continue
        n_val = max(1, round(len(utts) * val_fraction)) if len(utts) >= 3 and val_fraction > 0 else 0
        order = sorted(utts, key=lambda u: _rank("val", seed, u.utt_id))
        split_of.update({u.path: "val" if i < n_val else "train" for i, u in enumerate(order)})
    return [Row(**{**vars(r), "split": split_of[r.path]}) for r in rows]


def prepare(root, mic: str = "mic1") -> list[Row]:
    """The corpus's rows, split by the committed protocol (what ``vc train --data VCTK_ROOT``
    reads, through vc.data.find_utterances)."""
    rows = scan(root, mic)
    return assign_splits(rows, heldout_for(rows, default_heldout()))


# -- evaluation pairs ---------------------------------------------------------------------------

def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def parallel_pairs(rows: list[Row], split: str = "dev", per_pair: int = 1,
                   seed: int = HELDOUT_SEED) -> list[dict]:
    """For every ordered pair (A, B) of speakers of ``split``: ``per_pair`` parallel sentences
    that both read. source = A reading it, reference = B reading it, target (B's voice) = one of
    B's other recordings, text = the transcript; plus source_speaker and target_speaker."""
    parallel: dict[str, dict[str, Row]] = {}
    others: dict[str, list[Row]] = {}
    for r in sorted((r for r in rows if r.split == split), key=lambda r: r.path):
        if r.number in PARALLEL and r.text:
            parallel.setdefault(r.speaker, {}).setdefault(normalise(r.text), r)
        else:
            others.setdefault(r.speaker, []).append(r)
    pairs = []
    for a in sorted(parallel):
        for b in sorted(parallel):
            if a == b:
                continue
            common = sorted(set(parallel[a]) & set(parallel[b]), key=lambda t: _rank("pair", seed, a, b, t))
            for t in common[:per_pair]:
                pool = others.get(b) or [r for k, r in parallel[b].items() if k != t]
                if not pool:
                    continue
                target = pool[int(_rank("target", seed, a, b, t), 16) % len(pool)]
                pairs.append({"source": parallel[a][t].path, "target": target.path,
                              "reference": parallel[b][t].path, "text": parallel[a][t].text,
                              "source_speaker": a, "target_speaker": b})
    return pairs


PAIR_COLUMNS = ("source", "target", "reference", "text", "source_speaker", "target_speaker")


def write_pairs(pairs: list[dict], path) -> Path:
    return _write_tsv(pairs, PAIR_COLUMNS, path)
