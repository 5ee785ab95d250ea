"""HiFi-GAN on CPU: every well-kept route to a faster vocoder, side by side in one run.

    python benchmarks/vocoder_routes.py [--seconds 10] [--repeats 3] [--threads 2] [--skip compile,onnx]

Each route vocodes the same log-mel of ``--seconds`` of speech (the bundled example clips, tiled).
The timed calls are interleaved (route 1, route 2, ..., route 1, route 2, ...) so that a change
in the machine's load hits every route alike; each cell is the fastest and the median call after
one warm-up call. "start-up" is what a route costs once per process before its first call
(tracing, compiling, exporting), "first call" the first call after it. "max |diff|" and
"log-mel diff" compare each route's waveform with today's route (eager fp32): the largest
sample difference, and the mean absolute difference of the log-mel of the outputs on speech
frames (for scale: HiFi-GAN's own copy-synthesis error is about 0.27).

Routes: eager fp32 (today), eager under bf16 autocast, TorchScript trace + freeze +
optimize_for_inference (oneDNN conv fusions) in fp32 and bf16, the same with oneDNN Graph fusion
enabled, torch.compile (inductor) fp32 and bf16, ONNX Runtime fp32 (needs the ``onnx`` package to
export), channels-last (the generator as 2-D convolutions with (k, 1) kernels, the only way a 1-D
network gets a channels-last memory format), and chunked vocoding (vc's long-input path).
Then two ~5 s requests (the web page's swap) with the best route: one after the other with all
threads, two at once with one thread each, and as one padded batch of two.
The load average (1 min) is printed before and after: the figures are only comparable within
one run.
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vc.audio import load_audio  # noqa: E402
from vc.features import MelConfig, mel_spectrogram  # noqa: E402
from vc.vocoder import HiFiGAN, cpu_supports_bf16, vocode_chunked  # noqa: E402

EXAMPLES = ROOT / "vc" / "examples"


def speech(seconds: float, sr: int = 22050) -> np.ndarray:
    wav = np.concatenate([load_audio(p, sr) for p in sorted(EXAMPLES.glob("*.flac"))])
    return np.tile(wav, int(np.ceil(seconds * sr / wav.size)))[: int(seconds * sr)]


def load() -> str:
    return "%.1f" % os.getloadavg()[0]


# -- the routes: each returns (callable mel -> wav (B, samples), start-up seconds) ---------------

def eager(gen, bf16: bool):
    def run(mel):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return gen(mel).float()[:, 0]
    return run, 0.0


def torchscript(gen, mel, bf16: bool, onednn_graph: bool = False):
    t = time.perf_counter()
    torch.jit.enable_onednn_fusion(onednn_graph)
    with torch.inference_mode(False), torch.no_grad(), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        traced = torch.jit.trace(gen, mel, check_trace=False)
        traced = torch.jit.freeze(traced.eval())
        if not onednn_graph:
            traced = torch.jit.optimize_for_inference(traced)
    start = time.perf_counter() - t

    def run(x):
        torch.jit.enable_onednn_fusion(onednn_graph)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return traced(x).float()[:, 0]
    return run, start


def compiled(gen, bf16: bool):
    t = time.perf_counter()
    fn = torch.compile(copy.deepcopy(gen), dynamic=True)

    def run(mel):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return fn(mel).float()[:, 0]
    return run, time.perf_counter() - t      # the compilation itself happens in the first call


def onnx_runtime(gen, mel, threads: int):
    import onnxruntime as ort
    t = time.perf_counter()
    f = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(gen, mel, f, input_names=["mel"], output_names=["wav"], dynamo=False,
                          dynamic_axes={"mel": {0: "B", 2: "T"}, "wav": {0: "B", 2: "S"}}, opset_version=17)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(f.getvalue(), opts, providers=["CPUExecutionProvider"])

    def run(x):
        return torch.from_numpy(sess.run(None, {"mel": x.numpy()})[0][:, 0])
    return run, time.perf_counter() - t


def as_conv2d(module: nn.Module) -> nn.Module:
    """Conv1d/ConvTranspose1d -> Conv2d/ConvTranspose2d with (k, 1) kernels, weights copied."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv1d, nn.ConvTranspose1d)):
            cls = nn.Conv2d if isinstance(child, nn.Conv1d) else nn.ConvTranspose2d
            new = cls(child.in_channels, child.out_channels, (child.kernel_size[0], 1),
                      stride=(child.stride[0], 1), padding=(child.padding[0], 0),
                      dilation=(child.dilation[0], 1), bias=child.bias is not None)
            new.weight.data = child.weight.data.unsqueeze(-1).clone()
            if child.bias is not None:
                new.bias.data = child.bias.data.clone()
            setattr(module, name, new)
        else:
            as_conv2d(child)
    return module


def channels_last(gen, bf16: bool):
    t = time.perf_counter()
    g2 = as_conv2d(copy.deepcopy(gen)).to(memory_format=torch.channels_last)

    def run(mel):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            x = mel.unsqueeze(-1).contiguous(memory_format=torch.channels_last)
            return g2(x).float()[:, 0, :, 0]
    return run, time.perf_counter() - t


# -- measuring ---------------------------------------------------------------------------------

def logmel_diff(a: torch.Tensor, b: torch.Tensor, cfg: MelConfig) -> float:
    ma, mb = mel_spectrogram(a[0].float(), cfg), mel_spectrogram(b[0].float(), cfg)
    speech_frames = ma.mean(0) > ma.mean(0).median() - 1.0     # leave out the quietest frames
    return float((ma - mb).abs()[:, speech_frames].mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated route families to leave out: "
                    "torchscript,onednn,compile,onnx,channels_last,chunked,parallel")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(args.threads)
    cfg = MelConfig()
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"bf16 supported: {cpu_supports_bf16()}; load average at start {load()} "
          f"(uptime: {os.popen('uptime').read().strip()})")
    gen = HiFiGAN().generator.eval()
    wav = speech(args.seconds)
    mel = mel_spectrogram(torch.from_numpy(wav), cfg)[None]
    audio_s = mel.shape[-1] * cfg.hop_length / cfg.sample_rate

    routes = {"eager fp32 (today)": lambda: eager(gen, False),
              "eager bf16 autocast": lambda: eager(gen, True)}
    if "torchscript" not in skip:
        routes["jit trace+freeze+optimize fp32"] = lambda: torchscript(gen, mel, False)
        routes["jit trace+freeze+optimize bf16"] = lambda: torchscript(gen, mel, True)
    if "onednn" not in skip:
        routes["jit freeze + oneDNN Graph bf16"] = lambda: torchscript(gen, mel, True, onednn_graph=True)
    if "compile" not in skip:
        routes["torch.compile fp32"] = lambda: compiled(gen, False)
        routes["torch.compile bf16"] = lambda: compiled(gen, True)
    if "onnx" not in skip:
        routes["ONNX Runtime fp32"] = lambda: onnx_runtime(gen, mel, args.threads)
    if "channels_last" not in skip:
        routes["channels-last 2-D fp32"] = lambda: channels_last(gen, False)
        routes["channels-last 2-D bf16"] = lambda: channels_last(gen, True)
    if "chunked" not in skip:
        routes["chunked (2.9 s pieces) bf16"] = lambda: (
            lambda m: vocode_chunked(lambda x: eager(gen, True)[0](x), m, chunk_frames=256), 0.0)

    ready, failed = {}, {}
    for name, make in routes.items():
        try:
            fn, start = make()
            t = time.perf_counter()
            out = fn(mel)
            ready[name] = dict(fn=fn, start=start, first=time.perf_counter() - t, out=out, times=[])
        except Exception as e:  # a route that does not work here is a row that says why
            failed[name] = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:100]}"
        print(f"  ready: {name} (load {load()})", flush=True)
    for _ in range(args.repeats):
        for name, r in list(ready.items()):
            t = time.perf_counter()
            try:
                r["fn"](mel)
            except Exception as e:      # e.g. oneDNN Graph compiles its partitions on a later call
                failed[name] = f"{type(e).__name__} on a later call: {(str(e).splitlines() or [''])[-1][:100]}"
                del ready[name]
                continue
            r["times"].append(time.perf_counter() - t)
    ref = ready["eager fp32 (today)"]
    print(f"\n{args.seconds:g} s of speech ({mel.shape[-1]} frames); RTF = seconds / audio seconds; "
          f"load average at end {load()}\n")
    print("| route | start-up s | first call s | best s | median s | RTF (best) | speed-up | max abs diff | log-mel diff |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = min(ref["times"])
    for name, r in ready.items():
        best, med = min(r["times"]), statistics.median(r["times"])
        n = min(r["out"].shape[-1], ref["out"].shape[-1])
        diff = float((r["out"][..., :n] - ref["out"][..., :n]).abs().max())
        print(f"| {name} | {r['start']:.1f} | {r['first']:.2f} | {best:.2f} | {med:.2f} | {best / audio_s:.3f} | "
              f"{base / best:.2f}x | {diff:.4f} | {logmel_diff(r['out'][..., :n], ref['out'][..., :n], cfg):.4f} |")
    for name, why in failed.items():
        print(f"| {name} | failed: {why} |||||||")

    if "parallel" not in skip:
        best_name = min((n for n in ready if "compile" not in n), key=lambda n: min(ready[n]["times"]))
        fn = ready[best_name]["fn"]
        half = mel.shape[-1] // 2
        a, b = mel[..., :half], mel[..., half:2 * half]

        def sequential():
            fn(a), fn(b)

        def two_threads():
            ts = [threading.Thread(target=fn, args=(x,)) for x in (a, b)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        def batched():
            fn(torch.cat([a, b]))

        plans = {f"one after the other, {args.threads} threads each": (sequential, args.threads),
                 "both at once, 1 thread each": (two_threads, 1),
                 f"one batch of two, {args.threads} threads": (batched, args.threads)}
        times = {k: [] for k in plans}
        for k, (f, n) in plans.items():      # warm-up
            torch.set_num_threads(n)
            f()
        for _ in range(args.repeats):
            for k, (f, n) in plans.items():
                torch.set_num_threads(n)
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
        torch.set_num_threads(args.threads)
        print(f"\nTwo requests of {half * cfg.hop_length / cfg.sample_rate:.1f} s each with '{best_name}' "
              f"(load average {load()}):\n")
        print("| plan | best s | median s |\n|---|---|---|")
        for k, ts in times.items():
            print(f"| {k} | {min(ts):.2f} | {statistics.median(ts):.2f} |")
    print(f"\nload average at end {load()} (uptime: {os.popen('uptime').read().strip()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
