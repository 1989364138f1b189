"""Lesson 04 server in Python: serve callers one by one, and log how each call ended.

Usage: python3 server.py [ADDR] [--idle-timeout SECS]   (default 127.0.0.1:9004, 60 s)
"""
import argparse
import socket
import sys


def parse_addr(text):
    """'127.0.0.1:9004', '[::1]:9004' or 'localhost:9004' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9004' or '[::1]:9004', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def seconds(text):
    """--idle-timeout: a whole number of seconds, at least 1."""
    secs = int(text)
    if secs < 1:
        raise argparse.ArgumentTypeError("the timeout must be at least 1 second")
    return secs


def serve(conn, peer):
    """The communication loop. Returns how the call ended, in the log's words."""
    while True:
        try:
            data = conn.recv(1024)                 # waits at most the timeout
        except socket.timeout:                     # TimeoutError, since Python 3.10
            return "idle"
        except (ConnectionResetError, ConnectionAbortedError):
            return "reset"                         # the caller's side sent an RST
        if not data:                               # b"": end of stream, a polite hang-up
            return "closed"
        print("client", peer, "said", repr(data.decode("utf-8", "replace")))
        if data.strip().lower() == b"q":           # q or Q, spaces and line end allowed
            return "quit"
        try:
            conn.sendall(data.upper())
        except socket.timeout:                     # the caller does not read our replies
            return "not reading"
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            return "reset"                         # Python ignores SIGPIPE, as Rust does


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9004")
parser.add_argument("--idle-timeout", type=seconds, default=60, metavar="SECS")
args = parser.parse_args()
host, port = parse_addr(args.addr)
family = socket.AF_INET6 if ":" in host else socket.AF_INET

phone = socket.socket(family, socket.SOCK_STREAM)  # buy a phone
if sys.platform != "win32":                        # as lesson 03: Unix only
    phone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
phone.bind((host, port))                           # insert the SIM card
phone.listen(5)                                    # switch it on
print("listening on", show(phone.getsockname()), flush=True)

secs = args.idle_timeout
endings = {
    "closed": "closed the connection",
    "reset": "reset the connection",
    "quit": "asked to quit, hanging up",
    "idle": f"was idle for {secs} s, hanging up",
    "not reading": f"did not read our reply for {secs} s, hanging up",
}
while True:                                        # the connection loop
    try:
        conn, client_addr = phone.accept()
    except OSError as err:
        print(f"accept failed: {err}; waiting for the next client")
        continue
    peer = show(client_addr)
    print("client", peer, "connected")
    conn.settimeout(secs)                          # one limit for recv and sendall alike
    try:
        print("client", peer, endings[serve(conn, peer)])
    except OSError as err:                         # anything else the system reports
        print(f"client {peer}: error: {err}, hanging up")
    finally:
        conn.close()                               # hang up, however the call ended
