"""Lesson 12 client in Python: lesson 04's client over TCP or a Unix domain socket.

Usage: python3 client.py [ADDR] [--unix PATH]      (default [::1]:9012)
Type q to ask the server to hang up, or end the input (Ctrl-D; Ctrl-Z Enter on Windows).
"""
import argparse
import socket
import sys

WAIT = 10          # seconds: the longest we wait to get through, and for any reply
PIECE = 64 * 1024  # send this much, read its reply, then send the next piece
ADVICE = "is lesson12-server running? start it with: cargo run -p lesson12-server"


def dial(text):
    """Try every address the name has, in order, as the Rust client does."""
    host, _, port = text.rpartition(":")
    tried = []
    for family, kind, proto, _, where in socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM):
        phone = socket.socket(family, kind, proto)
        phone.settimeout(WAIT)
        try:
            phone.connect(where)
            return phone
        except OSError as err:
            phone.close()
            tried.append(f"{show(where)}: {err}")
    sys.exit(f"error: could not connect to {text} ({ADVICE}): {'; '.join(tried)}")


def dial_unix(path):
    phone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    phone.settimeout(WAIT)
    try:
        phone.connect(path)
    except PermissionError as err:
        sys.exit(f"error: could not connect to {path} "
                 f"(its permissions let only its owner connect): {err}")
    except OSError as err:
        sys.exit(f"error: could not connect to {path} ({ADVICE}): {err}")
    return phone


def show(where):
    host, port = where[0], where[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def recv_exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            sys.exit("error: server closed the connection")
        data += chunk
    return data


def talk(phone, message):
    """One message. Returns False once the server has hung up after our q."""
    if message.lower() == b"q":
        phone.sendall(message)
        phone.shutdown(socket.SHUT_WR)
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
        answer = recv_exactly(phone, len(piece))
        if answer != piece.upper():                # not an echo: the server said something else
            answer += phone.recv(1024)
            sys.exit("error: the server did not echo our message, it said: "
                     + answer.decode("utf-8", errors="replace").rstrip())
        reply += answer
    print(reply.decode("utf-8", errors="replace"))
    return True


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="[::1]:9012")
parser.add_argument("--unix", metavar="PATH")
args = parser.parse_args()
phone = dial_unix(args.unix) if args.unix else dial(args.addr)

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
except socket.timeout:
    sys.exit(f"error: the server sent no reply within {WAIT} s")
except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
    sys.exit("error: server reset the connection")
phone.close()
