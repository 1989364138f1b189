"""Lesson 08 server in Python: put, get and list files, verified by sha256.

Usage: python3 server.py [ADDR] [--dir DIR] [--max-size BYTES] [--idle-timeout SECS]
                        [--max-clients N]
       (default 127.0.0.1:9008, ./lesson08-files, 4 GiB, 60 s, 100 clients)
Every message is a 4-byte big-endian length, a JSON header, then raw bytes.
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
KEEP_PARTIALS = 24 * 60 * 60                       # seconds
busy = set()                                       # partials being written now
busy_lock = threading.Lock()
log_lock = threading.Lock()


def log(*words):
    """One line of the log; a lock keeps two threads' lines apart."""
    with log_lock:
        print(*words, flush=True)


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


NOT_ON_WINDOWS = '<>:"|?*'                          # ':' would open a hidden stream
DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in "0123456789\u00b9\u00b2\u00b3"}


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


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Handler:
    """One client's requests, on a thread of its own."""

    def __init__(self, conn, peer):
        self.request, self.peer = conn, peer

    def handle(self, seats):
        try:
            with self.request:
                self.request.settimeout(args.idle_timeout)
                ending = self.serve()
        finally:
            seats.release()                            # the next caller may have it
        log("client", self.peer, ending)

    def serve(self):
        conn = self.request
        try:
            while True:
                raw = read_header(conn)
                if raw is None:
                    return "closed the connection"
                try:
                    request = json.loads(raw)
                    cmd = request["cmd"]
                    if cmd == "put":
                        self.put(conn, request["name"], request["size"], request["sha256"])
                    elif cmd == "get":
                        self.get(conn, request["name"], request.get("offset", 0))
                    elif cmd == "list":
                        self.list(conn)
                    else:
                        raise ValueError(f"unknown command {cmd!r}")
                except (ValueError, KeyError, TypeError) as err:
                    log("client", self.peer, "sent a bad header:", repr(err))
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

    def put(self, conn, name, size, sha256):
        why = check_name(name)
        if not isinstance(size, int) or size < 0:
            why = "size must be a whole number of bytes"
        elif size > args.max_size:
            why = f"{size} bytes is over the limit of {args.max_size} bytes per file"
        elif not isinstance(sha256, str) or len(sha256) != 64:
            why = "sha256 must be 64 hexadecimal digits"
        key = f"{str(sha256).lower()}-{size}-{hashlib.sha256(str(name).encode()).hexdigest()[:16]}"
        with busy_lock:
            if not why and key in busy:
                why = "the same file is being uploaded right now; try again when that ends"
            if not why:
                busy.add(key)
        if why:
            log("client", self.peer, f"was refused put {name!r}: {why}")
            return send_header(conn, {"ok": False, "error": why})
        partial = os.path.join(args.dir, ".partial", key)
        try:
            with open(partial, "ab+") as f:            # keep what an earlier try wrote
                f.seek(0)
                digest = hashlib.sha256()
                have = 0
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    have += len(chunk)
                if have > size:                        # not ours to trust: start afresh
                    f.truncate(0)
                    digest, have = hashlib.sha256(), 0
                log("client", self.peer, f"puts {name!r}: {size} bytes, from offset {have}")
                send_header(conn, {"ok": True, "offset": have})
                left = size - have
                while left:
                    chunk = conn.recv(min(left, 1 << 18))
                    if not chunk:
                        raise CutOff(size - left, size)
                    digest.update(chunk)
                    f.write(chunk)
                    left -= len(chunk)
                if digest.hexdigest() != sha256.lower():
                    f.close()
                    os.remove(partial)
                    why = (f"the {size} bytes received hash to {digest.hexdigest()}, "
                           f"not to {sha256}; nothing was stored")
                    log("client", self.peer, f"did not store {name!r}: {why}")
                    return send_header(conn, {"ok": False, "error": why})
                f.flush()
                os.fsync(f.fileno())                   # on the disk before the rename
            os.replace(partial, os.path.join(args.dir, name))
            if hasattr(os, "O_DIRECTORY"):             # fsync the folder (not on Windows)
                folder = os.open(args.dir, os.O_RDONLY | os.O_DIRECTORY)
                os.fsync(folder)
                os.close(folder)
        finally:
            with busy_lock:
                busy.discard(key)
        log("client", self.peer, f"stored {name!r}: {size} bytes, sha256 {sha256.lower()}")
        send_header(conn, {"ok": True, "name": name, "size": size, "sha256": sha256.lower()})

    def get(self, conn, name, offset):
        why = check_name(name)
        path = os.path.join(args.dir, str(name))
        # lstat looks at the name itself: symlinks and folders are not served.
        if not why and not (os.path.lexists(path) and os.path.isfile(path)
                            and not os.path.islink(path)):
            why = f"there is no file called {name!r}"
        if not why:
            f = open(path, "rb")
            size = os.fstat(f.fileno()).st_size
            if not isinstance(offset, int) or not 0 <= offset <= size:
                why = f"offset {offset} is past the end of {name!r} ({size} bytes)"
                f.close()
        if why:
            log("client", self.peer, f"was refused get {name!r}: {why}")
            return send_header(conn, {"ok": False, "error": why})
        with f:
            digest = hashlib.sha256()
            while chunk := f.read(1 << 20):
                digest.update(chunk)
            log("client", self.peer, f"gets {name!r}: {size} bytes, from offset {offset}")
            send_header(conn, {"ok": True, "size": size, "sha256": digest.hexdigest()})
            f.seek(offset)
            conn.sendfile(f)                           # the kernel copies file -> socket

    def list(self, conn):
        files = []
        try:
            for name in sorted(os.listdir(args.dir)):
                path = os.path.join(args.dir, name)
                if check_name(name) is None and os.path.isfile(path) and not os.path.islink(path):
                    files.append({"name": name, "size": os.path.getsize(path),
                                  "sha256": sha256_of(path)})
        except OSError as err:                         # out of descriptors, say
            return send_header(conn, {"ok": False, "error": f"cannot list the files: {err}"})
        log("client", self.peer, f"lists {len(files)} file" + ("" if len(files) == 1 else "s"))
        send_header(conn, {"ok": True, "files": files})


def accept_loop(listener, max_clients):
    seats = threading.BoundedSemaphore(max_clients)
    failures = 0
    while True:
        try:
            conn, addr = listener.accept()
        except OSError as err:                         # out of descriptors, say
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
            threading.Thread(target=Handler(conn, peer).handle, args=(seats,),
                             daemon=True).start()
        except RuntimeError as err:                    # no thread left on this machine
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
os.makedirs(os.path.join(args.dir, ".partial"), exist_ok=True)
removed = 0
for entry in os.scandir(os.path.join(args.dir, ".partial")):
    if time.time() - entry.stat().st_mtime > KEEP_PARTIALS:
        os.remove(entry.path)
        removed += 1
host, port = parse_addr(args.addr)
listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
if os.name != "nt":                                # Windows' flag means something else
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, port))
listener.listen(128)
print("listening on", show(listener.getsockname()), flush=True)
print(f"keeping files in {args.dir} (removed {removed} partial uploads older than a day)")
try:
    accept_loop(listener, args.max_clients)
except KeyboardInterrupt:
    pass
