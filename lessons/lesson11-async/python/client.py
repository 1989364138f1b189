"""Lesson 11 client in Python: the keyboard and the server, awaited together.

Usage: python3 client.py [ADDR]        (default 127.0.0.1:9011)
Type /quit, or end the input (Ctrl-D, or Ctrl-Z Enter on Windows), to leave.
"""
import argparse
import asyncio
import os
import sys


async def main():
    host, _, port = args.addr.rpartition(":")
    try:
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except OSError as err:
        sys.exit(f"error: could not connect to {args.addr} (is lesson11-server running? "
                 f"start it with: cargo run -p lesson11-server): {err}")
    prompt = sys.stdin.isatty()
    # asyncio cannot read a terminal or a file without blocking on every
    # system, so the keyboard is read on a helper thread (to_thread).
    keyboard = asyncio.create_task(asyncio.to_thread(sys.stdin.buffer.readline))
    server = asyncio.create_task(reader.readline())
    typing = True
    if prompt:
        print(">> ", end="", flush=True)
    while True:
        # Wait for whichever comes first. The other task is *not* cancelled:
        # it stays pending for the next turn, so nothing it reads is lost.
        # (Rust's select! drops the loser; there the future must be
        # cancellation safe.)
        waiting = {server, keyboard} if typing else {server}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if server in done:
            try:
                line = server.result()
            except OSError as err:
                sys.exit(f"error: lost the connection to the server: {err}")
            if not line:
                if typing:
                    print("error: server closed the connection", file=sys.stderr, flush=True)
                    sys.stdout.flush()
                    os._exit(1)                            # the keyboard thread may be waiting
                return
            print(line.rstrip(b"\r\n").decode("utf-8", errors="replace"), flush=True)
            server = asyncio.create_task(reader.readline())
        if typing and keyboard in done:
            line = keyboard.result()
            if not line:                                   # end of input
                typing = False
                writer.write_eof()
                continue
            line = line.rstrip(b"\r\n")
            writer.write(line + b"\n")
            await writer.drain()
            if line == b"/quit":
                typing = False
                writer.write_eof()
                continue
            if prompt:
                print(">> ", end="", flush=True)
            keyboard = asyncio.create_task(asyncio.to_thread(sys.stdin.buffer.readline))


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("addr", nargs="?", default="127.0.0.1:9011")
args = parser.parse_args()
asyncio.run(main())
