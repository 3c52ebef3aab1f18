"""The control surface of a running daemon: the hub, the OSC server and the WebSocket/page server.

``start_surface(daemon, cfg)`` starts all three on threads of their own (nothing here runs
on the audio thread) and logs where to find them; ``Surface.close()`` stops them within
half a second. ``check_surface_config`` holds the security rules for the serve options:
loopback by default, any other bind address only with a token, OSC allow-list networks
that parse.
"""

import ipaddress

from auracore.network import is_loopback

from .hub import Hub
from .osc_server import OscServer
from .ws_server import WsServer

MIN_TOKEN_CHARS = 12


class SurfaceError(ValueError):
    """Options the control surface cannot run with, or a port it cannot have (one line)."""


def check_surface_config(cfg) -> list:
    """Validate bind/token/osc_allow of a ServeConfig; returns the allow-list networks."""
    if cfg.token is not None and len(cfg.token) < MIN_TOKEN_CHARS:
        raise SurfaceError(f"--token must be at least {MIN_TOKEN_CHARS} characters "
                           "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(16))'`)")
    if not is_loopback(cfg.bind) and cfg.token is None:
        raise SurfaceError(f"--bind {cfg.bind} exposes the control surface beyond this machine: "
                           "give --token SECRET too (WebSocket clients must present it)")
    networks = []
    for item in cfg.osc_allow:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SurfaceError(f"--osc-allow {item}: not an IP address or network (e.g. 192.168.1.0/24)") from None
    for port, flag in ((cfg.osc_port, "--osc-port"), (cfg.ws_port, "--ws-port")):
        if not 0 <= port < 65536:
            raise SurfaceError(f"{flag} {port}: use 1 to 65535 (0: any free port)")
    return networks


class Surface:
    """The running hub and servers; ports are the bound ones (useful with port 0)."""

    def __init__(self, hub: Hub, osc: OscServer, ws: WsServer):
        self.hub = hub
        self.osc = osc
        self.ws = ws

    @property
    def page_url(self) -> str:
        host = f"[{self.ws.host}]" if ":" in self.ws.host else self.ws.host
        return f"http://{host}:{self.ws.port}/"

    def close(self) -> None:
        """Stop the meters, then the servers (WebSocket clients get a close frame)."""
        self.hub.close()
        self.ws.close()
        self.osc.close()


def start_surface(daemon, cfg) -> Surface:
    """Start the control surface for a Daemon whose engine exists; SurfaceError on bad
    options or a port in use."""
    allow = check_surface_config(cfg)
    hub = Hub(daemon.engine, inference=lambda: daemon.inference, log=daemon.log)
    try:
        osc = OscServer(hub, cfg.bind, cfg.osc_port, allow)
    except OSError as exc:
        raise SurfaceError(f"OSC: cannot listen on udp {cfg.bind}:{cfg.osc_port} ({exc.strerror}); "
                           "choose another --osc-port") from None
    ws = WsServer(hub, cfg.bind, cfg.ws_port, cfg.token, ai_available=lambda: daemon.inference is not None)
    try:
        ws.start()
    except OSError as exc:
        osc.close()
        raise SurfaceError(f"WebSocket: cannot listen on tcp {cfg.bind}:{cfg.ws_port} ({exc.strerror}); "
                           "choose another --ws-port") from None
    osc.start()
    hub.start()
    surface = Surface(hub, osc, ws)
    token_note = "?token=..." if cfg.token else ""
    daemon.log(f"meters: {surface.page_url}{token_note}  OSC: udp {osc.host}:{osc.port}")
    return surface

