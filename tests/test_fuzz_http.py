"""The control surface's HTTP side under hostile clients: generated malformed requests,
oversized headers and bodies, path traversal and slow (slowloris) clients, over real
sockets on loopback. The page server answers only its four files; nothing else leaks,
nothing changes a parameter, and the server keeps serving everyone else."""

import random
import resource
import socket
import threading
import time
import urllib.request

import numpy as np

from auracore.offline.params import build_vector
from test_control_surface import running_daemon, wait_until

STATIC_PATHS = ("/", "/app.js", "/style.css", "/messages.schema.json")
TRAVERSALS = ["/../etc/passwd", "/..%2f..%2fetc%2fpasswd", "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd",
              "/web/../../../../etc/passwd", "/./app.js/../../etc/passwd", "/\\..\\..\\etc\\passwd",
              "/app.js%00.html", "/?file=../../etc/passwd", "/ws/../../etc/passwd", "/index.html"]


def malformed_requests(n: int, seed: int = 11) -> list:
    """n raw HTTP requests: bad methods, paths, versions, headers and bodies."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            path = rng.choice(TRAVERSALS)
            out.append(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        elif kind == 1:  # an oversized request line
            out.append(b"GET /" + b"a" * rng.choice([9000, 70000, 300000]) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        elif kind == 2:  # oversized or too many headers
            if rng.random() < 0.5:
                out.append(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200000 + b"\r\n\r\n")
            else:
                out.append(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % k for k in range(500)) + b"\r\n")
        elif kind == 3:  # a body that claims a gigabyte
            out.append(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n" + b"z" * 5000)
        elif kind == 4:  # random bytes
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 3000))))
        elif kind == 5:  # bad methods and versions
            method = rng.choice(["DELETE", "PUT", "TRACE", "CONNECT", "G\x00T", "get", "\x16\x03\x01"])
            version = rng.choice(["HTTP/1.1", "HTTP/9.9", "HTTP/0.9", "", "HTTP/1.1 extra"])
            out.append(f"{method} / {version}\r\nHost: x\r\n\r\n".encode("latin-1"))
        elif kind == 6:  # a broken WebSocket upgrade
            key = rng.choice(["", "not-base64!!", "dGhlIHNhbXBsZSBub25jZQ=="])
            out.append(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {rng.choice(['13', '8', 'x'])}\r\n"
                        f"Origin: {rng.choice(['http://evil.example', 'null', 'http://127.0.0.1:1'])}\r\n\r\n")
                       .encode())
        else:  # a request cut off mid-header
            out.append(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
    return out


def send_raw(port: int, data: bytes, timeout_s: float = 3.0, half_close: bool = True) -> bytes:
    """Send data (then half-close, unless told not to), read what comes back until the
    server closes or timeout_s passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close on us mid-send
            pass
        chunks = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(reply: bytes) -> int | None:
    if not reply.startswith(b"HTTP/1.1 "):
        return None
    return int(reply[9:12])


def fetch_page(port: int) -> float:
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200 and b"<canvas" in r.read()
    return time.monotonic() - t0


def test_malformed_requests_traversal_and_slow_clients():
    with running_daemon() as d:
        port = d.surface.ws.port
        before = d.engine.params.copy()
        rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        requests = malformed_requests(400)
        statuses = {}
        for data in requests:
            reply = send_raw(port, data)
            code = status_of(reply)
            statuses[code] = statuses.get(code, 0) + 1
            assert b"root:" not in reply, "a file outside the page leaked"
            assert code != 101, "a broken upgrade was accepted"
            if code == 200:  # only the page's own files, and only for a GET of one of them
                first = data.split(b"\r\n", 1)[0]
                assert first.startswith(b"GET ") and first.split(b" ")[1].split(b"?")[0] in \
                    [p.encode() for p in STATIC_PATHS], first[:100]
        # traversals all answered 404; oversized requests refused, not served
        for path in TRAVERSALS:
            reply = send_raw(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), half_close=False)
            expect_ok = path.split("?")[0] in STATIC_PATHS
            assert status_of(reply) == (200 if expect_ok else 404), (path, reply[:80])
        assert statuses.get(None, 0) + sum(v for k, v in statuses.items() if k and k >= 400) >= 300, statuses

        # slowloris: 30 clients trickle a header byte every 0.2 s; others are still served
        stop = threading.Event()

        def trickle():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    while not stop.is_set():
                        s.sendall(b"X")
                        stop.wait(0.2)
            except OSError:  # the server may drop a slow client: that is allowed
                pass

        slow = [threading.Thread(target=trickle, daemon=True) for _ in range(30)]
        for t in slow:
            t.start()
        time.sleep(1.0)
        try:
            took = [fetch_page(port) for _ in range(5)]
        finally:
            stop.set()
            for t in slow:
                t.join(5)
        assert max(took) < 5.0, f"the page took {max(took):.2f} s beside slow clients (a stall)"
        # nothing a request did changed a parameter, and memory did not run away
        assert np.array_equal(d.engine.params, before)
        assert np.array_equal(d.engine.params, build_vector("neutral", {}))
        assert wait_until(lambda: d.surface.hub.latest_meters is not None, 5)
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb) / 1024
        assert grown_mb < 300, f"peak memory grew {grown_mb:.0f} MB under malformed requests"
