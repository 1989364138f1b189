"""Lesson 07 server in Python: answer each length-prefixed frame upper-cased.

Usage: python3 server.py [ADDR] [--max-frame BYTES] [--idle-timeout SECS]
                        [--max-clients N]
       (default 127.0.0.1:9007, 1048576 bytes, 60 s, 100 clients)
"""
import argparse
import socket
import socketserver
import struct
import sys
import threading
import time


def parse_addr(text):
    """'127.0.0.1:9007', '[::1]:9007' or 'localhost:9007' -> (host, port)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not IP:PORT")
    return host.strip("[]"), int(port)


def in_range(low, high):
    """An argparse type: a whole number from low to high."""
    def check(text):
        if not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"'{text}' is not {low} to {high}")
        return int(text)
    return check


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9007' or '[::1]:9007', as in Rust."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log(*words):
    """One log line, written in one piece, so that two threads logging at
    the same moment never mix their lines (print writes word by word)."""
    sys.stdout.write(" ".join(str(word) for word in words) + "\n")
    sys.stdout.flush()


def shown(body):
    """A frame for the log, cut to 60 characters like the Rust server's."""
    text = body.decode("utf-8", "replace")
    if len(text) <= 60:
        return repr(text)
    return f"{text[:60]!r}... ({len(body)} bytes)"


class CutOff(Exception):
    """The stream ended inside a frame."""


def recv_exactly(conn, size):
    """recv until `size` bytes have come: one recv may return fewer."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 65536))
        if not chunk:
            raise CutOff(len(data), size)
        data += chunk
    return data


def read_frame(conn, limit):
    """One whole frame, or None if the peer closed between two frames."""
    header = conn.recv(4)
    if not header:
        return None                                # a polite goodbye
    try:
        header += recv_exactly(conn, 4 - len(header))
    except CutOff as err:
        raise CutOff(len(header) + err.args[0], 4)
    (size,) = struct.unpack("!I", header)          # '!': big-endian
    if size > limit:                               # before reading the body
        raise OverflowError(size)
    return recv_exactly(conn, size)


def send_frame(conn, body):
    conn.sendall(struct.pack("!I", len(body)) + body)   # one sendall


class Handler(socketserver.BaseRequestHandler):
    """One caller, on a thread of its own (ThreadingTCPServer starts it)."""

    def handle(self):
        peer = show(self.client_address)
        try:
            log("client", peer, "connected")
            self.request.settimeout(args.idle_timeout)
            ending = self.serve(peer)
        finally:
            self.request.close()
            seats.release()                        # before the log says so
        log("client", peer, ending)

    def serve(self, peer):
        limit = args.max_frame
        try:
            while True:
                body = read_frame(self.request, limit)
                if body is None:
                    return "closed the connection"
                log("client", peer,
                    f"sent a frame of {len(body)} bytes:", shown(body))
                send_frame(self.request, body.upper())
        except OverflowError as err:
            size = err.args[0]
            back = struct.unpack("<I", struct.pack(">I", size))[0]
            hint = (f" (backwards it reads {back}: is the length big-endian?)"
                    if back <= limit else "")
            return (f"announced {size} bytes, over the limit of {limit}"
                    f"{hint}; hanging up")
        except CutOff as err:
            got, expected = err.args
            return ("hung up in the middle of a frame "
                    f"({got} of {expected} bytes arrived)")
        except socket.timeout:
            secs = args.idle_timeout
            return f"was silent or did not read for {secs} s, hanging up"
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return "reset the connection"
        except OSError as err:
            return f"error: {err}, hanging up"


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True                          # Ctrl-C does not wait
    allow_reuse_address = True
    request_queue_size = 128                       # listen(128), as Rust's std
    failures = 0                                   # accepts failed in a row

    def get_request(self):
        """accept(), saying once when it fails and once when it works again."""
        try:
            call = super().get_request()
        except OSError as err:                     # "too many open files"
            if self.failures == 0:
                log(f"accept failed: {err}; trying again every 100 ms")
            self.failures += 1
            time.sleep(0.1)                        # do not spin
            raise                                  # socketserver tries again
        if self.failures:
            log(f"accept works again after {self.failures} failures")
            self.failures = 0
        return call

    def verify_request(self, request, client_address):
        """A seat for the caller, or a frame saying the server is full."""
        if seats.acquire(blocking=False):
            return True
        n = args.max_clients
        why = f"server full: {n} clients are being served, try again later"
        try:
            send_frame(request, why.encode())
        except OSError:
            pass
        log("client", show(client_address),
            f"turned away: the server is full ({n} clients)")
        return False                               # socketserver hangs up

    def process_request(self, request, client_address):
        try:
            super().process_request(request, client_address)  # a thread
        except RuntimeError as err:                # no thread left
            seats.release()
            log("client", show(client_address),
                f"could not be served: {err}; hanging up")
            self.shutdown_request(request)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9007",
                    type=parse_addr, help="address to listen on, IP:PORT")
parser.add_argument("--max-frame", type=in_range(0, 2**32 - 1),
                    default=1024 * 1024, metavar="BYTES",
                    help="the largest frame a client may send")
parser.add_argument("--idle-timeout", type=in_range(1, 86400), default=60,
                    metavar="SECS", help="hang up on a silent client")
parser.add_argument("--max-clients", type=in_range(1, 10**6), default=100,
                    metavar="N", help="serve at most N clients at once")
args = parser.parse_args()
seats = threading.BoundedSemaphore(args.max_clients)
host, port = args.addr
if ":" in host:
    Server.address_family = socket.AF_INET6
try:
    server = Server((host, port), Handler)
except OSError as err:
    sys.exit(f"error: cannot listen on {host}:{port}: {err.strerror}")
with server:
    print("listening on", show(server.server_address), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
