"""Load test of the web page: N simultaneous visitors, each pressing the button R times.

    python benchmarks/load_test.py --model runs/x/model.pt --clients 4 --requests 2
    python benchmarks/load_test.py --url http://127.0.0.1:7860/      # a page that is already up

Starts the page in this process (unless --url), runs N gradio_client clients in threads, checks
that every request is answered with two decodable files, and prints latency percentiles and
failures. Exit status 1 if any request failed. Prints what it saw; asserts nothing about speed.
"""
from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "vc" / "examples"


def visitor(url: str, clips, vocoder: str, requests: int, results: list, lock: threading.Lock):
    from gradio_client import Client, handle_file
    client = Client(url, verbose=False, analytics_enabled=False, httpx_kwargs={"timeout": 600})
    for _ in range(requests):
        t = time.perf_counter()
        try:
            a, b = (handle_file(str(c)) for c in clips)
            ab, ba, stages = client.predict(clip_a=a, clip_b=b, vocoder=vocoder, api_name="/swap")
            ok = all(sf.info(p).frames > 0 for p in (ab, ba))
            row = dict(seconds=time.perf_counter() - t, ok=ok, error="" if ok else "empty output",
                       server=stages)
        except Exception as e:  # every failure is counted and shown, none stops the test
            row = dict(seconds=time.perf_counter() - t, ok=False, error=f"{type(e).__name__}: {e}")
        with lock:
            results.append(row)
            print(f"  {'ok  ' if row['ok'] else 'FAIL'} {row['seconds']:6.2f} s  {row['error']}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="checkpoint (default: the installed default model)")
    p.add_argument("--url", help="test a page that is already running instead of starting one")
    p.add_argument("--vocoder", choices=("hifigan", "griffinlim"), default="hifigan")
    p.add_argument("--clients", type=int, default=4, help="simultaneous visitors (default 4)")
    p.add_argument("--requests", type=int, default=2, help="swaps per visitor (default 2)")
    p.add_argument("--concurrency", type=int, default=2, help="the page's queue concurrency (default 2)")
    p.add_argument("--clips", nargs=2, metavar=("A", "B"),
                   default=[EXAMPLES / "so762-2022_f.flac", EXAMPLES / "so762-0461_m.flac"])
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", module="gradio.queueing")   # pandas deprecation noise in Gradio

    app, url = None, args.url
    if url is None:
        from vc import demo
        from vc.convert import default_model_path
        model = Path(args.model) if args.model else default_model_path()
        print(f"torch threads per conversion: {demo.set_threads(args.concurrency)} (as `vc demo` sets them)")
        app = demo.build_app([model], default_vocoder=args.vocoder, concurrency=args.concurrency,
                             preload=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = demo.launch(app, port=port, block=False, quiet=True)
    print(f"{args.clients} visitors x {args.requests} swaps of {[Path(c).name for c in args.clips]} "
          f"({args.vocoder}) on {url}")
    results, lock = [], threading.Lock()
    t0 = time.perf_counter()
    work = (url, args.clips, args.vocoder, args.requests, results, lock)
    threads = [threading.Thread(target=visitor, args=work) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if app is not None:
        app.close()

    lat = np.array([r["seconds"] for r in results if r["ok"]])
    failures = [r for r in results if not r["ok"]]
    print(f"\n{len(results)} requests in {wall:.1f} s: {len(lat)} answered, {len(failures)} failed")
    if lat.size:
        print(f"latency  p50 {np.percentile(lat, 50):.2f} s   p90 {np.percentile(lat, 90):.2f} s   "
              f"max {lat.max():.2f} s   (throughput {len(lat) / wall:.2f} swaps/s)")
        server = [r["server"] for r in results if r["ok"]]
        for key in server[0]:
            print(f"  server {key:<13} mean {np.mean([s.get(key, 0) for s in server]):.3f}")
    for r in failures:
        print(f"  failure: {r['error']}")
    return 1 if failures or len(results) != args.clients * args.requests else 0


if __name__ == "__main__":
    sys.exit(main())
