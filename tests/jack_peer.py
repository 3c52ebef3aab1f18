"""A JACK client for the live tests, run in a process of its own (a Python JACK callback
in the test process would be late whenever the test holds the GIL, and JACK would mark
the whole graph late).

play:        play a signal (.npy, frames x 2 float32) into TARGET's input ports and record
             TARGET's output ports over the same cycles; writes an .npz (recording, xruns).
passthrough: a bare pass-through client (input copied to output) that counts xruns: the
             reference for what this machine does with no processing at all.
count:       no ports, no processing: only counts the xruns JACK reports for the graph.
Both print one JSON line on stdout at the end.
"""

import argparse
import json
import sys
import threading
import time

import jack
import numpy as np


def _client(name, server):
    return jack.Client(name, servername=server, no_start_server=True)


def play(args):
    signal = np.load(args.signal).astype(np.float32)
    total = signal.shape[0] + args.tail
    rec = np.zeros((total, 2), dtype=np.float32)
    client = _client("peer", args.server)
    outs = [client.outports.register(f"out_{k + 1}") for k in range(2)]
    ins = [client.inports.register(f"in_{k + 1}") for k in range(2)]
    state = {"pos": -1, "xruns": 0}
    done = threading.Event()

    @client.set_process_callback
    def process(frames):
        pos = state["pos"]
        for k in range(2):
            buf = outs[k].get_array()
            buf[:] = 0.0
            if 0 <= pos < signal.shape[0]:
                n = min(frames, signal.shape[0] - pos)
                buf[:n] = signal[pos:pos + n, k]
            if 0 <= pos < total:
                n = min(frames, total - pos)
                rec[pos:pos + n, k] = ins[k].get_array()[:n]
        if pos >= 0:
            state["pos"] = pos + frames
            if state["pos"] >= total:
                done.set()

    @client.set_xrun_callback
    def xrun(delay):
        state["xruns"] += 1

    with client:
        target_in = client.get_ports(f"{args.target}:", is_audio=True, is_input=True)
        target_out = client.get_ports(f"{args.target}:", is_audio=True, is_output=True)
        if len(target_in) < 2 or len(target_out) < 2:
            print(json.dumps({"error": f"no ports of {args.target}: {[p.name for p in client.get_ports()]}"}))
            return 1
        for port in target_in:  # PortAudio connected the system ports: take them over
            for other in client.get_all_connections(port):
                client.disconnect(other, port)
        for k in range(2):
            client.connect(outs[k], target_in[k])
            client.connect(target_out[k], ins[k])
        time.sleep(0.5)
        state["pos"] = 0
        done.wait(timeout=signal.shape[0] / client.samplerate + 30)
    np.savez(args.out, recording=rec, xruns=state["xruns"])
    print(json.dumps({"xruns": state["xruns"], "frames": int(state["pos"])}))
    return 0


def passthrough(args):
    client = _client("bare", args.server)
    ins = [client.inports.register(f"in_{k + 1}") for k in range(2)]
    outs = [client.outports.register(f"out_{k + 1}") for k in range(2)]
    state = {"xruns": 0}

    @client.set_process_callback
    def process(frames):
        for k in range(2):
            outs[k].get_array()[:] = ins[k].get_array()

    @client.set_xrun_callback
    def xrun(delay):
        state["xruns"] += 1

    with client:
        capture = client.get_ports("system:", is_audio=True, is_output=True)
        playback = client.get_ports("system:", is_audio=True, is_input=True)
        for k in range(2):
            client.connect(capture[k], ins[k])
            client.connect(outs[k], playback[k])
        time.sleep(args.seconds)
    print(json.dumps({"xruns": state["xruns"]}))
    return 0


def count(args):
    client = _client("counter", args.server)
    state = {"xruns": 0}

    @client.set_xrun_callback
    def xrun(delay):
        state["xruns"] += 1

    with client:
        time.sleep(args.seconds)
    print(json.dumps({"xruns": state["xruns"]}))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("play", "passthrough", "count"))
    p.add_argument("--server", required=True)
    p.add_argument("--target")
    p.add_argument("--signal")
    p.add_argument("--out")
    p.add_argument("--tail", type=int, default=16384)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()
    return {"play": play, "passthrough": passthrough, "count": count}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
