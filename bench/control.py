"""Control-surface benchmark: set-to-applied latency over OSC and WebSocket, and meter fan-out.

A daemon runs in this process on the null backend (a tone at real-time pace, 48 kHz), its
surface on free loopback ports. Latency is the time from a client's send until the audio
callback's parameter vector (``engine.params``) holds the new value, for:
  mailbox    ``engine.control.post`` called directly: the floor every path pays (the
             callback drains the mailbox once per block, so about half a block on average);
  OSC        a python-osc message over UDP;
  WebSocket  a ``set`` message from a websockets client.
The ratio column divides each path's p50 by the mailbox's. Fan-out: --clients WebSocket
clients (in this process) count meter frames for --seconds; the rate each received, the
frames the server dropped, and the audio blocks' timing meanwhile.

Time to stop (the tests bound it generously, 5 s, so that a busy machine does not fail them):
the surface closing with a stalled WebSocket client, and `serve` exiting on SIGTERM.

    python bench/control.py [--blocksizes 256 1024] [--sets 200] [--clients 50] [--seconds 5] [--stops 5] [--json]
"""

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import time

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder
from websockets.asyncio.client import connect as aconnect
from websockets.sync.client import connect

from auracore.control.daemon import Daemon, ServeConfig
from auracore.offline.params import build_vector
from auracore.kernels import params as P
from auracore.realtime import engine as E

RATE = 48000
PARAM = "output.gain_db"
POLL_S = 0.0002


def start_daemon(blocksize: int) -> Daemon:
    cfg = ServeConfig(backend="null", models="off", samplerate=RATE, blocksize=blocksize, osc_port=0, ws_port=0,
                      status_interval=0)
    daemon = Daemon(cfg, build_vector("neutral", {}), log=lambda msg: None)
    daemon.start()
    return daemon


def applied_at(engine, idx: int, value: float, timeout_s: float = 1.0) -> float:
    """perf_counter() when engine.params[idx] is first seen equal to value (polled), NaN on timeout."""
    t0 = time.perf_counter()
    while engine.params[idx] != value:
        if time.perf_counter() - t0 > timeout_s:
            return float("nan")
        time.sleep(POLL_S)
    return time.perf_counter()


def measure(daemon: Daemon, n: int) -> dict:
    """{path: [latency ms, ...]} for n sets on each path, alternating paths set by set."""
    engine, surface = daemon.engine, daemon.surface
    idx = P.INDEX[PARAM]
    osc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    osc_addr = ("127.0.0.1", surface.osc.port)
    out = {"mailbox": [], "osc": [], "ws": []}
    period_s = daemon.cfg.blocksize / engine.sample_rate
    with connect(f"ws://127.0.0.1:{surface.ws.port}/ws", proxy=None, compression=None, max_queue=None) as ws:
        rng = np.random.default_rng(3)
        for k in range(n):
            for path in out:
                value = round(float(rng.uniform(-6.0, 6.0)) * 64) / 64  # exact in OSC's float32
                while value == engine.params[idx]:
                    value += 0.5
                t0 = time.perf_counter()
                if path == "mailbox":
                    engine.control.post([(idx, value)])
                elif path == "osc":
                    b = OscMessageBuilder(P.lookup(PARAM).osc_address)
                    b.add_arg(value)
                    osc.sendto(b.build().dgram, osc_addr)
                else:
                    ws.send(json.dumps({"type": "set", "params": {PARAM: value}}))
                out[path].append((applied_at(engine, idx, value) - t0) * 1e3)
                if path == "mailbox":  # keep the hub's store in step with what we posted behind its back
                    surface.hub.set({PARAM: value}, "bench")
                time.sleep(float(rng.uniform(0.0, period_s)))  # the next set lands at a random phase of the block
    osc.close()
    return out


def summarise(ms: list) -> dict:
    a = np.array(ms)
    ok = a[np.isfinite(a)]
    return {"p50_ms": float(np.percentile(ok, 50)), "p99_ms": float(np.percentile(ok, 99)),
            "max_ms": float(ok.max()), "n": int(a.size), "timeouts": int(a.size - ok.size)}


def fan_out(daemon: Daemon, clients: int, seconds: float) -> dict:
    port = daemon.surface.ws.port
    engine = daemon.engine

    async def run():
        conns = [await aconnect(f"ws://127.0.0.1:{port}/ws", proxy=None, compression=None, max_queue=None)
                 for _ in range(clients)]

        async def count(c, start, stop):
            n = 0
            while True:
                m = json.loads(await c.recv())
                now = time.monotonic()
                if now >= stop:
                    return n
                n += m["type"] == "meters" and now >= start

        start = time.monotonic() + 0.5
        blocks0, dropped0 = engine.stats["callbacks"], daemon.surface.ws.meter_frames_dropped
        cpu0 = time.process_time()
        counts = await asyncio.gather(*(count(c, start, start + seconds) for c in conns))
        cpu_s = time.process_time() - cpu0
        blocks = engine.stats["callbacks"] - blocks0
        await asyncio.gather(*(c.close() for c in conns))
        return counts, blocks, daemon.surface.ws.meter_frames_dropped - dropped0, cpu_s

    counts, blocks, dropped, cpu_s = asyncio.run(run())
    rates = [c / seconds for c in counts]
    times = engine.callback_times_us()
    return {"clients": clients, "seconds": seconds, "meter_hz": daemon.surface.hub.meter_hz,
            "rate_hz_min": min(rates), "rate_hz_median": statistics.median(rates), "rate_hz_max": max(rates),
            "server_frames_dropped": int(dropped), "blocks_per_s": blocks / (seconds + 0.5),
            "callback_us_p99": float(np.percentile(times, 99)) if times.size else None,
            "process_cpu_pct": 100.0 * cpu_s / (seconds + 0.5)}


def stops(repeat: int) -> dict:
    """Time to stop, the figures the tests only bound generously (a busy machine stretches
    them): the control surface closing with a stalled WebSocket client (a handshake sent, no
    reads) beside a live one; ``auracore serve --backend null`` exiting on SIGTERM (after its
    first status line). Seconds, median and max over repeat tries."""
    import signal
    import subprocess

    close_s, term_s = [], []
    for _ in range(repeat):
        daemon = start_daemon(1024)
        try:
            time.sleep(0.3)
            stalled = socket.create_connection(("127.0.0.1", daemon.surface.ws.port))
            stalled.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            live = connect(f"ws://127.0.0.1:{daemon.surface.ws.port}/ws")
            live.recv(timeout=5)
            time.sleep(0.3)
            t0 = time.perf_counter()
            daemon.surface.close()
            close_s.append(time.perf_counter() - t0)
            daemon.surface = None
            stalled.close()
            with contextlib.suppress(Exception):
                live.close()
        finally:
            with contextlib.suppress(Exception):
                daemon.close()
        proc = subprocess.Popen([sys.executable, "-m", "auracore.control.cli", "serve", "--backend", "null",
                                 "--models", "off", "--status-interval", "0.2", "--osc-port", "0", "--ws-port", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while "up " not in (proc.stderr.readline() or "up "):
                pass
            t0 = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            term_s.append(time.perf_counter() - t0)
        finally:
            if proc.poll() is None:
                proc.kill()
    return {"surface_close_s": {"median": statistics.median(close_s), "max": max(close_s)},
            "sigterm_exit_s": {"median": statistics.median(term_s), "max": max(term_s)}, "repeat": repeat}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocksizes", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--sets", type=int, default=200, help="sets per path and block size")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=5.0, help="fan-out measuring time")
    ap.add_argument("--stops", type=int, default=5, help="tries of each time-to-stop measurement (0: none)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    latency = {}
    fan = None
    for size in args.blocksizes:
        daemon = start_daemon(size)
        try:
            time.sleep(0.5)
            latency[size] = {path: summarise(ms) for path, ms in measure(daemon, args.sets).items()}
            if fan is None:
                fan = {"blocksize": size, **fan_out(daemon, args.clients, args.seconds)}
        finally:
            with contextlib.suppress(Exception):
                daemon.close()
    stop = stops(args.stops) if args.stops else None
    if args.json:
        print(json.dumps({"sample_rate": RATE, "parameter": PARAM, "latency": latency, "fan_out": fan, "stops": stop}))
        return
    print(f"set-to-applied latency, {PARAM}, null backend at {RATE} Hz ({args.sets} sets per row), ms")
    print(f"{'block':>6} {'period':>7} | {'path':<9} | {'p50':>6} {'p99':>6} {'max':>6} | {'p50 / mailbox':>13} | "
          f"{'lost':>4}")
    names = {"mailbox": "mailbox", "osc": "OSC", "ws": "WebSocket"}
    for size, rows in latency.items():
        for path, r in rows.items():
            ratio = r["p50_ms"] / rows["mailbox"]["p50_ms"]
            print(f"{size:>6} {size / RATE * 1e3:>5.2f}ms | {names[path]:<9} | {r['p50_ms']:>6.2f} {r['p99_ms']:>6.2f} "
                  f"{r['max_ms']:>6.2f} | {ratio:>13.2f} | {r['timeouts']:>4}")
    f = fan
    print(f"meters fan-out: {f['clients']} WebSocket clients for {f['seconds']:g} s at {f['meter_hz']:g} Hz "
          f"(block {f['blocksize']}): per-client rate min {f['rate_hz_min']:.1f} / median {f['rate_hz_median']:.1f} / "
          f"max {f['rate_hz_max']:.1f} Hz, server dropped {f['server_frames_dropped']} frames, audio "
          f"{f['blocks_per_s']:.1f} blocks/s, callback p99 {f['callback_us_p99']:.0f} us, process CPU "
          f"{f['process_cpu_pct']:.0f}% of one core (server and clients)", file=sys.stdout)
    if stop:
        print(f"time to stop ({stop['repeat']} tries): control surface with a stalled WebSocket client "
              f"{stop['surface_close_s']['median'] * 1e3:.0f} ms median, {stop['surface_close_s']['max'] * 1e3:.0f} ms "
              f"max; serve --backend null on SIGTERM {stop['sigterm_exit_s']['median'] * 1e3:.0f} ms median, "
              f"{stop['sigterm_exit_s']['max'] * 1e3:.0f} ms max")


if __name__ == "__main__":
    main()
