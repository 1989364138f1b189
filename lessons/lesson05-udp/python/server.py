"""Lesson 05 server in Python: a mailbox that answers every letter in capitals.

Usage: python3 server.py [ADDR]        (default 127.0.0.1:9005)
"""
import json
import socket
import sys


def parse_addr(text):
    """'127.0.0.1:9005', '[::1]:9005' or 'localhost:9005' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9005' or '[::1]:9005', as in Rust."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def said(data):
    """The datagram as the Rust log shows it: in double quotes, cut at 60."""
    text = data.decode("utf-8", "replace")
    if len(text) <= 60:
        return json.dumps(text, ensure_ascii=False)
    return json.dumps(text[:60], ensure_ascii=False) + f"... ({len(data)} bytes)"


host, port = parse_addr(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9005")
family = socket.AF_INET6 if ":" in host else socket.AF_INET

server = socket.socket(family, socket.SOCK_DGRAM)  # a phone for letters
server.bind((host, port))                          # the SIM card, and that is all
print("listening on", show(server.getsockname()), flush=True)

try:
    while True:                  # no accept: one loop serves everyone
        try:
            # One whole datagram and its sender's address.
            data, client_addr = server.recvfrom(65535)
        except ConnectionError as err:  # Windows: an earlier reply bounced
            print(f"an earlier datagram bounced ({err}); still listening")
            continue
        print("client", show(client_addr), "said", said(data))
        try:
            server.sendto(data.upper(), client_addr)  # addressed by hand
        except OSError as err:   # this one reply failed, not the server
            print("could not answer client", show(client_addr) + ":", err)
except KeyboardInterrupt:        # Ctrl-C: stop quietly, as Rust does
    pass
