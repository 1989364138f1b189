"""Lesson 12 in Python: lesson 06's echo server on IPv4, IPv6 or a Unix domain socket.

Usage: python3 server.py [ADDR] [--v6only] [--unix PATH] [--idle-timeout SECS] [--max-clients N]
       (default [::1]:9012; [::]:PORT is dual stack, IPv4 callers too)
"""
import argparse
import os
import socket
import stat
import struct
import sys
import threading
import time

SUN_PATH = 108 if sys.platform.startswith("linux") else 104  # bytes, the last one a zero


def parse_addr(text):
    """'127.0.0.1:9012', '[::1]:9012' or 'localhost:9012' -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show(addr):
    """(host, port, ...) -> '127.0.0.1:9012' or '[::1]:9012', as Rust prints it."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log(*words):
    """One log line, written in one piece, so that two threads logging at
    the same moment never mix their lines (print writes word by word)."""
    sys.stdout.write(" ".join(str(word) for word in words) + "\n")
    sys.stdout.flush()


def at_least_one(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def socket_path(text):
    """--unix PATH: refused where there are no Unix sockets, or sun_path cannot hold it."""
    if not hasattr(socket, "AF_UNIX"):
        raise argparse.ArgumentTypeError("Unix domain sockets are not available on this system")
    if len(os.fsencode(text)) >= SUN_PATH:
        raise argparse.ArgumentTypeError(
            f"the path is {len(os.fsencode(text))} bytes long, and a socket's path must be "
            f"shorter than {SUN_PATH} bytes here (the size of sun_path)")
    return text


def listen_tcp(text, v6only):
    """socket, setsockopt, bind, listen: the family comes from the address."""
    host, port = parse_addr(text)
    family, _, _, _, where = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:                  # dual stack unless --v6only, on every system
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(where)
    sock.listen(128)
    return sock


def clear_the_way(path):
    """True if a stale socket file was removed; exits if the path is not ours to take."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        sys.exit(f"error: {path} exists and is not a socket: refusing to touch it (pass another path)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)                        # somebody answers: a live server
    except ConnectionRefusedError:                 # nobody behind the file: stale
        os.remove(path)
        return True
    finally:
        probe.close()
    sys.exit(f"error: another server is listening on {path} (stop it first, or pass another path)")


def listen_unix(path):
    """bind creates the file; make it the owner's alone before listen lets anyone in."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def credentials(conn):
    """The caller's process and user ids, from the kernel (Linux: SO_PEERCRED)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return "credentials unknown: not offered here"
    pid, uid, _gid = struct.unpack("3i", conn.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return f"pid {pid}, uid {uid}"


def serve(conn, peer, seats):
    """One call, on its own thread: lesson 06's conversation."""
    conn.settimeout(args.idle_timeout)
    try:
        ending = talk(conn, peer)
    except socket.timeout:
        ending = f"was idle for {args.idle_timeout} s, hanging up"
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        ending = "reset the connection"
    except OSError as err:
        ending = f"failed: {err}, hanging up"
    conn.close()
    log("client", peer, ending)
    seats.release()                                # the seat is free again


def talk(conn, peer):
    while True:
        data = conn.recv(1024)
        if not data:
            return "closed the connection"
        log("client", peer, "said", repr(data.decode("utf-8", "replace")))
        if data.strip().lower() == b"q":
            return "asked to quit, hanging up"
        conn.sendall(data.upper())


def serve_callers(listener, name_of):
    """The connection loop: a seat and a thread per caller, the rest turned away."""
    seats = threading.BoundedSemaphore(args.max_clients)
    failures = 0
    while True:
        try:
            conn, addr = listener.accept()
        except OSError as err:                     # e.g. too many open files
            if failures == 0:
                log(f"accept failed: {err}; trying again every 100 ms")
            failures += 1
            time.sleep(0.1)
            continue
        if failures:
            log(f"accept works again after {failures} failures")
            failures = 0
        peer = name_of(conn, addr)
        if not seats.acquire(blocking=False):
            conn.settimeout(1)
            try:
                conn.sendall(b"server busy, try again later\n")
            except OSError:
                pass
            conn.close()
            log("client", peer, f"turned away: all {args.max_clients} seats are taken")
            continue
        log("client", peer, "connected")
        try:
            threading.Thread(target=serve, args=(conn, peer, seats), daemon=True).start()
        except RuntimeError as err:                # no thread left
            conn.close()
            seats.release()
            log("client", peer, f"could not be served ({err}), hanging up")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="[::1]:9012")
parser.add_argument("--v6only", action="store_true")
parser.add_argument("--unix", metavar="PATH", type=socket_path)
parser.add_argument("--idle-timeout", type=at_least_one, default=60, metavar="SECS")
parser.add_argument("--max-clients", type=at_least_one, default=100, metavar="N")
args = parser.parse_args()
if args.v6only and not args.addr.startswith("["):
    parser.error(f"--v6only needs an IPv6 address such as [::]:9012, not '{args.addr}'")

if args.unix is None:
    try:
        listener = listen_tcp(args.addr, args.v6only)
    except OSError as err:
        sys.exit(f"error: could not listen on {args.addr} (is another server using it? "
                 f"pass another address, e.g. 127.0.0.1:0): {err}")
    bound = show(listener.getsockname())
    log("listening on", bound)
    if not parse_addr(bound)[0] in ("127.0.0.1", "::1"):
        print(f"warning: listening on {bound}: other machines on the network can now connect",
              file=sys.stderr)
    try:
        serve_callers(listener, lambda conn, addr: show(addr))
    except KeyboardInterrupt:
        pass
else:
    stale = clear_the_way(args.unix)
    try:
        listener = listen_unix(args.unix)
    except OSError as err:
        sys.exit(f"error: could not listen on {args.unix}: {err}")
    log("listening on", args.unix)
    if stale:
        log("removed a stale socket file: its server had gone without removing it")
    callers = 0

    def name_of(conn, _unnamed):
        global callers
        callers += 1
        return f"{callers} ({credentials(conn)})"

    try:
        serve_callers(listener, name_of)
    except KeyboardInterrupt:                      # Ctrl-C: leave no file behind
        os.remove(args.unix)
        log("stopped; removed", args.unix)
