"""Lesson 01 client in Python: call, say one thing, print the answer.

Usage: python3 client.py [ADDR] [--message TEXT]   (default 127.0.0.1:9001, hello)
"""
import argparse
import socket

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9001")
parser.add_argument("--message", default="hello")
args = parser.parse_args()
host, _, port = args.addr.rpartition(":")

# create_connection does socket() + connect(), trying every address of host.
phone = socket.create_connection((host.strip("[]"), int(port)))
phone.sendall(args.message.encode("utf-8"))        # no newline: exactly these bytes
reply = phone.recv(1024)                           # one read, at most 1024 bytes
print(reply.decode("utf-8", errors="replace"))
phone.close()
