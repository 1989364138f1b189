"""Lesson 08, step 1, in Python: put, get and list files, each after a header.

Usage: python3 header_server.py [ADDR] [--dir DIR] [--max-size BYTES]
                               [--idle-timeout SECS] [--max-clients N]
       (default 127.0.0.1:9008, ./lesson08-files, 4 GiB, 60 s, 100 clients)
Every message is a 4-byte big-endian length, a JSON header, then raw bytes.
A stored file is never replaced.
"""
import argparse
import hashlib
import json
import os
import socket
import struct
import threading
import time

MAX_HEADER = 64 * 1024
NOT_ON_WINDOWS = '<>:"|?*'                          # ':' would open a hidden stream
DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}
log_lock = threading.Lock()


def log(*words):
    """One line of the log; a lock keeps two threads' lines apart."""
    with log_lock:
        print(*words, flush=True)


def show(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_name(name):
    """None if `name` is one plain file name, the same on every system, else why not."""
    if not isinstance(name, str) or not name:
        return "the name is empty"
    if len(name.encode()) > 255:
        return f"the name is {len(name.encode())} bytes long, over the limit of 255"
    for c in name:
        if c in "/\\" or ord(c) < 32 or 127 <= ord(c) < 160 or c in NOT_ON_WINDOWS:
            return f"the name contains {c!r}, which is not allowed"
    if name.startswith("."):
        return "a name may not start with '.'"
    if name.endswith((".", " ")):                  # Windows would drop them
        return "a name may not end with '.' or ' '"
    stem = name.split(".")[0].rstrip(" ")
    if stem.upper() in DEVICES:                    # nul.txt is a device on Windows
        return f"{stem!r} is the name of a device on Windows"
    return None


class CutOff(Exception):
    """The stream ended before all the bytes we wait for arrived."""


def recv_exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(min(size - len(data), 65536))
        if not chunk:
            raise CutOff(len(data), size)
        data += chunk
    return data


def read_header(conn):
    """The next JSON header as bytes, or None if the client closed politely."""
    first = conn.recv(4)
    if not first:
        return None
    (size,) = struct.unpack("!I", first + recv_exactly(conn, 4 - len(first)))
    if size > MAX_HEADER:
        raise OverflowError(size)
    return recv_exactly(conn, size)


def send_header(conn, header):
    body = json.dumps(header, ensure_ascii=False).encode()
    conn.sendall(struct.pack("!I", len(body)) + body)


def stored(name):
    """The path of stored file `name`, or None: no such plain file."""
    path = os.path.join(args.dir, name)
    if os.path.isfile(path) and not os.path.islink(path):
        return path
    return None


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def serve(conn, peer):
    try:
        while True:
            raw = read_header(conn)
            if raw is None:
                return "closed the connection"
            try:
                request = json.loads(raw)
                cmd = request["cmd"]
                if cmd == "put":
                    put(conn, peer, request["name"], request["size"], request["sha256"])
                elif cmd == "get":
                    get(conn, peer, request["name"])
                elif cmd == "list":
                    list_files(conn, peer)
                else:
                    raise ValueError(f"unknown command {cmd!r}")
            except (ValueError, KeyError, TypeError) as err:
                log("client", peer, "sent a bad header:", repr(err))
                send_header(conn, {"ok": False, "error": f"bad header: {err!r}"})
    except OverflowError as err:
        return f"announced a header of {err.args[0]} bytes, over the limit of {MAX_HEADER}; hanging up"
    except CutOff as err:
        return f"hung up in the middle ({err.args[0]} of {err.args[1]} bytes arrived)"
    except socket.timeout:
        return "was silent or did not read for too long, hanging up"
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return "reset the connection"
    except OSError as err:
        return f"error: {err}, hanging up"


def put(conn, peer, name, size, sha256):
    why = check_name(name)
    if not why and (not isinstance(size, int) or size < 0):
        why = "size must be a whole number of bytes"
    elif not why and size > args.max_size:
        why = f"{size} bytes is over the limit of {args.max_size} bytes per file"
    elif not why and (not isinstance(sha256, str) or len(sha256) != 64):
        why = "sha256 must be 64 hexadecimal digits"
    if not why:
        try:                                       # "x": only if it does not exist yet
            f = open(os.path.join(args.dir, name), "xb")
        except FileExistsError:
            why = f"there is already a file called {name!r}"
        except OSError as err:
            why = f"cannot create the file: {err}"
    if why:
        log("client", peer, f"was refused put {name!r}: {why}")
        return send_header(conn, {"ok": False, "error": why})
    path = f.name
    log("client", peer, f"puts {name!r}: {size} bytes")
    try:
        with f:
            send_header(conn, {"ok": True})        # go ahead
            digest, left = hashlib.sha256(), size
            while left:
                chunk = conn.recv(min(left, 1 << 18))
                if not chunk:
                    raise CutOff(size - left, size)
                digest.update(chunk)
                f.write(chunk)
                left -= len(chunk)
    except BaseException:
        os.remove(path)                            # a cut-off file is not a file
        raise
    got = digest.hexdigest()
    if got != sha256.lower():
        os.remove(path)
        why = f"the {size} bytes received hash to {got}, not to {sha256}; nothing was stored"
        log("client", peer, f"did not store {name!r}: {why}")
        return send_header(conn, {"ok": False, "error": why})
    log("client", peer, f"stored {name!r}: {size} bytes, sha256 {got}")
    send_header(conn, {"ok": True, "name": name, "size": size, "sha256": got})


def get(conn, peer, name):
    why = check_name(name)
    path = None if why else stored(name)
    if not why and path is None:
        why = f"there is no file called {name!r}"
    if why:
        log("client", peer, f"was refused get {name!r}: {why}")
        return send_header(conn, {"ok": False, "error": why})
    with open(path, "rb") as f:
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        size = f.tell()
        log("client", peer, f"gets {name!r}: {size} bytes")
        send_header(conn, {"ok": True, "size": size, "sha256": digest.hexdigest()})
        f.seek(0)
        conn.sendfile(f, 0, size)                  # the kernel copies file -> socket


def list_files(conn, peer):
    try:
        files = [{"name": name, "size": os.path.getsize(path), "sha256": sha256_of(path)}
                 for name in sorted(os.listdir(args.dir))
                 if check_name(name) is None and (path := stored(name))]
    except OSError as err:                         # out of descriptors, say
        return send_header(conn, {"ok": False, "error": f"cannot list the files: {err}"})
    log("client", peer, f"lists {len(files)} file" + ("" if len(files) == 1 else "s"))
    send_header(conn, {"ok": True, "files": files})


def handle(conn, peer, seats):
    try:
        with conn:
            conn.settimeout(args.idle_timeout)
            ending = serve(conn, peer)
    finally:
        seats.release()                            # the next caller may have it
    log("client", peer, ending)


def accept_loop(listener, max_clients):
    seats = threading.BoundedSemaphore(max_clients)
    failures = 0
    while True:
        try:
            conn, addr = listener.accept()
        except OSError as err:                     # out of descriptors, say
            if failures == 0:
                log(f"accept failed: {err}; trying again every 100 ms")
            failures += 1
            time.sleep(0.1)
            continue
        if failures:
            log(f"accept works again after {failures} failures")
            failures = 0
        peer = show(addr)
        if not seats.acquire(blocking=False):
            why = f"the server is busy with {max_clients} clients; try again later"
            try:
                send_header(conn, {"ok": False, "error": why})
            except OSError:
                pass
            conn.close()
            log("client", peer, f"turned away: {max_clients} clients are being served")
            continue
        log("client", peer, "connected")
        try:
            threading.Thread(target=handle, args=(conn, peer, seats), daemon=True).start()
        except RuntimeError as err:                # no thread left on this machine
            seats.release()
            conn.close()
            log("client", peer, f"could not be served: no thread for it ({err}); hung up")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9008")
parser.add_argument("--dir", default="lesson08-files")
parser.add_argument("--max-size", type=int, default=4 << 30, metavar="BYTES")
parser.add_argument("--idle-timeout", type=int, default=60, metavar="SECS")
parser.add_argument("--max-clients", type=int, default=100, metavar="N")
args = parser.parse_args()
os.makedirs(args.dir, exist_ok=True)
host, _, port = args.addr.rpartition(":")
host = host.strip("[]")
listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
if os.name != "nt":                                # Windows' flag means something else
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, int(port)))
listener.listen(128)
print("listening on", show(listener.getsockname()), flush=True)
print(f"keeping files in {args.dir}", flush=True)
try:
    accept_loop(listener, args.max_clients)
except KeyboardInterrupt:
    pass
