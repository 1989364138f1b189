"""Lesson 13 client in Python: lesson 04's client, with a time limit on every reply.

Usage: python3 client.py [ADDR] [--timeout SECS]   (default 127.0.0.1:9013, 10 s)
Type q to ask the server to hang up, or end the input (Ctrl-D; Ctrl-Z Enter on Windows).
"""
import argparse
import socket
import sys

PIECE = 64 * 1024  # send this much, read its reply, then send the next piece


def recv_exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:                              # b"": the server hung up mid-call
            sys.exit("error: server closed the connection")
        data += chunk
    return data


def talk(phone, message):
    """One message. Returns False once the server has hung up after our q."""
    if message.lower() == b"q":
        phone.sendall(message)
        phone.shutdown(socket.SHUT_WR)             # half-close: we still listen
        rest = b""
        while chunk := phone.recv(1024):
            rest += chunk
        if rest:
            print(rest.decode("utf-8", errors="replace"))
        print("server hung up, as asked")
        return False
    reply = b""
    for start in range(0, len(message), PIECE):
        piece = message[start:start + PIECE]
        phone.sendall(piece)
        reply += recv_exactly(phone, len(piece))
    print(reply.decode("utf-8", errors="replace"))
    return True


def seconds(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds from 1 up")
    return int(text)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9013")
parser.add_argument("--timeout", type=seconds, default=10, metavar="SECS")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

try:
    phone = socket.create_connection((host.strip("[]"), int(port)))
except OSError as err:
    sys.exit(f"error: could not connect to {args.addr} (is lesson13-proxy running? "
             f"start it with: cargo run -p lesson13-proxy): {err}")
phone.settimeout(args.timeout)                     # the one new line: no wait lasts for ever

prompt = sys.stdin.isatty()
try:
    while True:
        if prompt:
            print(">> ", end="", flush=True)
        line = sys.stdin.buffer.readline()
        if not line:
            if prompt:
                print()
            break
        message = line.strip()
        if message and not talk(phone, message):
            break
except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
    sys.exit("error: server reset the connection")
except socket.timeout:
    sys.exit(f"error: no reply within {args.timeout} s; the server or the line went silent, "
             "hanging up")
phone.close()
