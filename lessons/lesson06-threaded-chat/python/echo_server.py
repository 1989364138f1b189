"""Lesson 06, step 1, in Python: lesson 04's echo server with a thread per caller.

Usage: python3 echo_server.py [ADDR] [--idle-timeout SECS] [--max-clients N]
       (default 127.0.0.1:9006, 60 s, 100 callers at once)
"""
import argparse
import socket
import socketserver
import sys
import threading
import time


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


def at_least_one(text):
    """--max-clients: a whole number, at least 1."""
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not at least 1")
    return n


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
        self.server.seats.release()                # the call is over: a seat is free
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
    failures = 0                                   # failed accepts in a row

    def get_request(self):
        """accept, with failures logged once per episode."""
        try:
            request = self.socket.accept()
        except OSError as err:                 # usually "too many open files"
            if not self.failures:              # once, not ten times a second
                print(f"accept failed: {err}; trying again every 100 ms")
            self.failures += 1
            time.sleep(0.1)                    # the caller waits in the queue
            raise                              # socketserver gives up on this turn
        if self.failures:
            print(f"accept works again after {self.failures} failures")
            self.failures = 0
        return request

    def verify_request(self, request, client_address):
        """A seat per caller served; with all taken, the next one is turned away."""
        if self.seats.acquire(blocking=False):
            return True
        request.sendall(b"server full, try again later\n")
        print("client", show(client_address), f"turned away: all {args.max_clients} seats are taken")
        return False                               # socketserver hangs up


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9006")
parser.add_argument("--idle-timeout", type=seconds, default=60, metavar="SECS")
parser.add_argument("--max-clients", type=at_least_one, default=100, metavar="N")
args = parser.parse_args()
Server.seats = threading.BoundedSemaphore(args.max_clients)
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
