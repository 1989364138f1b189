"""Lesson 06, step 1, in Python: lesson 04's echo server with a thread per caller.

Usage: python3 echo_server.py [ADDR] [--idle-timeout SECS]   (default 127.0.0.1:9006, 60 s)
"""
import argparse
import socket
import socketserver
import sys


def parse_addr(text):
    """'127.0.0.1:9006', '[::1]:9006' or 'localhost:9006' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9006' or '[::1]:9006', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def seconds(text):
    """--idle-timeout: a whole number of seconds, at least 1."""
    secs = int(text)
    if secs < 1:
        raise argparse.ArgumentTypeError("the timeout must be at least 1 second")
    return secs


class Handler(socketserver.BaseRequestHandler):
    """One call. socketserver runs `handle` on a new thread for each caller."""

    def handle(self):
        conn, peer = self.request, show(self.client_address)
        print("client", peer, "connected")
        conn.settimeout(secs)                      # lesson 04's idle limit
        try:
            ending = self.talk(conn, peer)
        except socket.timeout:
            ending = f"was idle for {secs} s, hanging up"
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            ending = "reset the connection"
        except OSError as err:
            ending = f"failed: {err}, hanging up"
        print("client", peer, ending)              # socketserver closes conn after handle

    def talk(self, conn, peer):
        """Lesson 04's communication loop: answer in capitals until b"" or q."""
        while True:
            data = conn.recv(1024)
            if not data:
                return "closed the connection"
            print("client", peer, "said", repr(data.decode("utf-8", "replace")))
            if data.strip().lower() == b"q":
                return "asked to quit, hanging up"
            conn.sendall(data.upper())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = sys.platform != "win32"  # as lesson 03: Unix only
    daemon_threads = True                          # Ctrl-C does not wait for callers


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9006")
parser.add_argument("--idle-timeout", type=seconds, default=60, metavar="SECS")
args = parser.parse_args()
secs = args.idle_timeout
host, port = parse_addr(args.addr)
if ":" in host:
    Server.address_family = socket.AF_INET6

# socket, bind and listen, in the constructor; then accept, and a thread per call.
server = Server((host, port), Handler)
print("listening on", show(server.server_address), flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    pass
