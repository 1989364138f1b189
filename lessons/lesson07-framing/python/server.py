"""Lesson 07 server in Python: read length-prefixed frames, answer each upper-cased.

Usage: python3 server.py [ADDR] [--max-frame BYTES] [--idle-timeout SECS]
       (default 127.0.0.1:9007, 1048576 bytes, 60 s)
"""
import argparse
import socket
import socketserver
import struct


def parse_addr(text):
    """'127.0.0.1:9007', '[::1]:9007' or 'localhost:9007' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9007' or '[::1]:9007', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
    (size,) = struct.unpack("!I", header)          # '!': big-endian, network order
    if size > limit:                               # check before reading the body
        raise OverflowError(size)
    return recv_exactly(conn, size)


def send_frame(conn, body):
    conn.sendall(struct.pack("!I", len(body)) + body)   # one sendall per frame


class Handler(socketserver.BaseRequestHandler):
    """One caller, on a thread of its own (ThreadingTCPServer starts it)."""

    def handle(self):
        peer = show(self.client_address)
        print("client", peer, "connected")
        self.request.settimeout(args.idle_timeout)
        print("client", peer, self.serve(peer))

    def serve(self, peer):
        limit = args.max_frame
        try:
            while True:
                body = read_frame(self.request, limit)
                if body is None:
                    return "closed the connection"
                text = repr(body.decode("utf-8", "replace"))
                print("client", peer, f"sent a frame of {len(body)} bytes:", text)
                send_frame(self.request, body.upper())
        except OverflowError as err:
            size = err.args[0]
            backwards = struct.unpack("<I", struct.pack(">I", size))[0]
            hint = (f" (backwards it reads {backwards}: is the length big-endian?)"
                    if backwards <= limit else "")
            return f"announced {size} bytes, over the limit of {limit}{hint}; hanging up"
        except CutOff as err:
            got, expected = err.args
            return f"hung up in the middle of a frame ({got} of {expected} bytes arrived)"
        except socket.timeout:
            return f"was silent or did not read for {args.idle_timeout} s, hanging up"
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return "reset the connection"
        except OSError as err:
            return f"error: {err}, hanging up"


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True                          # Ctrl-C does not wait for callers
    allow_reuse_address = True


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9007")
parser.add_argument("--max-frame", type=int, default=1024 * 1024, metavar="BYTES")
parser.add_argument("--idle-timeout", type=int, default=60, metavar="SECS")
args = parser.parse_args()
host, port = parse_addr(args.addr)
if ":" in host:
    Server.address_family = socket.AF_INET6
with Server((host, port), Handler) as server:
    print("listening on", show(server.server_address), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
