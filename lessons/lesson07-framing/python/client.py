"""Lesson 07 client in Python: each line you type goes out as one frame.

Usage: python3 client.py [ADDR] [--all-at-once]      (default 127.0.0.1:9007)
End the input with Ctrl-D (Ctrl-Z Enter on Windows).
"""
import argparse
import socket
import struct
import sys

MAX_FRAME = 1024 * 1024


def recv_exactly(conn, size):
    """recv until `size` bytes have come: one recv may return fewer."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 65536))
        if not chunk:
            sys.exit("error: server closed the connection before it answered")
        data += chunk
    return data


def frame(body):
    return struct.pack("!I", len(body)) + body     # 4 bytes, big-endian, then the body


def read_reply(conn):
    (size,) = struct.unpack("!I", recv_exactly(conn, 4))
    if size > MAX_FRAME:
        sys.exit(f"error: server announced a reply of {size} bytes, "
                 f"over our limit of {MAX_FRAME}")
    return recv_exactly(conn, size)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9007")
parser.add_argument("--all-at-once", action="store_true")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")
try:
    phone = socket.create_connection((host.strip("[]"), int(port)))
except OSError as err:
    sys.exit(f"error: could not connect to {args.addr} (is lesson07-server running? "
             f"start it with: cargo run -p lesson07-server): {err}")


def lines():
    prompt = sys.stdin.isatty()                    # '>> ' only for a person typing
    while True:
        if prompt:
            print(">> ", end="", flush=True)
        line = sys.stdin.buffer.readline()
        if not line:
            return
        yield line.rstrip(b"\n").rstrip(b"\r")


try:
    if args.all_at_once:
        messages = list(lines())
        # One sendall for everything: the frames travel glued together. (For
        # a large input a thread would have to send while we read; see the
        # Rust client.)
        phone.sendall(b"".join(frame(m) for m in messages))
        phone.shutdown(socket.SHUT_WR)
        for _ in messages:
            print(read_reply(phone).decode("utf-8", "replace"))
    else:
        for message in lines():
            phone.sendall(frame(message))
            print(read_reply(phone).decode("utf-8", "replace"))
except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
    sys.exit("error: server reset the connection")
phone.close()
