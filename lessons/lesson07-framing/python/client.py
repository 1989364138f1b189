"""Lesson 07 client in Python: each line you type goes out as one frame.

Usage: python3 client.py [ADDR] [--all-at-once] [--max-frame BYTES]
       (default 127.0.0.1:9007, 1048576 bytes)
End the input with Ctrl-D (Ctrl-Z Enter on Windows).
"""
import argparse
import socket
import struct
import sys


def parse_addr(text):
    """'127.0.0.1:9007', '[::1]:9007' or 'localhost:9007' -> (host, port)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not IP:PORT")
    return host.strip("[]"), int(port)


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
    return struct.pack("!I", len(body)) + body     # 4 bytes, big-endian


def read_reply(conn):
    (size,) = struct.unpack("!I", recv_exactly(conn, 4))
    if size > args.max_frame:
        sys.exit(f"error: server announced a reply of {size} bytes, "
                 f"over our limit of {args.max_frame}")
    return recv_exactly(conn, size)


def answer_to(message, reply):
    """The reply as text, if it is the answer: the message upper-cased.
    Anything else is the server saying something else (that it is full)."""
    if reply != message.upper():
        said = reply.decode("utf-8", "replace")
        sys.exit(f"error: instead of an answer the server said {said!r}")
    return reply.decode("utf-8", "replace")


def lines():
    prompt = sys.stdin.isatty()                    # '>> ' only for a person
    while True:
        if prompt:
            print(">> ", end="", flush=True)
        line = sys.stdin.buffer.readline()
        if not line:
            if prompt:
                print()                            # end the prompt's line
            return
        yield line.rstrip(b"\n").rstrip(b"\r")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9007",
                    type=parse_addr, help="address of the server, IP:PORT")
parser.add_argument("--all-at-once", action="store_true",
                    help="send every line before reading any reply")
parser.add_argument("--max-frame", type=int, default=1024 * 1024,
                    metavar="BYTES", help="the largest reply we accept")
args = parser.parse_args()
host, port = args.addr
try:
    phone = socket.create_connection((host, port))
except OSError as err:
    sys.exit(f"error: could not connect to {host}:{port} (is lesson07-server "
             "running? start it with: cargo run -p lesson07-server): "
             f"{err.strerror}")

try:
    if args.all_at_once:
        messages = list(lines())
        # One sendall for everything: the frames travel glued together.
        # (For a large input a thread would have to send while we read;
        # see the Rust client.)
        phone.sendall(b"".join(frame(m) for m in messages))
        phone.shutdown(socket.SHUT_WR)
        for message in messages:
            print(answer_to(message, read_reply(phone)))
    else:
        for message in lines():
            phone.sendall(frame(message))
            print(answer_to(message, read_reply(phone)))
except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
    sys.exit("error: server reset the connection")
phone.close()
