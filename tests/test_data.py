"""vc.data: which utterances training holds out for its validation loss, and what a batch pairs
with each segment as its speaker reference."""
import numpy as np

from vc.data import SegmentSampler, Utterance, split_validation


def utts(counts: dict[str, int]) -> list[Utterance]:
    return [Utterance(path=f"/d/{spk}/{i:02d}.flac", speaker=spk) for spk, n in counts.items() for i in range(n)]


def test_holds_out_per_speaker_with_enough_utterances():
    data = utts({"a": 10, "b": 3, "c": 2, "d": 1})
    train, val = split_validation(data, per_speaker=1, seed=0)
    assert sorted(u.speaker for u in val) == ["a", "b"]            # speakers with under 3 keep all
    assert set(train) | set(val) == set(data) and not set(train) & set(val)
    train2, val2 = split_validation(list(reversed(data)), per_speaker=2, seed=0)
    assert sorted(u.speaker for u in val2) == ["a", "a", "b", "b"]


def test_the_same_for_a_seed_whatever_the_order():
    data = utts({"a": 20, "b": 20})
    _, val = split_validation(data, 1, seed=3)
    assert split_validation(list(reversed(data)), 1, seed=3)[1] == val
    assert any(split_validation(data, 1, seed=s)[1] != val for s in range(4, 10))
    assert split_validation(data, 0, seed=3)[1] == []


class _Features:
    """The reading interface of a feature store: one utterance per entry, frame numbers as values."""

    def __init__(self, frames, speakers):
        self.frames = np.asarray(frames, dtype=np.int64)
        self.speakers, self.paths = list(speakers), [f"u{i}.flac" for i in range(len(frames))]

    def __len__(self):
        return len(self.frames)

    def segment(self, i, start, n):
        return np.tile(np.arange(start, start + n, dtype=np.float32), (2, 1)) + 1000 * i

    def feature(self, i):
        return self.segment(i, 0, int(self.frames[i]))


def test_a_speaker_with_one_utterance_gets_a_reference_clear_of_its_segment():
    """The speaker vector must not see the words it helps rebuild: with one utterance, the
    reference is another part of it; with two, another utterance."""
    n = 16
    # speaker a: one utterance of 40 frames (room for a clear reference from some starts only),
    # speaker b: one of 200, speaker c: two utterances
    sampler = SegmentSampler(_Features([40, 200, 30, 30], ["a", "b", "c", "c"]), n, seed=0)
    clear = 0
    for _ in range(300):
        batch = sampler.batch(3)
        for seg, ref, spk in zip(batch.segments.numpy(), batch.references.numpy(), batch.speakers.tolist()):
            s, r = int(seg[0, 0]), int(ref[0, 0])
            if sampler.speakers[spk] == "c":
                assert s // 1000 != r // 1000                        # the other utterance
            else:
                assert s // 1000 == r // 1000
                overlap = abs(s - r) < n
                assert not overlap or sampler.speakers[spk] == "a"    # no room to avoid only in a
                clear += not overlap
    assert clear > 300                                               # b's references never overlap
