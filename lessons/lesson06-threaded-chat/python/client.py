"""Lesson 06 client in Python: listen and talk at the same time.

Usage: python3 client.py [ADDR]        (default 127.0.0.1:9006)
Type /quit, or end the input (Ctrl-D, or Ctrl-Z Enter on Windows), to leave.
"""
import argparse
import os
import socket
import sys
import threading

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9006")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

try:                                           # buy a phone and dial
    phone = socket.create_connection((host.strip("[]"), int(port)))
except OSError as err:
    sys.exit(f"error: could not connect to {args.addr} (is lesson06-server running? "
             f"start it with: cargo run -p lesson06-server): {err}")

quitting = threading.Event()                   # is the end our idea?


def listen():
    """The second thread: print every line from the server as it arrives."""
    try:
        for line in phone.makefile("rb"):
            print(line.rstrip(b"\r\n").decode("utf-8", errors="replace"), flush=True)
        ended = "server closed the connection"
    except OSError as err:
        ended = f"lost the connection to the server: {err}"
    if not quitting.is_set():
        print(f"error: {ended}", file=sys.stderr, flush=True)
        os._exit(1)                            # the main thread is stuck reading the keyboard


listener = threading.Thread(target=listen)
listener.start()

prompt = sys.stdin.isatty()                    # '>> ' only for a person typing
while True:                                    # the main thread: send what is typed
    if prompt:
        print(">> ", end="", flush=True)
    line = sys.stdin.buffer.readline()
    if not line:                               # end of input: Ctrl-D
        if prompt:
            print()  # end the line the prompt is on
        break
    line = line.rstrip(b"\r\n")
    if line == b"/quit":
        quitting.set()
    try:
        phone.sendall(line + b"\n")
    except OSError:                            # the server is gone: `listen` says so
        listener.join()
        sys.exit(1)
    if line == b"/quit":
        break
quitting.set()
try:
    phone.shutdown(socket.SHUT_WR)             # done talking: the server reads b""
except OSError:
    pass
listener.join()                                # wait until the server hangs up
