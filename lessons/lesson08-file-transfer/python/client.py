"""Lesson 08 client in Python: put PATH [NAME], get NAME [PATH], list.

Usage: python3 client.py [ADDR]                (default 127.0.0.1:9008)
Reads one command a line; the exit status is 1 if any command failed.
"""
import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import unicodedata


class Refused(Exception):
    """The server said no; the connection is still in step."""


def clean(text):
    """Text from the server, safe to print: control characters shown escaped."""
    return "".join(c.encode("unicode_escape").decode() if unicodedata.category(c) == "Cc"
                   else c for c in str(text))


def recv_exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 1 << 18))
        if not chunk:
            raise ConnectionError("server closed the connection before it answered")
        data += chunk
    return data


def send_header(conn, header):
    body = json.dumps(header, ensure_ascii=False).encode()
    conn.sendall(struct.pack("!I", len(body)) + body)   # the length, then the JSON


MAX_HEADER = 16 * 1024 * 1024                     # a long list fits
MAX_SIZE = 4 << 30                                 # the largest download


def read_answer(conn):
    (size,) = struct.unpack("!I", recv_exactly(conn, 4))
    if size > MAX_HEADER:                          # a number from the network: check it
        raise ValueError(f"server announced a header of {size} bytes, "
                         f"over our limit of {MAX_HEADER}")
    answer = json.loads(recv_exactly(conn, size))
    if answer.get("ok") is not True:
        raise Refused("server refused: " + clean(answer.get("error")))
    return answer


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def put(conn, path, name):
    size, sha256 = os.path.getsize(path), sha256_of(path)
    send_header(conn, {"cmd": "put", "name": name, "size": size, "sha256": sha256})
    offset = read_answer(conn)["offset"]           # bytes the server already has
    with open(path, "rb") as f:
        f.seek(offset)
        conn.sendfile(f)
    stored = read_answer(conn)
    resumed = f", resumed at {offset}" if offset else ""
    return f"put {name}: {stored['size']} bytes{resumed}, sha256 {stored['sha256']}"


def get(conn, name, path):
    part = path + ".part"
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = {"cmd": "get", "name": name}
    if have:
        request["offset"] = have
    send_header(conn, request)
    try:
        found = read_answer(conn)
    except Refused:
        if os.path.exists(part):
            os.remove(part)
        raise
    size, sha256 = found["size"], found["sha256"]
    if not isinstance(size, int) or size > MAX_SIZE:
        raise ValueError(f"server announced {name} as {size} bytes, over our limit of {MAX_SIZE}")
    if have > size:                                # our part belongs to another file
        os.remove(part)
        raise ValueError(f"server announced {name} as {size} bytes, fewer than the {have} "
                         f"in {part}; removed it, give the same command again")
    with open(part, "ab+") as f:
        left = size - have
        while left:
            chunk = conn.recv(min(left, 1 << 18))
            if not chunk:
                raise ConnectionError(f"server hung up after {size - left} of {size} bytes "
                                      f"of {name}; give the same command again to resume")
            f.write(chunk)
            left -= len(chunk)
        f.flush()
        os.fsync(f.fileno())
    got = sha256_of(part)
    if got != sha256:
        os.remove(part)
        raise Refused(f"{name} arrived with sha256 {got}, not {sha256}; nothing was saved")
    os.replace(part, path)                         # whole and checked, or not there
    return f"get {name}: {size} bytes into {path}, sha256 {sha256}"


def list_files(conn):
    send_header(conn, {"cmd": "list"})
    files = read_answer(conn)["files"]
    lines = [f"list: {len(files)} file" + ("" if len(files) == 1 else "s")]
    lines += [clean(f"{f['name']}  {f['size']} bytes  sha256 {f['sha256']}") for f in files]
    return "\n".join(lines)


def connect(addr):
    host, _, port = addr.rpartition(":")
    try:
        return socket.create_connection((host.strip("[]"), int(port)), timeout=60)
    except OSError as err:
        sys.exit(f"error: could not connect to {addr} (is lesson08-server running? "
                 f"start it with: cargo run -p lesson08-server): {err}")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9008")
args = parser.parse_args()
conn = connect(args.addr)
given = failed = 0
prompt = sys.stdin.isatty()
while True:
    if prompt:
        print(">> ", end="", flush=True)
    line = sys.stdin.buffer.readline()
    if not line:
        break
    words = line.decode("utf-8", "replace").split()
    if not words:
        continue
    given += 1
    try:
        if conn is None:
            conn = connect(args.addr)
        if words[0] == "put" and len(words) in (2, 3):
            print(put(conn, words[1], words[2] if len(words) == 3 else os.path.basename(words[1])))
        elif words[0] == "get" and len(words) in (2, 3):
            print(get(conn, words[1], words[2] if len(words) == 3 else words[1]))
        elif words == ["list"]:
            print(list_files(conn))
        else:
            raise Refused("unknown command; use put PATH [NAME], get NAME [PATH] or list")
    except Refused as err:
        print(f"error: {' '.join(words)}: {err}", file=sys.stderr)
        failed += 1
    except (OSError, ValueError) as err:
        print(f"error: {' '.join(words)}: {err}", file=sys.stderr)
        failed += 1
        conn = None                                # out of step: connect again next time
if failed:
    sys.exit(f"error: {failed} of {given} commands failed")
