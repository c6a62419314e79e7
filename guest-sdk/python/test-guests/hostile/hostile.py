"""A hostile guest for the sandbox tests: ?mode=loop spins forever, ?mode=memory allocates
until something stops it, ?mode=net tries every way CPython reaches the network, ?mode=files
every way it reaches a file, ?mode=raise raises a plain exception; anything else answers
{"ok": true}."""

import os
import socket

from refract import Invocation


def _tries(attempts):
    """Runs each attempt; the names of those that did not raise."""
    reached = []
    for name, attempt in attempts:
        try:
            attempt()
            reached.append(name)
        except Exception:
            pass
    return reached


def handler(inv: Invocation):
    req = inv.request
    mode = req.param("mode") if req else None
    if mode == "loop":
        n = 0
        while True:
            n = (n + 1) & 0xFFFF
    if mode == "memory":
        hoard = []
        # A mebibyte per step: the linear memory grows until the limit refuses it.
        while True:
            hoard.append(bytearray(1 << 20))
    if mode == "net":
        port = int(req.param("port") or "9")
        attempts = [
            ("resolve localhost", lambda: socket.getaddrinfo("localhost", port)),
            ("resolve example.org", lambda: socket.getaddrinfo("example.org", 80)),
            ("connect 127.0.0.1", lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()),
            ("connect [::1]", lambda: socket.create_connection(("::1", port), timeout=1).close()),
            ("bind 0.0.0.0", lambda: socket.socket().bind(("0.0.0.0", 0))),
            ("udp send", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", port))),
        ]
        return {"tried": len(attempts), "reached": _tries(attempts)}
    if mode == "files":
        def write():
            with open("/tmp/refract", "w") as f:
                f.write("x")

        attempts = [
            ("read /etc/passwd", lambda: open("/etc/passwd").read()),
            ("list /", lambda: os.listdir("/")),
            ("write /tmp/refract", write),
            ("env", lambda: os.environ["HOME"]),
        ]
        return {"tried": len(attempts), "reached": _tries(attempts)}
    if mode == "raise":
        raise ValueError("a plain exception")
    return {"ok": True}
