"""The OSC server: parameter sets, queries, presets and meter subscriptions over UDP.

Every registry parameter has an address, ``/auracore/`` + its id with dots as slashes
(``/auracore/eq/3/gain_db 2.5``). Packets are parsed by python-osc; each packet (a message
or a whole bundle) becomes one change set that the hub posts to the engine in one call,
so a bundle lands on one block boundary. A bundle whose time tag lies in the future waits
for it (a scheduler thread, wall clock as OSC defines time tags) and then lands on the
first block boundary after it; nested bundles with their own tags are change sets of their
own. Replies go back to the sender's address. Malformed packets,
wrong argument types and unknown addresses are logged (at most a line a second per kind)
and answered where an answer makes sense; nothing a sender does raises or reaches the audio.
``osc_markdown()`` generates docs/osc.md.
"""

import heapq
import ipaddress
import itertools
import logging
import os
import socket
import threading
import time

import pythonosc
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from auracore.kernels import params as P

from auracore.offline.params import PresetError

PREFIX = "/auracore/"
ADDRESS_TO_ID = {p.osc_address: p.id for p in P.PARAMS}
MAX_DATAGRAM = 65535
POLL_S = 0.05                     # how often the receive loop looks at its stop flag
SUBSCRIPTION_TTL_S = 60.0         # a subscriber renews within this or is dropped
MAX_SUBSCRIBERS = 16
SUBSCRIBE_DEFAULT_HZ = 10.0
METER_FLOOR_DB = -120.0           # OSC displays get a number for silence, never -inf
MAX_AHEAD_S = 60.0                # a time tag further ahead is refused (a clock mix-up, not a plan)
MAX_SCHEDULED = 256               # bundles waiting for their time tag at most

# (address, arguments, meaning) for every address that is not a parameter
COMMANDS = [
    ("/auracore/get", "[address or id]",
     "reply with `<address> <value>` for that parameter, or a bundle of every parameter"),
    ("/auracore/preset", "name",
     "load a shipped preset: every parameter to its default, then the preset's values, at one block boundary"),
    ("/auracore/ai", "0 or 1", "turn the models' steering off or on (the same as `/auracore/ai/enabled`)"),
    ("/auracore/reset_integrated", "none", "restart integrated loudness, LRA and the true-peak maxima"),
    ("/auracore/meters/subscribe", "port [rate_hz]",
     f"send meters to the sender's host at that UDP port, rate_hz 1 to 30 (default {SUBSCRIBE_DEFAULT_HZ:g}); "
     f"renew within {SUBSCRIPTION_TTL_S:g} s, at most {MAX_SUBSCRIBERS} subscribers"),
    ("/auracore/meters/unsubscribe", "port", "stop sending meters to that port"),
]
REPLIES = [
    ("/auracore/<param path>", "value", "the answer to `/auracore/get`"),
    ("/auracore/clamped", "address value", "a set was out of range and was clamped to value"),
    ("/auracore/error", "message", "what was wrong with a message (unknown address, wrong argument type, ...)"),
    ("/auracore/meters/subscribed", "port rate_hz", "a subscription was accepted"),
]
METERS = [
    ("/auracore/meters/momentary_lufs", "f", "momentary loudness (400 ms), LUFS"),
    ("/auracore/meters/short_term_lufs", "f", "short-term loudness (3 s), LUFS"),
    ("/auracore/meters/integrated_lufs", "f", "integrated loudness since start or reset, LUFS"),
    ("/auracore/meters/true_peak_dbtp", "f per channel", "highest true peak since start or reset, dBTP"),
    ("/auracore/meters/comp_gr_db", "f",
     "largest compressor gain reduction since this subscriber's previous meters (every audio block counts), dB"),
    ("/auracore/meters/limiter_gr_db", "f",
     "largest limiter gain reduction since this subscriber's previous meters (every audio block counts), dB"),
]


class _QuietParser(logging.Filter):
    """Drops python-osc's own warnings about what it cannot parse: it logs one per bad packet on
    the root logger, and a flood must cost one line a second (ours, throttled), not one each."""

    _dir = os.path.dirname(pythonosc.__file__)

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(self._dir)


_QUIET_PARSER = _QuietParser()


class OscServer:
    """UDP OSC endpoint for a Hub. host/port: where to listen (port 0: any free port);
    allow: networks (ipaddress objects) whose non-loopback senders are accepted."""

    def __init__(self, hub, host: str, port: int, allow=()):
        self.hub = hub
        self.allow = tuple(allow)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(POLL_S)
        self.host, self.port = self.sock.getsockname()[:2]
        self.packets = 0                  # datagrams handled, and how many of them did not parse
        self.malformed = 0
        # (host, port) -> [rate_hz, next_due_s, expires_s, comp_gr_db, limiter_gr_db]: the gain
        # reductions are the largest since that subscriber's previous send
        self.subscribers = {}
        self._sub_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="auracore-osc", daemon=True)
        self._scheduled = []              # heap of (due, seq, messages, sender): timed bundles
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._scheduler = threading.Thread(target=self._run_schedule, name="auracore-osc-timed", daemon=True)
        hub.add_meter_listener(self._send_meters)
        logging.getLogger().addFilter(_QUIET_PARSER)  # idempotent: one filter for every server

    def start(self) -> None:
        self._thread.start()
        self._scheduler.start()

    def close(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify()
        self._thread.join(POLL_S * 4)
        if self._scheduler.is_alive():
            self._scheduler.join(POLL_S * 4)
        self.sock.close()

    @property
    def pending(self) -> int:
        """Bundles waiting for their time tag."""
        with self._wake:
            return len(self._scheduled)

    # -- receiving --------------------------------------------------------------------------
    def sender_allowed(self, host: str) -> bool:
        """Loopback senders always; others only from an --osc-allow network."""
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:  # a dual-stack socket's view of an IPv4 sender
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return True
        return any(ip.version == net.version and ip in net for net in self.allow)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            try:
                self.handle(data, sender)
            except Exception as exc:  # the server outlives any one packet, whatever it held
                self.hub.log_throttled("osc-internal", f"OSC: internal error on a packet from {sender[0]}: "
                                                       f"{type(exc).__name__}: {exc}")

    def handle(self, data: bytes, sender) -> None:
        """One datagram from sender (host, port): parse, apply its change set, reply."""
        log = self.hub.log_throttled
        self.packets += 1
        if not self.sender_allowed(sender[0]):
            log("osc-refused", f"OSC: refused a packet from {sender[0]} (not loopback; allow it with --osc-allow)")
            return
        try:
            timed = OscPacket(data).messages  # sorted by time; an immediate or past tag reads as now
        except Exception as exc:  # python-osc raises several types on garbage; all mean "malformed"
            self.malformed += 1
            log("osc-malformed", f"OSC: ignored a malformed packet from {sender[0]} ({type(exc).__name__})")
            return
        now = time.time()
        later = {}
        for t in timed:
            if t.time > now:
                later.setdefault(t.time, []).append(t.message)
        self.apply([t.message for t in timed if t.time <= now], sender)
        for due, messages in later.items():
            self._schedule(due, now, messages, sender)

    def _schedule(self, due: float, now: float, messages, sender) -> None:
        """Hold a timed bundle's messages until due (time.time() seconds)."""
        error = None
        if due - now > MAX_AHEAD_S:
            error = (f"a bundle time-tagged {due - now:.1f} s ahead was refused (at most {MAX_AHEAD_S:g} s; "
                     f"are the clocks in step?)")
        else:
            with self._wake:
                if len(self._scheduled) >= MAX_SCHEDULED:
                    error = f"too many bundles waiting for their time tags (at most {MAX_SCHEDULED}); refused"
                else:
                    heapq.heappush(self._scheduled, (due, next(self._seq), messages, sender))
                    self._wake.notify()
        if error:
            self.hub.log_throttled("osc-timed", f"OSC: {error}")
            self._send(_message("/auracore/error", [error]), sender)

    def _run_schedule(self) -> None:
        """Scheduler thread: apply each timed bundle when its time comes."""
        while not self._stop.is_set():
            with self._wake:
                wait = (self._scheduled[0][0] - time.time()) if self._scheduled else POLL_S * 10
                if wait > 0:
                    self._wake.wait(min(wait, POLL_S * 10))
                    continue
                _, _, messages, sender = heapq.heappop(self._scheduled)
            try:
                self.apply(messages, sender)
            except Exception as exc:  # like _serve: one bad bundle never stops the thread
                self.hub.log_throttled("osc-internal", f"OSC: internal error on a timed bundle from {sender[0]}: "
                                                       f"{type(exc).__name__}: {exc}")

    def apply(self, messages, sender) -> None:
        """Messages that take effect together: their sets as one change set, then the replies."""
        if not messages:
            return
        changes, gets, replies = {}, [], []
        for msg in messages:
            self._dispatch(msg.address, list(msg.params), sender, changes, gets, replies)
        if changes:
            result = self.hub.set(changes, "osc")
            for pid, (_, value) in result.clamped.items():
                replies.append(_message("/auracore/clamped", [P.lookup(pid).osc_address, float(value)]))
            for err in result.errors:
                replies.append(_message("/auracore/error", [err]))
                log("osc-set", f"OSC: {err}")
        for target in gets:
            replies += self._answer_get(target)
        for reply in replies:
            self._send(reply, sender)

    def _dispatch(self, address, args, sender, changes, gets, replies) -> None:
        log = self.hub.log_throttled

        def wrong(expected):
            text = f"{address}: expected {expected}, got {_describe(args)}; ignored"
            log("osc-args", f"OSC: {text}")
            replies.append(_message("/auracore/error", [text]))

        pid = ADDRESS_TO_ID.get(address)
        if pid is not None:
            if len(args) == 1 and _is_number(args[0]):
                changes[pid] = args[0]
            else:
                wrong("one number")
        elif address == "/auracore/get":
            if not args:
                gets.append(None)
            elif len(args) == 1 and isinstance(args[0], str):
                gets.append(args[0])
            else:
                wrong("nothing or one address")
        elif address == "/auracore/preset":
            if len(args) != 1 or not isinstance(args[0], str):
                return wrong("one preset name")
            try:
                changes.update(self.hub.preset_values(args[0]))
            except PresetError as exc:
                replies.append(_message("/auracore/error", [str(exc)]))
                log("osc-preset", f"OSC: {exc}")
        elif address == "/auracore/ai":
            if len(args) == 1 and _is_number(args[0]):
                changes["ai.enabled"] = args[0]
            else:
                wrong("0 or 1")
        elif address == "/auracore/reset_integrated":
            self.hub.reset_integrated()
        elif address == "/auracore/meters/subscribe":
            if 1 <= len(args) <= 2 and all(_is_number(a) for a in args) and 0 < int(args[0]) < 65536:
                replies.append(self._subscribe(sender[0], int(args[0]), float(args[1]) if len(args) == 2
                                               else SUBSCRIBE_DEFAULT_HZ))
            else:
                wrong("a UDP port and an optional rate in Hz")
        elif address == "/auracore/meters/unsubscribe":
            if len(args) == 1 and _is_number(args[0]):
                with self._sub_lock:
                    self.subscribers.pop((sender[0], int(args[0])), None)
            else:
                wrong("a UDP port")
        else:
            text = f"unknown address {address[:200]}"
            log("osc-unknown", f"OSC: {text}")
            replies.append(_message("/auracore/error", [text]))

    def _answer_get(self, target):
        if target is None:
            values = self.hub.values()
            bundle = OscBundleBuilder(IMMEDIATELY)
            for pid, v in values.items():
                bundle.add_content(_message(P.lookup(pid).osc_address, [v]))
            return [bundle.build()]
        pid = ADDRESS_TO_ID.get(target, target)
        try:
            value = self.hub.values([pid])[pid]
        except P.ParamError as exc:
            return [_message("/auracore/error", [str(exc)])]
        return [_message(P.lookup(pid).osc_address, [value])]

    def _subscribe(self, host: str, port: int, rate_hz: float):
        rate_hz = min(max(rate_hz, 1.0), self.hub.meter_hz) if rate_hz == rate_hz else SUBSCRIBE_DEFAULT_HZ
        now = time.monotonic()
        with self._sub_lock:
            if (host, port) not in self.subscribers and len(self.subscribers) >= MAX_SUBSCRIBERS:
                return _message("/auracore/error", [f"too many meter subscribers (at most {MAX_SUBSCRIBERS})"])
            old = self.subscribers.get((host, port))
            comp, lim = (old[3], old[4]) if old else (0.0, 0.0)
            self.subscribers[(host, port)] = [rate_hz, now, now + SUBSCRIPTION_TTL_S, comp, lim]
        return _message("/auracore/meters/subscribed", [port, rate_hz])

    def _send(self, packet, addr) -> None:
        try:
            self.sock.sendto(packet.dgram, addr)
        except OSError as exc:  # e.g. an unreachable subscriber: UDP makes no promises
            self.hub.log_throttled("osc-send", f"OSC: could not send to {addr[0]}:{addr[1]} ({exc.strerror})")

    # -- meters out -------------------------------------------------------------------------
    def _send_meters(self, snap: dict) -> None:
        """Meter listener (meter thread, every meter tick): one bundle to each subscriber that
        is due, with the largest gain reductions since its own previous bundle."""
        now = time.monotonic()
        due = []
        with self._sub_lock:
            for key, sub in list(self.subscribers.items()):
                rate_hz, next_due, expires = sub[:3]
                if now > expires:
                    del self.subscribers[key]
                    continue
                sub[3] = max(sub[3], float(snap["comp_gr_db"]))
                sub[4] = max(sub[4], float(snap["limiter_gr_db"]))
                if now >= next_due:
                    # a 1/meter_hz slack keeps a subscriber at its rate despite tick jitter
                    sub[1] = max(next_due + 1.0 / rate_hz, now + 1.0 / rate_hz - 1.0 / self.hub.meter_hz)
                    due.append((key, sub[3], sub[4]))
                    sub[3] = sub[4] = 0.0
        if not due:
            return
        common = [_message(f"/auracore/meters/{address}", [_floored(snap[address])])
                  for address in ("momentary_lufs", "short_term_lufs", "integrated_lufs")]
        common.append(_message("/auracore/meters/true_peak_dbtp", [_floored(v) for v in snap["true_peak_dbtp"]]))
        for addr, comp_gr, lim_gr in due:
            bundle = OscBundleBuilder(IMMEDIATELY)
            for m in common:
                bundle.add_content(m)
            bundle.add_content(_message("/auracore/meters/comp_gr_db", [comp_gr]))
            bundle.add_content(_message("/auracore/meters/limiter_gr_db", [lim_gr]))
            self._send(bundle.build(), addr)


def _is_number(v) -> bool:
    return isinstance(v, (int, float))  # bool (OSC T/F) is an int


def _floored(v) -> float:
    return METER_FLOOR_DB if v is None else max(float(v), METER_FLOOR_DB)


def _describe(args) -> str:
    if not args:
        return "no arguments"
    return ", ".join(type(a).__name__ for a in args[:8]) + (" ..." if len(args) > 8 else "")


def _message(address: str, args):
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build()


def osc_markdown() -> str:
    """docs/osc.md: the whole OSC address space, generated from the registry and COMMANDS."""
    lines = ["# OSC address space", "",
             "Generated from the registry (kernels/params.py) and control/osc_server.py by",
             "`python -c 'from auracore.control.osc_server import osc_markdown; print(osc_markdown(), end=\"\")' "
             "> docs/osc.md`;",
             "a test fails when this file is out of date.", "",
             "The daemon listens on UDP 127.0.0.1:9000 (`--osc-port`, `--bind`). Senders that are not on the",
             "loopback interface are refused unless their network is given with `--osc-allow`. Replies go to",
             "the address and port the message came from. A bundle is applied as one change set at one",
             "audio block boundary: at once, or, when its time tag lies in the future, at the first block",
             f"boundary after that time (wall clock; at most {MAX_AHEAD_S:g} s ahead and {MAX_SCHEDULED} bundles",
             "waiting, beyond which it is refused with `/auracore/error`; a nested bundle with its own time",
             "tag is a change set of its own). Arguments may be OSC int, float, double",
             "or true/false; out-of-range values are clamped (and answered with `/auracore/clamped`); a",
             "message with the wrong arguments is ignored, logged and answered with `/auracore/error`.", "",
             "## Parameters", "",
             "| address | argument | unit | range | default | description |",
             "|---|---|---|---|---|---|"]
    for p in P.PARAMS:
        kind = "int 0/1" if p.kind == "bool" else "float"
        lines.append(f"| `{p.osc_address}` | {kind} | {p.unit} | {p.range_text} | {p.default:g} | {p.description} |")
    lines += ["", "## Commands", "", "| address | arguments | meaning |", "|---|---|---|"]
    lines += [f"| `{a}` | {args} | {meaning} |" for a, args, meaning in COMMANDS]
    lines += ["", "## Replies", "", "| address | arguments | meaning |", "|---|---|---|"]
    lines += [f"| `{a}` | {args} | {meaning} |" for a, args, meaning in REPLIES]
    lines += ["", "## Meters (to subscribers, one bundle per tick)", "",
              f"Silence and not-yet-measured values read {METER_FLOOR_DB:g}.", "",
              "| address | arguments | meaning |", "|---|---|---|"]
    lines += [f"| `{a}` | {args} | {meaning} |" for a, args, meaning in METERS]
    lines += ["", "## Examples", "",
              "From Python (python-osc), raise band 3 by 2.5 dB and read it back:", "",
              "```sh",
              "python -c 'from pythonosc.udp_client import SimpleUDPClient as C; "
              "C(\"127.0.0.1\", 9000).send_message(\"/auracore/eq/3/gain_db\", 2.5)'",
              "```", "",
              "```python",
              "from pythonosc.udp_client import SimpleUDPClient",
              "from pythonosc.osc_bundle_builder import OscBundleBuilder, IMMEDIATELY",
              "from pythonosc.osc_message_builder import OscMessageBuilder",
              "",
              "osc = SimpleUDPClient(\"127.0.0.1\", 9000)",
              "osc.send_message(\"/auracore/get\", \"/auracore/eq/3/gain_db\")   # reply: /auracore/eq/3/gain_db 2.5",
              "bundle = OscBundleBuilder(IMMEDIATELY)                          # both land on one block",
              "for address, value in [(\"/auracore/comp/threshold_db\", -20.0), (\"/auracore/comp/ratio\", 3.0)]:",
              "    m = OscMessageBuilder(address); m.add_arg(value); bundle.add_content(m.build())",
              "osc.send(bundle.build())",
              "```", "",
              "TouchOSC (or any controller app): add a connection of type OSC/UDP to the daemon's host,",
              "port 9000, with a receive port of your choice; give a fader the address",
              "`/auracore/output/gain_db` and the value range of the table (-24 to 24), and it drives the",
              "output gain. For a level display, send `/auracore/meters/subscribe <receive port> 15` once",
              "a minute (a button with a timer, or on layout start) and map labels or faders to the",
              "`/auracore/meters/...` addresses. Reaper's OSC control surface works the same way with a",
              "pattern file that maps its actions to these addresses. On another machine, start the daemon",
              "with `--bind 0.0.0.0 --token SECRET --osc-allow 192.168.1.0/24` (the token is for WebSocket",
              "clients; OSC senders are checked against the allow-list).", ""]
    return "\n".join(lines)
