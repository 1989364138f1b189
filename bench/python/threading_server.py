"""Benchmark baseline: the echo server written the socketserver way.

`socketserver.ThreadingTCPServer` starts one thread per connection, the
Python way to serve many callers at once. Each reply is the same bytes
upper-cased (`bytes.upper()`), exactly like the Rust lessons' echo servers.

Usage: python3 threading_server.py [ADDR]   (default 127.0.0.1:9103, port 0
lets the system pick). The first line printed is `listening on IP:PORT`.
Stop it with Ctrl-C. Like the benchmark's Rust baselines, it logs nothing
per message: printing a line per message would measure the terminal.
"""

import socket
import socketserver
import sys

DEFAULT_ADDR = "127.0.0.1:9103"


class EchoHandler(socketserver.BaseRequestHandler):
    """One connection: the communication loop of lesson 03."""

    def handle(self):
        conn = self.request
        while True:
            try:
                data = conn.recv(4096)
            except ConnectionError:
                return
            if not data:
                return  # the client hung up
            try:
                conn.sendall(data.upper())
            except ConnectionError:
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    # Threads die with the main thread, so Ctrl-C ends the server at once.
    daemon_threads = True
    # socketserver's default backlog is 5. Rust's std listens with 128; use
    # the same here, so both thread-per-connection servers queue alike.
    request_queue_size = 128


def parse_addr(text):
    """IP:PORT, [IPv6]:PORT or localhost:PORT -> (family, host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or not host:
        raise ValueError(text)
    family = socket.AF_INET
    if host.startswith("[") and host.endswith("]"):
        host, family = host[1:-1], socket.AF_INET6
    elif ":" in host:
        raise ValueError(text)
    return family, host, int(port)


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    if len(argv) > 1:
        print(f"error: unexpected argument {argv[1]!r} (see --help)", file=sys.stderr)
        return 2
    text = argv[0] if argv else DEFAULT_ADDR
    try:
        family, host, port = parse_addr(text)
    except ValueError:
        print(
            f"error: invalid address {text!r}: expected IP:PORT, [IPv6]:PORT "
            "or localhost:PORT (see --help)",
            file=sys.stderr,
        )
        return 2

    class FamilyServer(Server):
        address_family = family

    try:
        server = FamilyServer((host, port), EchoHandler)
    except OSError as err:
        print(f"error: could not listen on {text}: {err}", file=sys.stderr)
        return 1
    ip, real_port = server.server_address[:2]
    shown = f"[{ip}]" if family == socket.AF_INET6 else ip
    print(f"listening on {shown}:{real_port}", flush=True)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
