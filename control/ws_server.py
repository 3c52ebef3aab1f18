"""The WebSocket server and the meter page: JSON messages at /ws, static files at /.

One asyncio loop on a thread of its own serves both (the websockets library answers plain
HTTP GETs through ``process_request``). Every client gets a bounded outgoing queue and
a writer task: meters are only queued while the client keeps up (a stalled client loses
frames, never holds up the server, the other clients or the audio), and a client whose
parameter update was dropped is sent the full set once it drains. Incoming messages are
checked before anything else sees them: Origin (cross-site pages), the token when one is
set, size (64 KiB), a per-connection rate limit, JSON without NaN/Infinity, then the
message schema (control/schema/messages.schema.json). A bad message costs its sender an
error reply; the connection stays open and no parameter changes.
"""

import asyncio
import collections
import hmac
import http
import json
import threading
import time
import urllib.parse
from importlib import resources

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Response

from auracore.kernels import params as P

from auracore.offline.params import PresetError

MAX_MESSAGE_BYTES = 64 * 1024
MAX_FRAME_BYTES = 1 << 20         # beyond this the library closes the connection (1009)
RATE_PER_S = 200.0                # per connection; a fader sends ~60 a second
RATE_BURST = 400.0
MAX_CLIENTS = 256
QUEUE_LIMIT = 64                  # outgoing messages waiting for one client before we stop reading from it
METER_QUEUE_LIMIT = 2             # meters are queued only behind fewer than this many
CLOSE_S = 0.3
STATIC = {"/": ("web/index.html", "text/html; charset=utf-8"),
          "/app.js": ("web/app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("web/style.css", "text/css; charset=utf-8"),
          "/messages.schema.json": ("schema/messages.schema.json", "application/schema+json")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed")


class BadMessage(ValueError):
    """A client message that does not follow the schema; its text goes back as an error."""


def _static_files() -> dict:
    package = resources.files("auracore.control")
    return {path: (package.joinpath(*name.split("/")).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()}


class _Client:
    """One connection's outgoing queue, drop counters and rate-limit bucket.

    Replies to the client's own requests are always queued, and its reader stops while the
    queue is over QUEUE_LIMIT (a client that floods without reading slows only itself);
    broadcasts are dropped instead, since they must never wait on any one client."""

    def __init__(self, ws):
        self.ws = ws
        self.queue = collections.deque()
        self.wake = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.resync = False
        self.dropped = 0
        self.tokens = RATE_BURST
        self.refill_t = time.monotonic()
        self.last_rate_error = 0.0

    def push(self, text: str, limit: int | None = None) -> bool:
        """Queue text; with a limit, drop it (False) when the queue already holds that many."""
        if limit is not None and len(self.queue) >= limit:
            self.dropped += 1
            return False
        self.queue.append(text)
        if len(self.queue) >= QUEUE_LIMIT:
            self.drained.clear()
        self.wake.set()
        return True

    def take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refill_t) * RATE_PER_S)
        self.refill_t = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class WsServer:
    """WebSocket + page server for a Hub on host:port (port 0: any free port). token: the
    secret clients must present (None: none needed); ai_available() says whether models run."""

    def __init__(self, hub, host: str, port: int, token: str | None = None, ai_available=lambda: False):
        self.hub = hub
        self.host = host
        self.port = port
        self.token = token
        self.ai_available = ai_available
        self.clients = set()
        self.meter_frames_dropped = 0
        self.received = 0                 # client messages, and those refused (bad or over the rate)
        self.refused = 0
        self.loop = None
        self._server = None
        self._files = _static_files()
        self._origins = set()
        self._ready = threading.Event()
        self._error = None
        self._stopping = None
        self._thread = threading.Thread(target=self._run, name="auracore-ws", daemon=True)

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve; raises OSError when the port cannot be had."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        self.hub.add_param_listener(self._on_params)
        self.hub.add_meter_listener(self._on_meters)

    def close(self) -> None:
        """Close every connection and stop, within CLOSE_S plus a little."""
        if self.loop is not None and self._thread.is_alive():
            try:
                self.hub.remove_param_listener(self._on_params)
            except ValueError:
                pass
            self.loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(CLOSE_S + 0.15)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        try:
            self._server = await serve(self._handle, self.host, self.port, process_request=self._http,
                                       compression=None, max_size=MAX_FRAME_BYTES, max_queue=16,
                                       close_timeout=CLOSE_S / 2, ping_interval=20, ping_timeout=20)
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        self._origins = {f"http://{h}:{self.port}" for h in LOOPBACK_HOSTS}
        self._ready.set()
        await self._stopping.wait()
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), CLOSE_S)
        except TimeoutError:  # a client that never answers the close handshake: cut it
            for ws in list(self._server.connections):
                ws.transport.abort()

    # -- HTTP: the page, and the checks before a WebSocket handshake ------------------------
    def _http(self, connection, request):
        # the page and the upgrade are GETs; websockets >= 14 parses other methods too
        if getattr(request, "method", "GET") != "GET":
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "only GET\n")
        url = urllib.parse.urlsplit(request.path)
        if url.path == "/ws":
            return self._check_upgrade(connection, request, url)
        found = self._files.get(url.path)
        if found is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        body, ctype = found
        headers = Headers([("Content-Type", ctype), ("Content-Length", str(len(body))),
                           ("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff"),
                           ("Content-Security-Policy", CSP), ("Referrer-Policy", "no-referrer")])
        return Response(200, "OK", headers, body)

    def _check_upgrade(self, connection, request, url):
        log = self.hub.log_throttled
        origin = request.headers.get("Origin")
        same_host = f"http://{request.headers.get('Host', '')}"
        # non-browser clients send no Origin; a browser always does, and only our own page's
        # origins may connect (bound off loopback, the token is what keeps strangers out)
        if origin is not None and origin not in self._origins and not (
                self.token and self.host not in ("127.0.0.1", "::1", "localhost") and origin == same_host):
            log("ws-origin", f"WebSocket: refused Origin {origin[:100]}")
            return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")
        if self.token is not None:
            given = urllib.parse.parse_qs(url.query).get("token", [""])[0]
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                log("ws-token", "WebSocket: refused a client without the right token")
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, "token required\n")
        if len(self.clients) >= MAX_CLIENTS:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        return None

    # -- a connection -----------------------------------------------------------------------
    async def _handle(self, ws) -> None:
        client = _Client(ws)
        self.clients.add(client)
        writer = asyncio.create_task(self._writer(client))
        client.push(_dumps({"type": "status", **self.hub.describe()}))
        client.push(_dumps({"type": "params", "params": self.hub.values(), "source": "get"}))
        try:
            async for message in ws:
                self.received += 1
                if not client.take_token():
                    self.refused += 1
                    now = time.monotonic()
                    if now - client.last_rate_error >= 1.0:
                        client.last_rate_error = now
                        self._error_to(client, f"rate limit: at most {RATE_PER_S:g} messages a second "
                                               f"(bursts of {RATE_BURST:g}); messages dropped")
                    continue
                try:
                    self._dispatch(client, self._parse(message))
                except BadMessage as exc:
                    self.refused += 1
                    self.hub.log_throttled("ws-bad", f"WebSocket: {exc}")
                    self._error_to(client, str(exc))
                except Exception as exc:  # a bug must cost one message, not the connection
                    self.hub.log_throttled("ws-internal", f"WebSocket: internal error: {type(exc).__name__}: {exc}")
                    self._error_to(client, f"internal error ({type(exc).__name__}); the message was not applied")
                await client.drained.wait()
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            writer.cancel()

    async def _writer(self, client: _Client) -> None:
        try:
            while True:
                while not client.queue:
                    if client.resync:
                        client.resync = False
                        client.push(_dumps({"type": "params", "params": self.hub.values(), "source": "get"}))
                        continue
                    client.wake.clear()
                    await client.wake.wait()
                await client.ws.send(client.queue.popleft())
                if len(client.queue) < QUEUE_LIMIT // 2:
                    client.drained.set()
        except ConnectionClosed:
            pass
        finally:
            client.drained.set()  # a reader waiting for room must see the end, not hang

    @staticmethod
    def _parse(message) -> dict:
        if isinstance(message, bytes):
            raise BadMessage("binary frames are not accepted: send JSON text")
        if len(message) > MAX_MESSAGE_BYTES or (len(message) * 4 > MAX_MESSAGE_BYTES
                                                and len(message.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES):
            raise BadMessage(f"message over {MAX_MESSAGE_BYTES // 1024} KiB refused")
        try:
            msg = json.loads(message, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise BadMessage(f"not valid JSON ({str(exc)[:80]})") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise BadMessage('every message is a JSON object with a "type"')
        return msg

    def _dispatch(self, client: _Client, msg: dict) -> None:
        kind = msg["type"]
        if kind == "set":
            changes = msg.get("params")
            if not isinstance(changes, dict) or not 0 < len(changes) <= P.N_PARAMS:
                raise BadMessage(f'set: "params" must be an object of 1 to {P.N_PARAMS} {{id: number}}')
            bad = [k for k, v in changes.items() if not isinstance(v, (int, float))]
            for pid in bad:
                self._error_to(client, f"set: {pid[:80]}: the value must be a number or a boolean; ignored")
            self._apply(client, {k: v for k, v in changes.items() if k not in bad}, "ws")
        elif kind == "get":
            ids = msg.get("ids")
            if ids is not None and not (isinstance(ids, list) and len(ids) <= P.N_PARAMS
                                        and all(isinstance(i, str) for i in ids)):
                raise BadMessage(f'get: "ids" must be a list of at most {P.N_PARAMS} parameter ids')
            try:
                values = self.hub.values(ids or None)
            except P.ParamError as exc:
                raise BadMessage(f"get: {exc}") from None
            client.push(_dumps({"type": "params", "params": values, "source": "get"}))
        elif kind == "preset":
            name = msg.get("name")
            if not isinstance(name, str):
                raise BadMessage('preset: "name" must be a string')
            try:
                values = self.hub.preset_values(name)
            except PresetError as exc:
                raise BadMessage(f"preset: {exc}") from None
            self._apply(client, values, "preset")
        elif kind == "reset_integrated":
            self.hub.reset_integrated()
        elif kind == "ai":
            enabled = msg.get("enabled")
            if not isinstance(enabled, bool):
                raise BadMessage('ai: "enabled" must be true or false')
            self._apply(client, {"ai.enabled": enabled}, "ws")
            if enabled and not self.ai_available():
                self._error_to(client, "ai.enabled is on, but no models are loaded (manual mode): it steers nothing")
        else:
            raise BadMessage(f"unknown message type '{kind[:40]}'; expected set, get, preset, reset_integrated or ai")

    def _apply(self, client: _Client, changes: dict, source: str) -> None:
        result = self.hub.set(changes, source)
        for err in result.errors:
            self._error_to(client, err)
        for pid, (asked, value) in result.clamped.items():
            p = P.lookup(pid)
            unit = f" {p.unit}" if p.unit else ""
            self._error_to(client, f"{pid}={asked} is outside [{p.minimum:g}, {p.maximum:g}]{unit}; "
                                   f"clamped to {value:g}", clamped={pid: value})

    def _error_to(self, client: _Client, message: str, **extra) -> None:
        client.push(_dumps({"type": "error", "message": message, **extra}))

    # -- fan-out (called from other threads) ------------------------------------------------
    def _on_params(self, changed: dict, source: str) -> None:
        text = _dumps({"type": "params", "params": changed, "source": source})
        self._call_soon(self._fan_out_params, text)

    def _on_meters(self, snap: dict) -> None:
        self._call_soon(self._fan_out_meters, _dumps(snap))

    def _call_soon(self, fn, arg) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # the loop is closing: nobody left to tell
            pass

    def _fan_out_params(self, text: str) -> None:
        for client in self.clients:
            if not client.push(text, QUEUE_LIMIT):
                client.resync = True

    def _fan_out_meters(self, text: str) -> None:
        for client in self.clients:
            if not client.push(text, METER_QUEUE_LIMIT):
                self.meter_frames_dropped += 1
