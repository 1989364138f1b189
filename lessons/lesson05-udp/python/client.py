"""Lesson 05 client in Python: each line one datagram; wait, retry, give up.

Usage: python3 client.py [ADDR] [--buffer BYTES]   (default 127.0.0.1:9005, 65535)
"""
import argparse
import socket
import sys

WAIT = 1.0   # seconds to wait for a reply before sending again
TRIES = 3    # sends per message before giving up on it


def buffer_size(text):
    """--buffer: 1 to 65535 bytes, like the Rust client's u16 option."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not in 1..=65535")
    return int(text)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9005")
parser.add_argument("--buffer", type=buffer_size, default=65535, metavar="BYTES",
                    help="size of the buffer a reply is read into")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

# The first address the name resolves to, and its family (IPv4 or IPv6).
family, _, _, _, server_addr = socket.getaddrinfo(
    host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0]
client = socket.socket(family, socket.SOCK_DGRAM)
client.connect(server_addr)    # sends nothing: a filter, and ICMP errors reach us
client.settimeout(WAIT)        # never wait for ever for a lost datagram


def lines():
    """Lines of stdin as bytes, without line endings; a prompt on a terminal."""
    while True:
        if sys.stdin.isatty():
            print(">> ", end="", flush=True)
        line = sys.stdin.buffer.readline()
        if not line:                           # end of input
            if sys.stdin.isatty():
                print()                        # end the line the prompt is on
            return
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):           # typed on Windows
                line = line[:-1]
        yield line                             # empty lines are sent too


def ask(message):
    """Send one datagram and wait for the reply, TRIES times at most."""
    for _ in range(TRIES):
        try:
            client.send(message)               # one send, one datagram
            return client.recv(args.buffer)    # a longer reply is cut short
        except (socket.timeout, ConnectionRefusedError, ConnectionResetError):
            continue                           # lost, or nobody there: try again
    return None                                # no reply


unanswered = 0
try:
    for message in lines():
        reply = ask(message)
        if reply is None:
            print(f"no reply from {args.addr} (is lesson05-server running?)",
                  file=sys.stderr)
            unanswered += 1
        else:
            print(reply.decode("utf-8", errors="replace"))
except OSError as err:                         # a line too big for a datagram
    sys.exit(f"error: talking to {args.addr}: {err.strerror}")
client.close()                                 # nothing to hang up
if unanswered:
    sys.exit(f"error: {unanswered} message(s) got no reply from {args.addr}")
