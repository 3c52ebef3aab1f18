"""The `serve` and `devices` commands: run the live daemon; list audio devices."""

import argparse
import dataclasses
import math
import os
import sys

from auracore.errors import ConfigError, PresetError, clip_text
from auracore.kernels import params as P
from auracore.offline.audio_io import SUBTYPES, save
from auracore.offline.demo import demo_track
from auracore.offline.params import build_params, flatten_table, read_toml

from .cmd_render import chain_options, parse_assignments
from .daemon import Daemon, ServeConfig

RATES = (44100, 48000, 96000)




def add_parsers(sub) -> None:
    p = sub.add_parser(
        "serve", help="run the live mastering daemon",
        description="Master live audio between an audio interface's input and output (PortAudio: ALSA, "
                    "JACK, PulseAudio/PipeWire). Without a sound card, --backend file streams a file through "
                    "the same callback at real-time pace and --backend null runs the clocked loop on a "
                    "generated signal. SIGINT/SIGTERM stop it within a second.")
    p.add_argument("--config", metavar="FILE", help="a TOML file holding any of these options (flags win)")
    p.add_argument("--backend", choices=("portaudio", "file", "null"), help="audio backend (default portaudio)")
    p.add_argument("--device", help="device index or part of its name (see `auracore devices`)")
    p.add_argument("--hostapi", help="host API name or part of it, e.g. JACK, ALSA, Pulse")
    p.add_argument("--samplerate", type=int, choices=RATES, help="sample rate in Hz (default 48000)")
    p.add_argument("--blocksize", type=int, metavar="FRAMES",
                   help="frames per callback, 64 to 2048 (default 1024; 0 = the host's own period)")
    p.add_argument("--channels", type=int, choices=(1, 2), help="channels in and out (default 2)")
    p.add_argument("--callback", choices=("native", "python"),
                   help="native: a compiled callback that never takes the GIL (default); python: for comparison")
    p.add_argument("--client-name", help="the JACK client name (default auracore)")
    p.add_argument("--input", metavar="IN", help="file backend: the file to play through the engine")
    p.add_argument("--output", metavar="OUT", help="file backend: where to write the result (atomically)")
    p.add_argument("--subtype", choices=SUBTYPES, help="file backend: output sample format (default PCM_24)")
    p.add_argument("--fast", action="store_true", help="file backend: do not pace at real time")
    p.add_argument("--signal", choices=("tone", "silence"), help="null backend: the generated input (default tone)")
    p.add_argument("--seconds", type=positive_seconds, help="stop after this many seconds (default: run until stopped)")
    p.add_argument("--models", metavar="DIR", help="model folder, or 'off' for manual mode (default: shipped models)")
    p.add_argument("--status-interval", type=nonnegative_seconds, metavar="S",
                   help="seconds between status lines (default 10; 0 = off)")
    p.add_argument("--stress-gil", action="store_true",
                   help="diagnostic: run a pure-Python busy thread beside the audio (the native callback does "
                        "not need the GIL, so it should not glitch)")
    p.add_argument("--no-surface", action="store_true", help="run without the OSC and WebSocket control surface")
    p.add_argument("--bind", metavar="ADDR", help="control surface address (default 127.0.0.1; others need --token)")
    p.add_argument("--osc-port", type=int, metavar="PORT", help="OSC UDP port (default 9000; 0: any free port)")
    p.add_argument("--ws-port", type=int, metavar="PORT",
                   help="WebSocket and meter page TCP port (default 8765; 0: any free port)")
    p.add_argument("--token", metavar="SECRET", help="WebSocket clients must present it (?token= or a Bearer header)")
    p.add_argument("--osc-allow", action="append", metavar="NET",
                   help="accept OSC from this address or network besides loopback, e.g. 192.168.1.0/24 (repeatable)")
    p.add_argument("--preset", metavar="NAME", help="a shipped preset or a path to a TOML preset")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="ID=VALUE",
                   help="set a parameter, e.g. comp.ratio=3 (repeatable)")
    p.set_defaults(func=run_serve)

    demo = sub.add_parser(
        "demo", help="start the daemon: on the default audio device, else on a generated demo track",
        description="Start the live daemon with the streaming preset and its control surface (meter page and "
                    "OSC). With a duplex audio device it masters the device's input until stopped; without one "
                    "it generates a 20 s music-like track (demo-in.wav) and streams it through the same engine "
                    "at real-time pace into demo-out.wav, then prints the output's loudness.")
    chain_options(demo, default_preset="streaming")
    demo.add_argument("--out-dir", default=".", help="where demo-in.wav and demo-out.wav go (default: here)")
    demo.add_argument("--ws-port", type=int, default=8765, metavar="PORT", help="meter page port (default 8765)")
    demo.add_argument("--osc-port", type=int, default=9000, metavar="PORT", help="OSC port (default 9000)")
    demo.set_defaults(func=run_demo)

    d = sub.add_parser("devices", help="list audio devices and host APIs",
                       description="List every PortAudio device with its host API, channel counts and default "
                                   "rate. Start JACK (or your audio server) first: PortAudio only sees servers "
                                   "that are running.")
    d.set_defaults(func=run_devices)


def positive_seconds(text: str) -> float:
    """argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{clip_text(text, 40)}' is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{clip_text(text, 40)}: give a positive number of seconds")
    return value


def nonnegative_seconds(text: str) -> float:
    """argparse type: 0 or a finite positive number of seconds."""
    return 0.0 if text.strip() in ("0", "0.0") else positive_seconds(text)


_FLAG_TO_FIELD = {"backend": "backend", "device": "device", "hostapi": "hostapi", "samplerate": "samplerate",
                  "blocksize": "blocksize", "channels": "channels", "callback": "callback",
                  "client_name": "client_name", "input": "input", "output": "output", "subtype": "subtype",
                  "signal": "signal", "seconds": "seconds", "models": "models",
                  "status_interval": "status_interval", "bind": "bind", "osc_port": "osc_port",
                  "ws_port": "ws_port", "token": "token", "osc_allow": "osc_allow"}


def load_config(args) -> tuple[ServeConfig, str | None, dict[str, float]]:
    """Merge the config file (if any) and the flags: (config, preset, validated {id: value}
    of the config's [set] table and the --set flags)."""
    values = {}
    preset = None
    config_values = {}  # [set] in the config file, validated as a preset's values are
    if args.config is not None:
        try:
            table = read_toml(args.config, "config file")
        except PresetError as exc:
            raise ConfigError(str(exc)) from None
        fields = {f.name for f in dataclasses.fields(ServeConfig)}
        for key, value in table.items():
            key = key.replace("-", "_")
            if key == "preset":
                if not isinstance(value, str):
                    raise ConfigError(f"config file {args.config}: preset = {clip_text(repr(value), 40)}: expected a string")
                preset = value
            elif key == "set":
                if not isinstance(value, dict):
                    raise ConfigError(f"config file {args.config}: [set] must be a table of parameter id = value")
                for k, v in flatten_table(value).items():
                    config_values[k] = v
            elif key in fields:
                values[key] = value
            else:
                raise ConfigError(f"config file {args.config}: unknown option '{clip_text(key, 40)}'")
    for flag, field in _FLAG_TO_FIELD.items():
        v = getattr(args, flag, None)
        if v is not None:
            values[field] = v
    if args.fast:
        values["realtime"] = False
    if args.stress_gil:
        values["stress_gil"] = True
    if args.no_surface:
        values["surface"] = False
    preset = args.preset if args.preset is not None else preset
    assignments = {}
    for pid, value in config_values.items():
        try:
            assignments[pid] = P.check_in_range(pid, value)
        except P.ParamError as exc:
            raise ConfigError(f"config file {args.config}: [set] {exc}") from None
    assignments.update(parse_assignments(args.assignments))
    cfg = ServeConfig(**values)
    cfg.validate()
    if cfg.surface:
        from .surface import SurfaceError, check_surface_config  # here: other commands need no servers

        try:
            check_surface_config(cfg)
        except SurfaceError as exc:
            raise ConfigError(str(exc)) from None
    return cfg, preset, assignments


def _run_daemon(cfg: ServeConfig, params) -> tuple[int, Daemon]:
    from .surface import SurfaceError

    daemon = Daemon(cfg, params)
    daemon.install_signal_handlers()
    try:
        daemon.start()
        return daemon.run(), daemon
    except SurfaceError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        daemon.close()


def run_serve(args) -> int:
    cfg, preset, assignments = load_config(args)
    return _run_daemon(cfg, build_params(preset, assignments))[0]


def _has_duplex_device() -> bool:
    from auracore.realtime import portaudio as pa

    try:
        pa.reinitialise()
        pa.find_device(None, None, 2)
    except pa.AudioDeviceError:
        return False
    return True


def run_demo(args) -> int:
    params = build_params(args.preset, parse_assignments(args.assignments))
    common = dict(ws_port=args.ws_port, osc_port=args.osc_port, status_interval=5.0)
    if _has_duplex_device():
        return _run_daemon(ServeConfig(**common), params)[0]
    os.makedirs(args.out_dir, exist_ok=True)
    src = os.path.join(args.out_dir, "demo-in.wav")
    out = os.path.join(args.out_dir, "demo-out.wav")
    save(src, demo_track(), 48000, subtype="PCM_24")
    print("auracore demo: no audio device here: streaming a generated 20 s track through the live engine "
          "(file backend, real-time pace); open the meter page while it plays", file=sys.stderr)
    code, daemon = _run_daemon(ServeConfig(backend="file", input=src, output=out, **common), params)
    m = daemon.engine.meter
    peak = max(m.true_peak_dbtp)
    print(f"{src} -> {out}")
    print(f"  output integrated {m.integrated_lufs:7.2f} LUFS (target {params['loudness.target_lufs']:.1f}; the live "
          f"loudness follower converges over its first seconds)")
    print(f"  output true peak  {peak:7.2f} dBTP, loudness range {m.loudness_range_lu:.1f} LU")
    return code


def run_devices(args) -> int:
    from auracore.realtime import portaudio as pa

    pa.reinitialise()
    devices = pa.list_devices()
    if not devices:
        print("auracore devices: no audio devices (no sound card, and no audio server such as JACK running);"
              " use `auracore serve --backend file` or `--backend null`", file=sys.stderr)
        return 1
    print(f"{'#':>3}  {'name':32s} {'host API':28s} {'in':>3} {'out':>3} {'rate':>7}")
    for d in devices:
        print(f"{d['index']:>3}  {d['name'][:32]:32s} {d['hostapi'][:28]:28s} {d['inputs']:>3} {d['outputs']:>3} "
              f"{d['default_samplerate']:>7.0f}")
    return 0

