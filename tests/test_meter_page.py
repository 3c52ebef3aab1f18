"""The meter page in a real browser: headless Chromium (Debian's `chromium`) driven over the
DevTools protocol, against a running daemon with a tone playing.

It checks that the page loads from the daemon with nothing fetched from elsewhere, that
the meters move while audio plays, and that dragging a real slider (mouse events, not a
script) changes the engine's parameter and the measured output level. The screenshot is
kept at artifacts/meter-page.png (the path is printed in the log).
"""

import base64
import contextlib
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import time

import numpy as np
import pytest
import scipy.signal as ss
from websockets.sync.client import connect

from auracore.kernels import params as P
from auracore.kernels.biquad import SHAPE_HIGHSHELF, SHAPE_LOWSHELF, SHAPE_PEAKING, design_biquad
from test_control_surface import running_daemon, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "artifacts" / "meter-page.png"
VIEW_W, VIEW_H = 1360, 860

# CI installs chromium (scripts/install --dev) and must run this; elsewhere it may be missing
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="needs Debian's chromium (scripts/install --dev)")


def engine_eq_response_db(values: dict, sample_rate: float, freqs_hz) -> np.ndarray:
    """The EQ's magnitude response in dB at freqs_hz, from the engine's own biquad design."""
    sos = []
    for b in range(1, P.EQ_BANDS + 1):
        shape = SHAPE_LOWSHELF if b == 1 else SHAPE_HIGHSHELF if b == P.EQ_BANDS else SHAPE_PEAKING
        c = np.zeros(5)
        design_biquad(shape, sample_rate, values[f"eq.{b}.freq_hz"], values[f"eq.{b}.gain_db"], values[f"eq.{b}.q"], c)
        sos.append([c[0], c[1], c[2], 1.0, c[3], c[4]])
    _, h = ss.sosfreqz(np.array(sos), worN=np.asarray(freqs_hz), fs=sample_rate)
    return 20.0 * np.log10(np.abs(h))


class Browser:
    """One headless Chromium with a fresh profile, one page, DevTools over a WebSocket."""

    def __init__(self, profile_dir: pathlib.Path):
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                f"--user-data-dir={profile_dir}", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", f"--window-size={VIEW_W},{VIEW_H}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("chromium exited before it listened")
            if "DevTools listening on " in line:
                url = line.split("DevTools listening on ", 1)[1].strip()
        if url is None:
            raise RuntimeError("chromium did not start its DevTools endpoint within 30 s")
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=10, proxy=None))
        self._ids = itertools.count(1)
        self.console = []
        self.requests = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout_s: float = 20.0):
        msg_id = next(self._ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout_s
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, ev: dict) -> None:
        method = ev.get("method", "")
        if method == "Network.requestWillBeSent":
            self.requests.append(ev["params"]["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            self.console.append("exception: " + json.dumps(ev["params"]["exceptionDetails"])[:500])
        elif method == "Log.entryAdded" and ev["params"]["entry"]["level"] == "error":
            self.console.append("log: " + ev["params"]["entry"]["text"])

    def eval(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float) -> None:
        self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left",
                                                "buttons": 0 if kind == "mouseReleased" else 1, "clickCount": 1},
                  session=True)

    def drag(self, x0: float, x1: float, y: float, steps: int = 12) -> None:
        """Press at x0, move to x1 in steps, release: a user dragging a slider thumb."""
        self.mouse("mouseMoved", x0, y)
        self.mouse("mousePressed", x0, y)
        for k in range(1, steps + 1):
            self.mouse("mouseMoved", x0 + (x1 - x0) * k / steps, y)
            time.sleep(0.02)
        self.mouse("mouseReleased", x1, y)

    def screenshot(self, path: pathlib.Path) -> None:
        height = int(self.eval("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", {"width": VIEW_W, "height": height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session=True)
        time.sleep(0.3)  # a couple of meter frames at the new size
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture()
def browser(tmp_path):
    b = Browser(tmp_path / "chromium-profile")
    yield b
    b.close()


def test_meter_page_loads_meters_move_and_a_slider_sets_the_engine(browser):
    with running_daemon() as daemon:
        surface = daemon.surface
        page = surface.page_url
        browser.call("Page.navigate", {"url": page}, session=True)
        assert wait_until(lambda: (browser.eval("window.auracore ? window.auracore.frames : 0") or 0) > 10, 10), \
            "no meters reached the page:\n" + "\n".join(browser.console)
        # nothing outside the daemon was asked for
        assert browser.requests and all(u.startswith(page) or u.startswith("data:") for u in browser.requests), \
            browser.requests
        # a slider for every continuous parameter, a switch for every boolean
        assert browser.eval("document.querySelectorAll('input[type=range]').length") == \
            sum(p.kind == "float" for p in P.PARAMS)
        assert browser.eval("document.querySelectorAll('input[type=checkbox]').length") == \
            sum(p.kind == "bool" for p in P.PARAMS)
        assert browser.eval("document.getElementById('conn').className") == "conn on"

        # meters move: new frames keep arriving, the readouts follow the tone (-20 dBFS sine ~ -20 LUFS)
        seq0 = browser.eval("window.auracore.meters.seq")
        time.sleep(0.5)
        seq1 = browser.eval("window.auracore.meters.seq")
        assert seq1 - seq0 >= 8, f"meter frames in 0.5 s: {seq1 - seq0}"
        m_before = float(browser.eval("window.auracore.meters.momentary_lufs"))
        assert -22.0 < m_before < -18.0
        assert browser.eval("document.getElementById('m-val').textContent") == f"{m_before:.1f}"
        bar = browser.eval("document.querySelector('[data-meter=momentary] .fill').style.height")
        assert bar.endswith("%") and 50.0 < float(bar[:-1]) < 62.0, bar  # -20 on a -48..0 scale

        # a real drag on the output gain slider: from its thumb (0 dB, the middle) to 3/4 (+12 dB)
        box = browser.eval("(() => { const r = document.querySelector('input[data-id=\"output.gain_db\"]')"
                           ".getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()")
        left, top, width, height = box
        y = top + height / 2
        browser.drag(left + width * 0.5, left + width * 0.75, y)
        idx = P.INDEX["output.gain_db"]
        assert wait_until(lambda: daemon.engine.params[idx] > 8.0, 3.0), daemon.engine.params[idx]
        page_value = browser.eval("window.auracore.params['output.gain_db']")
        assert wait_until(lambda: abs(daemon.engine.params[idx] - page_value) < 1e-9, 2.0)
        assert 10.0 < page_value < 14.0, page_value
        # ... and the meters on the page follow the louder output
        assert wait_until(lambda: float(browser.eval("window.auracore.meters.momentary_lufs"))
                          > m_before + page_value - 1.0, 3.0)
        assert browser.eval("window.auracore.controls['output.gain_db'].out.textContent") == \
            f"+{page_value:.1f} dB"

        # a change from another client reaches the page, and its EQ curve is the engine's EQ
        eq = {"eq.1.gain_db": 3.0, "eq.3.gain_db": -4.5, "eq.3.q": 2.0, "eq.6.gain_db": 2.5, "eq.6.freq_hz": 4000.0,
              "eq.8.gain_db": -3.0}
        daemon.surface.hub.set(eq, "osc")
        assert wait_until(lambda: browser.eval("window.auracore.params['eq.6.freq_hz']") == 4000.0, 2.0)
        assert browser.eval("window.auracore.controls['eq.3.gain_db'].out.textContent") == "-4.5 dB"
        freqs = [30.0, 80.0, 250.0, 400.0, 1000.0, 4000.0, 9000.0, 16000.0]
        page_db = browser.eval(f"{freqs}.map((f) => eqResponseDb(eqBands(), f))")
        engine_db = engine_eq_response_db(daemon.surface.hub.values(), daemon.engine.sample_rate, freqs)
        assert np.allclose(page_db, engine_db, atol=0.01), (page_db, engine_db)

        browser.screenshot(ARTIFACT)
        print(f"meter page screenshot: {ARTIFACT}")
        assert ARTIFACT.stat().st_size > 20_000
        assert not browser.console, browser.console
