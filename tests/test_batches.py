"""vc.batches: what a batch pairs with each segment as its speaker reference."""
import numpy as np

from vc.batches import SegmentSampler


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


def test_each_segment_says_whether_its_file_is_lossy():
    """Batch.lossy marks the segments cut from Opus/Ogg/MP3 files (whose upper bands the codec
    changed), item by item, whatever the case of the suffix."""
    features = _Features([40] * 4, ["a", "a", "b", "b"])
    features.paths = ["a/1.flac", "a/2.OPUS", "b/1.wav", "b/2.mp3"]
    sampler = SegmentSampler(features, 16, seed=0)
    seen = set()
    for _ in range(50):
        batch = sampler.batch(2)
        for seg, lossy in zip(batch.segments.numpy(), batch.lossy.tolist()):
            utt = int(seg[0, 0]) // 1000
            assert lossy == (utt in (1, 3))
            seen.add(lossy)
    assert seen == {True, False}
