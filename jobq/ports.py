"""Whether a port can be bound: checked before a command starts its servers, so a taken port
is one clear line naming the flag, not a bind traceback. Stdlib only (a worker imports it)."""

from __future__ import annotations

import socket


def is_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on ``host:port`` right now. SO_REUSEADDR as servers set it,
    so a port whose last connections linger in TIME_WAIT counts as free, as it is for them."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
