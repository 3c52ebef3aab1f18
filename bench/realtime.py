"""Live-engine benchmark on JACK's dummy driver: callback time against the deadline, xruns.

For each block size (JACK period = block size), three runs of --seconds each:
  quiet   the daemon alone (models off, no control traffic);
  loaded  the daemon with the inference thread (if models load), control traffic (100
          parameter changes a second through the mailbox) and a pure-Python thread
          spinning on the GIL;
  bare    a bare pass-through JACK client (separate process) with a spinning process
          beside it: what this machine does with no processing at all.
Callback time is measured inside the callback (CLOCK_MONOTONIC), as a share of the block
deadline. Xruns: graph xruns reported by JACK to a counting client during the run, and the
daemon's PortAudio flags. A Python-callback run at each size shows the GIL wait (stream
time minus the block's time at callback entry) that the native callback avoids.

    python bench/realtime.py [--sizes 64 128 256 512 1024 2048] [--seconds 20] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "tests", "jack_peer.py")
RATE = 48000
SPIN = "import time\nt = time.time() + {s}\nwhile time.time() < t:\n    sum(range(1000))\n"


def start_jack(period):
    name = f"bench{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", str(RATE), "-p", str(period)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    for _ in range(100):
        r = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True, env=env)
        if "system:playback_1" in r.stdout:
            break
        time.sleep(0.1)
    return proc, name, env


def peer(env, name, *args):
    r = subprocess.run([sys.executable, PEER, *args, "--server", name], capture_output=True, text=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_daemon(name, env, size, seconds, loaded, callback="native"):
    """Run the daemon in this process on server `name`; returns its figures."""
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    from auracore.control.daemon import Daemon, ServeConfig
    from auracore.kernels import params as P
    from auracore.realtime import engine as E

    cfg = ServeConfig(backend="portaudio", hostapi="jack", blocksize=size, callback=callback,
                      models=None if loaded else "off", status_interval=0, stress_gil=loaded,
                      client_name="aurabench", surface=False)
    daemon = Daemon(cfg, P.default_vector(), log=lambda msg: None)
    daemon.start()
    stop = threading.Event()

    def control_traffic():
        rng = np.random.default_rng(0)
        i = P.INDEX["eq.4.gain_db"]
        while not stop.wait(0.01):
            daemon.engine.control.post([(i, rng.uniform(-6, 6))])

    threads = []
    if loaded:
        threads.append(threading.Thread(target=control_traffic, daemon=True))
        threading.Thread(target=daemon._stress_gil, daemon=True).start()
    for t in threads:
        t.start()
    daemon.engine.durations[:] = 0.0
    daemon.engine.duration_idx[0] = 0
    status0 = daemon.engine.status.copy()[0]
    graph_xruns = peer(env, name, "count", "--seconds", str(seconds))["xruns"]
    status = daemon.engine.status.copy()[0]
    times = daemon.engine.callback_times_us()
    inference = daemon.inference.stats() if daemon.inference is not None else None
    stop.set()
    daemon.stop_event.set()
    daemon.close()
    deadline_us = size / RATE * 1e6
    flags = sum(status[k] - status0[k] for k in ("input_underflow", "input_overflow",
                                                 "output_underflow", "output_overflow"))
    out = {"p50_pct": float(np.percentile(times, 50) / deadline_us * 100),
           "p99_pct": float(np.percentile(times, 99) / deadline_us * 100),
           "max_pct": float(times.max() / deadline_us * 100), "graph_xruns": graph_xruns,
           "portaudio_flags": int(flags), "blocks": int(status["callbacks"] - status0["callbacks"])}
    if callback == "python":
        out["gil_wait_max_us"] = float(status["wait_us_max"])
    if inference is not None:
        out["inference_p50_ms"] = inference["latency_ms_p50"]
        out["inference_p99_ms"] = inference["latency_ms_p99"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = {}
    for size in args.sizes:
        jack, name, env = start_jack(size)
        try:
            row = {"quiet": run_daemon(name, env, size, args.seconds, False),
                   "loaded": run_daemon(name, env, size, args.seconds, True),
                   "python_callback_loaded": run_daemon(name, env, size, args.seconds, True, "python")}
            spin = subprocess.Popen([sys.executable, "-c", SPIN.format(s=args.seconds + 1)])
            row["bare_xruns"] = peer(env, name, "passthrough", "--seconds", str(args.seconds))["xruns"]
            spin.wait()
        finally:
            from auracore.realtime import portaudio

            portaudio.terminate()  # before the server goes: PortAudio's JACK host asserts otherwise
            jack.terminate()
            jack.wait()
        results[size] = row
        if not args.json:
            print(f"block {size}: {json.dumps(row)}", file=sys.stderr)
    zero = [s for s in args.sizes if results[s]["loaded"]["graph_xruns"] == 0]
    summary = {"seconds_per_run": args.seconds, "sizes": results,
               "smallest_zero_xrun_block_loaded": min(zero) if zero else None}
    if args.json:
        print(json.dumps(summary))
        return
    per_min = 60.0 / args.seconds
    print(f"{'block':>6} {'deadline':>9} | {'quiet p50/p99/max % of deadline':>32} | "
          f"{'loaded p50/p99/max %':>22} | {'xruns/min daemon (loaded)':>25} | {'bare':>5} | "
          f"{'py-callback GIL wait max':>24}")
    for size, r in results.items():
        q, lo, py = r["quiet"], r["loaded"], r["python_callback_loaded"]
        print(f"{size:>6} {size / RATE * 1e3:>7.2f}ms | {q['p50_pct']:>9.2f} / {q['p99_pct']:6.2f} / {q['max_pct']:7.1f} "
              f"   | {lo['p50_pct']:>5.2f} / {lo['p99_pct']:5.2f} / {lo['max_pct']:6.1f} | "
              f"{lo['graph_xruns'] * per_min:>25.1f} | {r['bare_xruns'] * per_min:>5.1f} | "
              f"{py['gil_wait_max_us'] / 1e3:>21.2f} ms")
    inf = [r["loaded"].get("inference_p99_ms") for r in results.values() if "inference_p99_ms" in r["loaded"]]
    if inf:
        print(f"inference p99 (loaded runs): {max(inf):.2f} ms")
    print(f"smallest block with zero graph xruns (loaded, {args.seconds:g} s): "
          f"{summary['smallest_zero_xrun_block_loaded']}")


if __name__ == "__main__":
    main()
