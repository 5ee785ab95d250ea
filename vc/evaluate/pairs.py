"""What to evaluate: (source, target) pairs, from a PAIRS.tsv or built from a corpus split.

PAIRS.tsv: tab-separated, with a header. Columns ``source`` and ``target`` (a clip of the target
speaker) are required; ``reference`` (a real recording of the target speaker saying the source's
sentence), ``text`` (the source's transcript), ``source_speaker`` and ``target_speaker`` are
optional. Relative paths resolve against the TSV's folder. Without speaker columns the speaker
verification threshold and the speaker-identification probes cannot be computed (no labels).

From a corpus: every ordered pair of different speakers; a seeded generator picks a source
utterance and a different target utterance, and a third utterance of the target speaker (the
"ceiling" clip that the vocoder-resynthesis and reconstruction baselines start from).
"""
from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import Utterance


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    reference: str = ""        # the target speaker saying the source's sentence (enables MCD)
    text: str = ""             # the source's transcript ("" = use the ASR of the source)
    source_speaker: str = ""
    target_speaker: str = ""
    ceiling: str = ""          # real clip of the target speaker for the resynthesis/reconstruction rows
    ceiling_text: str = ""

    @property
    def key(self) -> str:
        """Stable identity of the pair (what a resumed run matches on)."""
        ident = "|".join((self.source, self.target, self.reference, self.ceiling, self.text))
        return hashlib.sha1(ident.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return asdict(self)


def read_pairs(path) -> list[Pair]:
    """Pairs of a PAIRS.tsv. Raises ValueError (one line, naming the file) on a malformed table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such pairs file")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: no pairs (a header line 'source<TAB>target' and one row per pair)")
    if not {"source", "target"} <= set(rows[0]):
        raise ValueError(f"{path}: needs tab-separated columns 'source' and 'target' "
                         f"(found {', '.join(k for k in rows[0] if k) or 'none'})")
    root, pairs = path.parent, []
    for line, r in enumerate(rows, start=2):
        if not (r.get("source") or "").strip() or not (r.get("target") or "").strip():
            raise ValueError(f"{path}: line {line}: empty 'source' or 'target'")
        resolve = lambda p: str((root / p.strip()).resolve()) if p and p.strip() else ""  # noqa: E731
        ref = resolve(r.get("reference"))
        pairs.append(Pair(source=resolve(r["source"]), target=resolve(r["target"]), reference=ref,
                          text=(r.get("text") or "").strip(),
                          source_speaker=(r.get("source_speaker") or "").strip(),
                          target_speaker=(r.get("target_speaker") or "").strip(),
                          # the resynthesis/reconstruction baselines start from the reference when
                          # there is one, else from the target clip itself (their similarity to the
                          # target is then an optimistic ceiling: the same recording)
                          ceiling=ref or resolve(r["target"]),
                          ceiling_text=(r.get("text") or "").strip() if ref else ""))
    return pairs


def _same_words(a: str, b: str) -> bool:
    norm = lambda s: re.sub(r"[^a-z0-9 ]", "", s.lower()).split()  # noqa: E731
    return bool(a.strip()) and norm(a) == norm(b)


def by_speaker(utterances) -> dict[str, list[Utterance]]:
    out: dict[str, list[Utterance]] = {}
    for u in sorted(utterances, key=lambda u: (u.speaker, u.path)):
        out.setdefault(u.speaker, []).append(u)
    return out


def corpus_pairs(utterances, seed: int = 0) -> list[Pair]:
    """Every ordered pair of different speakers, utterances chosen by a generator seeded with
    (seed, speaker indices): a pair's choice does not depend on which other pairs exist."""
    spk = by_speaker(utterances)
    names = sorted(spk)
    if len(names) < 2:
        raise ValueError(f"need at least two speakers to make pairs (found {len(names)})")
    pairs = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i == j:
                continue
            rng = np.random.default_rng([seed, i, j])
            src = spk[a][rng.integers(len(spk[a]))]
            t = int(rng.integers(len(spk[b])))
            tgt = spk[b][t]
            others = [u for k, u in enumerate(spk[b]) if k != t]
            parallel = [u for u in others if _same_words(u.text, src.text)]
            ceil = parallel[0] if parallel else (others[rng.integers(len(others))] if others else tgt)
            pairs.append(Pair(source=src.path, target=tgt.path,
                              reference=parallel[0].path if parallel else "", text=src.text,
                              source_speaker=a, target_speaker=b, ceiling=ceil.path,
                              ceiling_text=ceil.text))
    return pairs


def subset(pairs: list[Pair], n: int | None, seed: int = 0) -> list[Pair]:
    """A deterministic spread-out subset of ``n`` pairs (a seeded permutation, kept in list order)."""
    if not n or n >= len(pairs):
        return list(pairs)
    keep = np.sort(np.random.default_rng(seed).permutation(len(pairs))[:n])
    return [pairs[k] for k in keep]


def labelled_utterances(pairs: list[Pair]) -> list[tuple[str, str]]:
    """Distinct (path, speaker) of the real clips of the pairs whose speakers are named."""
    seen: dict[str, str] = {}
    for p in pairs:
        for path, spk in ((p.source, p.source_speaker), (p.target, p.target_speaker),
                          (p.reference, p.target_speaker), (p.ceiling, p.target_speaker)):
            if path and spk:
                seen.setdefault(path, spk)
    return sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))


def calibration_set(utterances, per_speaker: int = 10, seed: int = 0) -> list[tuple[str, str]]:
    """(path, speaker) of up to ``per_speaker`` utterances of every speaker, seeded choice."""
    out = []
    for k, (name, utts) in enumerate(sorted(by_speaker(utterances).items())):
        idx = np.random.default_rng([seed, k, 1]).permutation(len(utts))[:per_speaker]
        out += [(utts[i].path, name) for i in sorted(idx)]
    return out
