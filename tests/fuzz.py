"""The command-line fuzzer: generated bad inputs and options through the real `auracore` CLI.

Every case runs the real entry point (``auracore.control.entry.main``, what the console
script runs) in a forked child of a warmed-up parent (so a case costs milliseconds, not a
Python start-up), in a folder of its own, sometimes with a signal sent part-way. Each run
must hold the contract of the README's "Commands" section:
- no Python traceback and no Python warning on stderr, and every line on it the program's
  own ("auracore ..."; render and analyze: a failure is exactly one line);
- an exit code from the documented set (0, 1, 2, 130, 143, 129; 3 is a bug);
- every input unchanged (SHA-256 before and after);
- no temporary file (``.auracore-*``) left, and no new file at all unless the exit is 0;
- peak memory (the child's maximum RSS) under a bound; no hang (a time limit).

A command joins by adding a template to ``COMMANDS``: how its argv is built from an input
file, an output path and options drawn from its own option pool.

    .venv/bin/python tests/fuzz.py --cases 3000 --seed 1      # the full set
    .venv/bin/python tests/fuzz.py --cases 300 --json          # what CI runs (tests/test_fuzz.py)
"""

import argparse
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

ALLOWED_EXITS = {0, 1, 2, 130, 143, 129}
MAX_RSS_MB = 2500
CASE_TIMEOUT_S = 60.0
TEMP_PREFIX = ".auracore-"


# -- inputs -------------------------------------------------------------------------------

def _tone(frames, channels, sample_rate, level=0.3):
    t = np.arange(frames) / sample_rate
    x = level * np.sin(2 * np.pi * 441.0 * t)[:, None] * np.ones(channels)
    return x


def make_inputs(folder: str) -> dict:
    """Write the input zoo into folder: {kind: path}. Valid files are short (0.3 s)."""
    rng = np.random.default_rng(7)
    paths = {}

    def wav(name, x, sr, subtype="PCM_16", fmt=None):
        p = os.path.join(folder, name)
        sf.write(p, x, sr, subtype=subtype, format=fmt)
        paths[name[:-4] if name.endswith(".wav") else name.replace(".", "_")] = p
        return p

    wav("ok.wav", _tone(14400, 2, 48000), 48000)
    wav("mono.wav", _tone(14400, 1, 48000), 48000)
    wav("rate8k.wav", _tone(2400, 2, 8000), 8000)
    wav("rate192k.wav", _tone(57600, 2, 192000), 192000)
    wav("rate7k.wav", _tone(2100, 2, 7000), 7000)
    wav("rate384k.wav", _tone(9600, 1, 384000), 384000)
    wav("ch3.wav", _tone(4800, 3, 48000), 48000)
    wav("ch9.wav", _tone(4800, 9, 48000), 48000)
    wav("ok.flac", _tone(14400, 2, 44100), 44100)
    wav("ok.ogg", _tone(14400, 2, 44100), 44100, subtype="VORBIS")
    wav("ok.mp3", _tone(14400, 2, 44100), 44100, subtype="MPEG_LAYER_III")
    wav("ok.aiff", _tone(14400, 2, 44100), 44100)
    x = rng.standard_normal((14400, 2)) * 0.1
    x[100:110] = np.inf
    x[200] = np.nan
    wav("nonfinite.wav", x, 48000, subtype="FLOAT")
    wav("huge.wav", np.full((4800, 2), 1e300), 48000, subtype="DOUBLE")
    wav("denormal.wav", np.full((4800, 2), 1e-310), 48000, subtype="DOUBLE")
    wav("silent.wav", np.zeros((14400, 2)), 48000)
    wav("clipped.wav", np.clip(_tone(14400, 2, 48000, 3.0), -1, 1), 48000)
    wav("one_frame.wav", np.zeros((1, 2)), 48000)
    wav("long.wav", rng.standard_normal((48000 * 30, 2)) * 0.1, 48000)  # long enough for a signal mid-run

    def raw(name, data: bytes):
        p = os.path.join(folder, name)
        with open(p, "wb") as fh:
            fh.write(data)
        paths[name.replace(".", "_")] = p
        return p

    good = open(paths["ok"], "rb").read()
    flac = open(paths["ok_flac"], "rb").read()
    mp3 = open(paths["ok_mp3"], "rb").read()
    raw("empty.wav", b"")
    raw("header_only.wav", good[:44])
    raw("truncated.wav", good[:len(good) // 3])
    lying = bytearray(good)
    lying[40:44] = (10 ** 9).to_bytes(4, "little")  # a data chunk far longer than the file
    raw("lying.wav", bytes(lying))
    raw("truncated.flac", flac[:len(flac) // 3])
    raw("truncated.mp3", mp3[:len(mp3) // 2] + bytes(3000))
    raw("garbage.wav", rng.bytes(20000))
    raw("garbage.mp3", rng.bytes(20000))
    raw("garbage.flac", b"fLaC" + rng.bytes(5000))
    raw("text.wav", b"this is not audio\n" * 100)
    raw("zeros.ogg", bytes(4096))
    os.mkdir(os.path.join(folder, "a_folder.wav"))
    paths["folder"] = os.path.join(folder, "a_folder.wav")
    os.mkfifo(os.path.join(folder, "fifo.wav"))
    paths["fifo"] = os.path.join(folder, "fifo.wav")
    os.symlink(os.path.join(folder, "nowhere.wav"), os.path.join(folder, "dangling.wav"))
    paths["dangling"] = os.path.join(folder, "dangling.wav")
    odd = os.path.join(folder, os.fsdecode(b"n\xff\xfeme.wav"))
    shutil.copy(paths["ok"], odd)
    paths["non_utf8"] = odd
    spaced = os.path.join(folder, "with space\nand newline.wav")
    shutil.copy(paths["ok"], spaced)
    paths["spaces"] = spaced
    paths["missing"] = os.path.join(folder, "missing.wav")
    return paths


def make_presets(folder: str) -> dict:
    """Malformed and valid preset/config files: {kind: path}."""
    items = {
        "good.toml": '[eq.3]\ngain_db = 2.5\n[comp]\nratio = 3\n',
        "bad_syntax.toml": "[eq.3\ngain_db = = 2\n",
        "unknown_key.toml": '"eq.9.gain_db" = 1\n',
        "long_key.toml": '"' + "k" * 200000 + '" = 1\n',
        "out_of_range.toml": '"eq.3.gain_db" = 99\n',
        "bool_for_number.toml": '"eq.3.gain_db" = true\n',
        "half_bool.toml": "[comp]\nrms = 0.5\n",
        "string_value.toml": '"comp.ratio" = "three"\n',
        "nan_value.toml": '"comp.ratio" = nan\n',
        "inf_value.toml": '"comp.ratio" = inf\n',
        "big_int.toml": '"comp.ratio" = ' + "9" * 5000 + "\n",
        "deep_array.toml": "x = " + "[" * 3000 + "]" * 3000 + "\n",
        "deep_inline.toml": "x = " + "{a = " * 500 + "1" + "}" * 500 + "\n",
        "dotted_parts.toml": "a" + ".b" * 20000 + " = 1\n",
        "many_keys.toml": "".join(f"k{i} = 1\n" for i in range(30000)),
        "latin1.toml": "description = 'caf\xe9'\n",
        "empty.toml": "",
        "array_value.toml": '"comp.ratio" = [1, 2]\n',
        "table_value.toml": "[comp.ratio]\nx = 1\n",
        "cfg_wrong_type.toml": 'blocksize = "big"\n',
        "cfg_seconds_zero.toml": "seconds = 0\n",
        "cfg_unknown.toml": "bogus = 1\n",
        "cfg_set_bad.toml": "[set]\n\"eq.3.gain_db\" = 99\n",
        "cfg_channels.toml": "channels = 5\n",
        "cfg_port.toml": "osc_port = 70000\n",
    }
    out = {}
    for name, text in items.items():
        p = os.path.join(folder, name)
        with open(p, "wb") as fh:
            fh.write(text.encode("latin-1") if name == "latin1.toml" else text.encode())
        out[name[:-5]] = p
    return out


# -- option pools -------------------------------------------------------------------------

SET_VALUES = ["eq.3.gain_db=2.5", "eq.3.gain_db=99", "eq.3.gain_db=nan", "eq.3.gain_db=inf", "eq.3.gain_db=",
              "eq.3.gain_db", "=2", "eq.99.gain_db=1", "comp.rms=0.5", "comp.rms=on", "bypass=2",
              "comp.ratio=1e309", "comp.ratio=-0", "x" * 5000 + "=1", "eq.3.gain_db=" + "9" * 5000,
              "limiter.ceiling_dbtp=0", "width.amount=0", "loudness.auto=1", "ai.enabled=1", "input.gain_db=24"]
PRESET_NAMES = ["streaming", "club", "", "nope", "../../etc/passwd", "/dev/null", "/"]


def chain_options(rng: random.Random, presets: dict) -> list:
    opts = []
    for _ in range(rng.randint(0, 2)):
        opts += ["--set", rng.choice(SET_VALUES)]
    r = rng.random()
    if r < 0.25:
        opts += ["--preset", rng.choice(list(presets.values()))]
    elif r < 0.4:
        opts += ["--preset", rng.choice(PRESET_NAMES)]
    return opts


def render_options(rng, presets):
    opts = chain_options(rng, presets)
    pool = [["--blocksize", rng.choice(["0", "-5", "1", "64", "999999999", "abc", "1e3"])],
            ["--subtype", rng.choice(["PCM_16", "FLOAT", "PCM_8", ""])], ["--two-pass"], ["--json"],
            ["--ai"], ["--models", rng.choice(["/nonexistent", "/dev/null", "."])], ["--bogus-flag"]]
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def analyze_options(rng, presets):
    pool = [["--json"], ["--target-lufs", rng.choice(["-14", "nan", "inf", "99", "x"])],
            ["--plot", rng.choice(["p.png", "p.jpg", "missing/p.png", "a_folder.wav"])]]
    opts = []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def serve_options(rng, presets):
    opts = chain_options(rng, presets)
    pool = [["--seconds", rng.choice(["nan", "0", "-1", "inf", "1e309", "0.2", "x"])],
            ["--blocksize", rng.choice(["17", "64", "100000", "-1"])],
            ["--config", rng.choice([v for k, v in presets.items() if k.startswith("cfg_")] + [presets["good"]])],
            ["--subtype", rng.choice(["PCM_16", "FLOAT"])], ["--status-interval", rng.choice(["0", "-1", "nan"])]]
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def render_argv(inp, out, opts):
    return ["render", inp, out] + opts


def analyze_argv(inp, out, opts):
    return ["analyze", inp] + opts


def serve_argv(inp, out, opts):
    return ["serve", "--backend", "file", "--fast", "--no-surface", "--models", "off", "--status-interval", "0",
            "--input", inp, "--output", out] + opts


def master_argv(inp, out, opts):
    return ["master", inp, out] + opts


def master_options(rng, presets):
    pool = [["--reference", rng.choice(["ok.wav", "garbage.wav", "missing.wav", "a_folder.wav", "mono.wav"])],
            ["--amount", rng.choice(["0", "1", "0.5", "2", "nan", "-1"])],
            ["--match", rng.choice(["eq", "loudness,width", "bogus", ""])], ["--json"],
            ["--save-preset", rng.choice(["p.toml", "p.txt", "missing/p.toml"])]]
    opts = ["--reference", rng.choice(["ok.wav", "mono.wav"])] if rng.random() < 0.7 else []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def transcribe_argv(inp, out, opts):
    return ["transcribe", inp, os.path.splitext(out)[0] + ".mid" if rng_mid(out) else out] + opts


def rng_mid(out: str) -> bool:
    """Most cases give the MIDI output its own extension; the rest keep the audio one."""
    return zlib.crc32(out.encode("utf-8", "surrogateescape")) % 4 != 0


def transcribe_options(rng, presets):
    pool = [["--stem-type", rng.choice(["auto", "pitched", "drums", "bass", "x"])],
            ["--program", rng.choice(["0", "127", "128", "-1", "x"])],
            ["--onset-threshold", rng.choice(["0.5", "2", "nan"])], ["--min-note-ms", rng.choice(["0", "50", "1e9"])],
            ["--min-hz", rng.choice(["30", "0", "-5"])], ["--json"]]
    opts = []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def profile_argv(inp, out, opts):
    return ["profile", inp] + opts


def profile_options(rng, presets):
    pool = [["--json"], ["--plot", rng.choice(["p.png", "p.jpg", "missing/p.png"])],
            ["--stems", rng.choice(["a_folder.wav", "missing", "."])]]
    opts = []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def qc_argv(inp, out, opts):
    return ["qc", inp] + opts


def qc_options(rng, presets):
    opts = [rng.choice(["ok.wav", "mono.wav", "garbage.wav", "missing.wav", "silent.wav"])]
    if rng.random() < 0.5:
        opts += ["--json"]
    return opts


def separate_argv(inp, out, opts):
    return ["separate", inp, os.path.splitext(out)[0] + "_stems"] + opts


def separate_options(rng, presets):
    pool = [["--stems", rng.choice(["drums,bass", "vocals", "bogus", ""])], ["--six"],
            ["--format", rng.choice(["wav", "flac"])], ["--model", rng.choice(["dsp", "/nonexistent", "/dev/null"])],
            ["--json"], ["--force"]]
    opts = ["--model", "dsp"] if rng.random() < 0.5 else []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def batch_argv(inp, out, opts):
    sub = opts[0] if opts else "analyze"
    rest = opts[1:]
    workers = [] if "--workers" in rest else ["--workers", "1"]
    return ["batch", sub, inp, "--out", out] + workers + rest


def batch_options(rng, presets):
    sub = rng.choice(["analyze", "render", "profile"])
    pool = [["--workers", rng.choice(["1", "0", "x"])], ["--retries", rng.choice(["0", "1", "-1", "x"])],
            ["--timeout", rng.choice(["30", "0", "nan", "-1", "0.001"])],
            ["--memory-limit", rng.choice(["500MB", "0", "lots", "-5"])], ["--json"],
            ["--scheduler", rng.choice(["tcp://127.0.0.1:1", "nonsense"])]]
    if sub == "render":
        pool.append(["--preset", rng.choice(list(presets.values()) + ["club", "nosuch"])])
    opts = [sub]
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def catalog_argv(inp, out, opts):
    action = opts[0] if opts else "add"
    rest = opts[1:]
    if action == "add":
        return ["catalog", "--db", out, "add", inp] + rest
    if action == "search":
        return ["catalog", "--db", out, "search", "--like", inp] + rest
    return ["catalog", "--db", out, action] + rest


def catalog_options(rng, presets):
    action = rng.choice(["add"] * 5 + ["search", "stats", "export"])
    if action == "export":
        return [action, rng.choice(["--csv", "--parquet"]), rng.choice(["e.csv", "missing/e.csv", "."])]
    if action != "add":
        return [action] + (["--json"] if rng.random() < 0.5 else [])
    pool = [["--threshold-db", rng.choice(["-30", "-60", "0", "nan", "x"])],
            ["--min-region-s", rng.choice(["0.5", "0", "-1", "1e9"])], ["--min-gap-s", rng.choice(["0.2", "inf"])],
            ["--plugins", rng.choice(["loudness", "loudness,model", "profile", "bogus", ""])],
            ["--timeout-s", rng.choice(["30", "0", "0.001"])], ["--json"]]
    opts = [action]
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def normalize_argv(inp, out, opts):
    return ["normalize", inp, "--out", os.path.splitext(out)[0] + "_norm"] + opts


def normalize_options(rng, presets):
    pool = [["--lufs", rng.choice(["-18", "-5", "-40", "-70", "nan", "x"])],
            ["--ceiling", rng.choice(["-1", "0", "-20", "3", "inf"])], ["--on-peak", rng.choice(["limit", "refuse", "x"])],
            ["--subtype", rng.choice(["PCM_16", "FLOAT", "PCM_8"])], ["--json"]]
    opts = []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def fingerprint_argv(inp, out, opts):
    base = os.path.splitext(out)[0]
    table = out if not rng_mid(out) else base + (".parquet" if zlib.crc32(out.encode("utf-8", "surrogateescape")) % 2 else ".csv")
    return ["fingerprint", inp, "--out", table] + opts


def fingerprint_options(rng, presets):
    pool = [["--regions"], ["--threshold-db", rng.choice(["-30", "-80", "0", "nan"])],
            ["--min-region-s", rng.choice(["0.5", "0", "1e9"])], ["--min-gap-s", rng.choice(["0.2", "-1"])], ["--json"]]
    opts = []
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


def reconstruct_argv(inp, out, opts):
    return ["reconstruct", inp, os.path.splitext(out)[0] + "_rebuild"] + opts


def reconstruct_options(rng, presets):
    pool = [["--target-score", rng.choice(["85", "0", "101", "nan"])], ["--separator", rng.choice(["dsp", "/nonexistent"])],
            ["--llm-url", rng.choice(["http://127.0.0.1:1", "not a url"])], ["--json"], ["--force"]]
    opts = ["--max-rounds", rng.choice(["1", "1", "0", "x"])]
    for o in rng.sample(pool, rng.randint(0, 2)):
        opts += o
    return opts


# name: (argv builder, option generator, the CLI module that must be registered)
ALL_COMMANDS = {
    "render": (render_argv, render_options, "cmd_render"),
    "analyze": (analyze_argv, analyze_options, "cmd_analyze"),
    "serve-file": (serve_argv, serve_options, "cmd_serve"),
    "master": (master_argv, master_options, "cmd_master"),
    "transcribe": (transcribe_argv, transcribe_options, "cmd_transcribe"),
    "profile": (profile_argv, profile_options, "cmd_profile"),
    "qc": (qc_argv, qc_options, "cmd_qc"),
    "separate": (separate_argv, separate_options, "cmd_separate"),
    "catalog": (catalog_argv, catalog_options, "cmd_catalog"),
    "batch": (batch_argv, batch_options, "cmd_batch"),
    "normalize": (normalize_argv, normalize_options, "cmd_fingerprint"),
    "fingerprint": (fingerprint_argv, fingerprint_options, "cmd_fingerprint"),
    "reconstruct": (reconstruct_argv, reconstruct_options, "cmd_reconstruct"),
}


def _registered() -> dict:
    from auracore.control.cli import COMMAND_MODULES

    return {k: v for k, v in ALL_COMMANDS.items() if v[2] in COMMAND_MODULES}


COMMANDS = _registered()

OUTPUT_KINDS = ["new", "new", "new", "same", "symlink_to_input", "hardlink_to_input", "dot_prefix",
                "missing_folder", "folder", "no_extension", "unknown_extension", "too_long", "fifo",
                "dev_full", "existing", "non_utf8", "read_only", "full_disk"]
SIGNALS = [None] * 6 + [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@dataclass
class Case:
    index: int
    command: str
    input_kind: str
    output_kind: str
    argv: list
    signal: int | None
    signal_delay_s: float


@dataclass
class Result:
    case: Case
    exit_code: int
    stderr: str
    problems: list = field(default_factory=list)
    elapsed_s: float = 0.0
    max_rss_mb: float = 0.0


def _output_path(kind: str, workdir: str, inp: str, ext: str, mounts: dict) -> str:
    if kind == "same":
        return inp
    if kind == "symlink_to_input":
        p = os.path.join(workdir, "link" + ext)
        os.symlink(inp, p)
        return p
    if kind == "hardlink_to_input":
        p = os.path.join(workdir, "hard" + ext)
        try:
            os.link(inp, p)
        except OSError:
            return inp
        return p
    if kind == "dot_prefix":
        return "./" + os.path.relpath(inp, workdir) if os.path.dirname(inp) == workdir else inp
    if kind == "missing_folder":
        return os.path.join(workdir, "no", "such", "out" + ext)
    if kind == "folder":
        p = os.path.join(workdir, "dir_out" + ext)
        os.mkdir(p)
        return p
    if kind == "no_extension":
        return os.path.join(workdir, "out")
    if kind == "unknown_extension":
        return os.path.join(workdir, "out.xyz")
    if kind == "too_long":
        return os.path.join(workdir, "o" * 300 + ext)
    if kind == "fifo":
        p = os.path.join(workdir, "out_fifo" + ext)
        os.mkfifo(p)
        return p
    if kind == "dev_full":
        return "/dev/full"
    if kind == "existing":
        p = os.path.join(workdir, "existing" + ext)
        with open(p, "wb") as fh:
            fh.write(b"precious")
        return p
    if kind == "non_utf8":
        return os.path.join(workdir, os.fsdecode(b"o\xffut" + ext.encode()))
    if kind in ("read_only", "full_disk") and mounts.get(kind):
        return os.path.join(mounts[kind], f"out{os.getpid()}{ext}")
    return os.path.join(workdir, "out" + ext)


def generate(n: int, seed: int, inputs: dict, presets: dict, mounts: dict, commands=None) -> list:
    """n cases, the same for the same seed: a command, an input, an output, options, a signal."""
    rng = random.Random(seed)
    names = sorted(commands or COMMANDS)
    cases = []
    for i in range(n):
        command = names[i % len(names)]
        sig = rng.choice(SIGNALS)
        # signals go mostly to runs long enough to be stopped part-way
        input_kind = "long" if sig is not None and rng.random() < 0.7 else rng.choice(sorted(inputs))
        output_kind = rng.choice(OUTPUT_KINDS)
        cases.append(Case(i, command, input_kind, output_kind, [], sig, rng.uniform(0.0, 0.3)))
        cases[-1].argv = COMMANDS[command][1](rng, presets)  # options now; paths bound at run time
    return cases


def _hash_tree(paths) -> dict:
    out = {}
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            with open(p, "rb") as fh:
                out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _listing(folder: str) -> set:
    found = set()
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            found.add(os.path.join(root, name))
    return found


def _run_child(argv: list, workdir: str, out_path: str, err_path: str) -> None:
    """In the forked child: the real entry point with stdout/stderr to files; never returns."""
    code = 99
    try:
        os.chdir(workdir)
        for fd, path in ((1, out_path), (2, err_path)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True,
                                      errors="backslashreplace")
        # the stop signals stay blocked (as the parent forked us) until main installs its
        # handlers and unblocks them inside its try: an early signal is then a clean stop
        import warnings

        warnings.simplefilter("default")  # a warning must show, to be caught
        from auracore.control.entry import main

        code = main(argv)
    except SystemExit as exc:  # argparse's exit
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:
        traceback.print_exc()
        code = 98
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 97)


def run_case(case: Case, inputs: dict, scratch: str, mounts: dict) -> Result:
    """Run one case in a fresh folder (inputs linked in by copy) and check the contract."""
    workdir = tempfile.mkdtemp(prefix=f"case{case.index}-", dir=scratch)
    src = inputs[case.input_kind]
    # a private copy of the input (the same kind of object: file, folder, FIFO, link)
    local = os.path.join(workdir, os.path.basename(src))
    if os.path.islink(src):
        os.symlink(os.readlink(src), local)
    elif os.path.isdir(src):
        os.mkdir(local)
    elif os.path.lexists(src) and stat.S_ISFIFO(os.lstat(src).st_mode):
        os.mkfifo(local)
    elif os.path.exists(src):
        shutil.copy(src, local)
    for extra in ("ok", "mono"):  # what the options name as references and second inputs
        if not os.path.lexists(os.path.join(workdir, extra + ".wav")):
            shutil.copy(inputs[extra], os.path.join(workdir, extra + ".wav"))
    ext = os.path.splitext(src)[1] or ".wav"
    if ext not in (".wav", ".flac", ".ogg", ".mp3", ".aiff"):
        ext = ".wav"
    out = _output_path(case.output_kind, workdir, local, ext, mounts)
    build, _, _ = COMMANDS[case.command]
    argv = build(local, out, list(case.argv))
    before = _hash_tree(_listing(workdir))
    listing_before = _listing(workdir)
    mount_dirs = [d for d in mounts.values() if d]
    mount_before = set().union(*[_listing(d) for d in mount_dirs]) if mount_dirs else set()
    out_file, err_file = os.path.join(scratch, f"{case.index}.out"), os.path.join(scratch, f"{case.index}.err")
    for p in (out_file, err_file):
        open(p, "wb").close()
    t0 = time.monotonic()
    stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # held until the child is ready for them
    pid = os.fork()
    if pid == 0:
        if case.output_kind == "full_disk" and not mounts.get("full_disk"):
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        _run_child(argv, workdir, out_file, err_file)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    sent = case.signal is None
    status = rusage = None
    while True:
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        now = time.monotonic() - t0
        if not sent and now >= case.signal_delay_s:
            os.kill(pid, case.signal)
            sent = True
        if now > CASE_TIMEOUT_S:
            os.kill(pid, signal.SIGKILL)
            _, status, rusage = os.wait4(pid, 0)
            break
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    try:
        with open(err_file, "rb") as fh:
            stderr = fh.read().decode("utf-8", "backslashreplace")
    except FileNotFoundError:  # seen twice in 3000-case runs: said, not a crash of the harness
        stderr = ""
    res = Result(case, code, stderr, elapsed_s=elapsed, max_rss_mb=rusage.ru_maxrss / 1024.0)
    if not os.path.exists(err_file):
        res.problems.append("the case's stderr file (outside its folder) was removed while it ran")
    res.case.argv = argv
    if elapsed > CASE_TIMEOUT_S:
        res.problems.append(f"hung past {CASE_TIMEOUT_S:.0f} s")
    if "Traceback" in stderr:
        res.problems.append("a Python traceback on stderr")
    if re.search(r"\w+Warning: ", stderr):
        res.problems.append("a Python warning on stderr")
    if code not in ALLOWED_EXITS:
        res.problems.append(f"exit code {code} is not in the documented set")
    if code in (1, 2) and not stderr.strip():
        res.problems.append("a failure with nothing on stderr")
    lines = stderr.strip().splitlines()
    if code in (1, 2) and len(lines) > 1 and case.command in ("render", "analyze"):
        res.problems.append(f"{len(lines)} lines on stderr for one failure")
    strangers = [ln for ln in lines if not ln.startswith("auracore")]
    if strangers:  # every line is the program's own (no library chatter, no usage text)
        res.problems.append(f"stderr lines not from auracore: {strangers[:2]}")
    after = _hash_tree(before)
    for p, h in before.items():
        if after.get(p) != h and not (code == 0 and p == out):
            res.problems.append(f"{os.path.basename(p)} was modified")
    listing_after = _listing(workdir)
    for d in mount_dirs:
        listing_after |= _listing(d)
    new = (listing_after - listing_before - mount_before)
    leftovers = [p for p in new if os.path.basename(p).startswith(TEMP_PREFIX)]
    if leftovers:
        res.problems.append(f"temporary files left: {[os.path.basename(p) for p in leftovers]}")
    if code != 0:
        partial = [p for p in new if p not in leftovers]
        if partial:
            res.problems.append(f"new files after a failure: {[os.path.basename(p) for p in partial]}")
    if res.max_rss_mb > MAX_RSS_MB:
        res.problems.append(f"peak memory {res.max_rss_mb:.0f} MB over {MAX_RSS_MB} MB")
    for d in mount_dirs:  # leave the shared mounts empty for the next case
        for p in _listing(d) - mount_before:
            try:
                os.unlink(p)
            except OSError:
                pass
    shutil.rmtree(workdir, ignore_errors=True)
    for p in (out_file, err_file):
        if os.path.exists(p):
            os.unlink(p)
    return res


def _try_mounts(scratch: str) -> dict:
    """A 256 KiB tmpfs (a full disk) and a read-only bind mount, where this process may mount
    (root on Linux); else the full disk is a file-size limit and read-only is left out."""
    mounts = {"full_disk": None, "read_only": None}
    if os.geteuid() != 0 or not shutil.which("mount"):
        return mounts
    full = os.path.join(scratch, "full")
    ro = os.path.join(scratch, "ro")
    os.mkdir(full)
    os.mkdir(ro)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", full], capture_output=True).returncode == 0:
        with open(os.path.join(full, "filler"), "wb") as fh:  # fill it: the next write fails
            try:
                fh.write(b"\0" * (256 * 1024))
            except OSError:
                pass
        mounts["full_disk"] = full
    if subprocess.run(["mount", "-o", "bind,ro", ro, ro], capture_output=True).returncode == 0:
        mounts["read_only"] = ro
    return mounts


def _unmount(mounts: dict) -> None:
    for d in mounts.values():
        if d:
            subprocess.run(["umount", "-l", d], capture_output=True)


def warm_up(inputs: dict, scratch: str, commands) -> None:
    """Run every selected command once on a good input in this parent, so every kernel it
    calls is compiled or loaded here and the forked children start warm (a child that loads
    a Numba cache of its own while others write it can crash)."""
    from auracore.control.cli import main

    devnull = open(os.devnull, "w")
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = devnull
    warm = os.path.join(scratch, "warm")
    os.mkdir(warm)
    try:
        for name in sorted(commands):
            if name == "batch":  # a Dask cluster run here would leave its threads' locks to the forked children
                continue
            build, options, _ = COMMANDS[name]
            out = os.path.join(warm, f"{name}.wav")
            opts = {"master": ["--reference", inputs["mono"]], "qc": [inputs["mono"]]}.get(name, [])
            # the long input too: its paths (a tempo curve, more sections) compile kernels of
            # their own, and a signal that lands in a child compiling one can crash it
            for kind in ("ok", "long"):
                try:
                    main(build(inputs[kind], out, opts))
                except SystemExit:  # a command whose template needs options: its parser ran
                    pass
    finally:
        sys.stdout, sys.stderr = saved
        devnull.close()
    shutil.rmtree(warm, ignore_errors=True)
    # children start with the handlers the program installs first (the daemon's must not linger)
    from auracore.control.entry import install_signal_handlers

    install_signal_handlers()


def run_fuzz(n: int, seed: int, scratch: str | None = None, commands=None) -> dict:
    """Generate and run n cases; a summary with counts and every failing case."""
    own = scratch is None
    scratch = scratch or tempfile.mkdtemp(prefix="auracore-fuzz-")
    inputs_dir = os.path.join(scratch, "inputs")
    os.mkdir(inputs_dir)
    inputs = make_inputs(inputs_dir)
    presets = make_presets(inputs_dir)
    mounts = _try_mounts(scratch)
    try:
        warm_up(inputs, scratch, commands or COMMANDS)
        input_hashes = _hash_tree(_listing(inputs_dir))
        cases = generate(n, seed, inputs, presets, mounts, commands)
        results = [run_case(c, inputs, scratch, mounts) for c in cases]
        if _hash_tree(_listing(inputs_dir)) != input_hashes:
            raise AssertionError("the shared input zoo was modified")
    finally:
        _unmount(mounts)
        if own:
            shutil.rmtree(scratch, ignore_errors=True)
    failures = [r for r in results if r.problems]
    exits = {}
    for r in results:
        exits[r.exit_code] = exits.get(r.exit_code, 0) + 1
    by_command = {}
    for r in results:
        by_command[r.case.command] = by_command.get(r.case.command, 0) + 1
    return {
        "cases": len(results), "seed": seed, "failures": len(failures),
        "exit_codes": {str(k): v for k, v in sorted(exits.items())}, "by_command": by_command,
        "signals_sent": sum(1 for r in results if r.case.signal is not None),
        "max_rss_mb": round(max(r.max_rss_mb for r in results), 1),
        "slowest_s": round(max(r.elapsed_s for r in results), 2),
        "mounts": {k: bool(v) for k, v in mounts.items()},
        "failing": [{"argv": [os.path.basename(a) if os.sep in a else a[:80] for a in r.case.argv],
                     "input": r.case.input_kind, "output": r.case.output_kind,
                     "signal": r.case.signal, "exit": r.exit_code, "problems": r.problems,
                     "stderr": r.stderr[-600:]} for r in failures],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description="Fuzz the auracore command line (see the module docstring).")
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--commands", help="comma-separated command names (default: every registered one)")
    args = ap.parse_args()
    summary = run_fuzz(args.cases, args.seed, commands=args.commands.split(",") if args.commands else None)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['cases']} cases (seed {summary['seed']}), {summary['failures']} failing; "
              f"exit codes {summary['exit_codes']}; by command {summary['by_command']}; "
              f"signals sent {summary['signals_sent']}; peak RSS {summary['max_rss_mb']} MB; "
              f"mounts {summary['mounts']}")
        for f in summary["failing"][:30]:
            print(json.dumps(f))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
