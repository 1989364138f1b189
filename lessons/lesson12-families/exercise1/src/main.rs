//! Lesson 12, exercise 1 (solution): a Unix-socket door to a TCP server.
//!
//! Docker's daemon answers HTTP on `/var/run/docker.sock`, a Unix domain
//! socket, so only users who may write that file can talk to it, and
//! `curl --unix-socket /var/run/docker.sock http://localhost/version` asks
//! it something. This program gives lesson 09's web server the same door:
//! every caller on the socket file is connected to the server's TCP address,
//! and the bytes are copied both ways until both sides are done. It does not
//! read HTTP at all: any TCP server can sit behind it.

// ANCHOR: imports
use std::process::ExitCode;

use clap::Parser;
// ANCHOR_END: imports

// ANCHOR: args
/// Lesson 12, exercise 1: listens on a Unix domain socket and connects each
/// caller to a TCP server, lesson 09's web server by default, copying bytes
/// both ways. Try: curl --unix-socket /tmp/lesson12-web.sock http://localhost/
#[derive(Parser)]
#[command(version)]
#[cfg_attr(not(unix), allow(dead_code))]
struct Args {
    /// Address of the TCP server behind the door: IP:PORT, [IPv6]:PORT or localhost:PORT
    #[arg(default_value = "127.0.0.1:9009", value_parser = shared::parse_addr)]
    addr: String,

    /// The socket file to listen on (Unix only)
    #[arg(long, value_name = "PATH", default_value = "/tmp/lesson12-web.sock",
          value_parser = shared::parse_socket_path)]
    unix: std::path::PathBuf,

    /// How many callers are served at once; the next one is turned away
    #[arg(long, value_name = "N", default_value = "100", value_parser = clap::value_parser!(u64).range(1..))]
    max_clients: u64,
}

fn main() -> ExitCode {
    let args: Args = shared::parse_args();
    #[cfg(unix)]
    return shared::exit_status(door::run(&args));
    // Elsewhere `parse_socket_path` has refused every path already.
    #[cfg(not(unix))]
    {
        let _ = args;
        ExitCode::from(2)
    }
}
// ANCHOR_END: args

// ANCHOR: door-imports
#[cfg(unix)]
mod door {
    use std::fs;
    use std::io::{self, Read, Write};
    use std::net::{Shutdown, TcpStream};
    use std::os::fd::OwnedFd;
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::Path;
    use std::thread;
    use std::time::Duration;

    use anyhow::{Context, bail};
    use shared::Seats;
    use socket2::{Domain, SockAddr, Socket, Type};

    use super::*;
    // ANCHOR_END: door-imports

    // ANCHOR: door-listen
    /// The server's socket file, as in lesson 12: refuse a live server or a
    /// file that is not a socket, remove a stale one, and make the file
    /// private between `bind` and `listen`.
    fn listen(path: &Path) -> anyhow::Result<UnixListener> {
        let shown = path.display();
        if let Ok(meta) = fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                bail!("{shown} exists and is not a socket: refusing to touch it");
            }
            if UnixStream::connect(path).is_ok() {
                bail!("another server is listening on {shown} (stop it first)");
            }
            fs::remove_file(path).with_context(|| format!("could not remove stale {shown}"))?;
        }
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket
            .bind(&SockAddr::unix(path)?)
            .with_context(|| format!("could not listen on {shown}"))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        socket.listen(128)?;
        Ok(UnixListener::from(OwnedFd::from(socket)))
    }
    // ANCHOR_END: door-listen

    // ANCHOR: door-run
    pub fn run(args: &Args) -> anyhow::Result<()> {
        let listener = listen(&args.unix)?;
        println!("listening on {}", args.unix.display());
        let seats = Seats::new(usize::try_from(args.max_clients).unwrap_or(usize::MAX));
        for (n, caller) in (1u64..).zip(listener.incoming()) {
            let Ok(caller) = caller else { continue }; // as lesson 06: try the next
            let Some(seat) = seats.take() else {
                let mut caller = caller;
                let _ = caller
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
                println!(
                    "caller {n} turned away: all {} seats are taken",
                    seats.max()
                );
                continue;
            };
            println!("caller {n} connected");
            let addr = args.addr.clone();
            let spawned = thread::Builder::new().spawn(move || {
                pass_through(caller, &addr, n);
                drop(seat);
            });
            if let Err(err) = spawned {
                println!("caller {n} could not be served ({err}), hanging up");
            }
        }
        Ok(())
    }
    // ANCHOR_END: door-run

    // ANCHOR: relay
    /// Copies from `from` to `to` until `from` ends, then half-closes `to`,
    /// so the other side sees the end too. A side idle for a minute ends it.
    fn relay(mut from: impl io::Read, to: &mut impl Write, shut: impl FnOnce()) {
        let _ = io::copy(&mut from, to);
        shut();
    }
    // ANCHOR_END: relay

    // ANCHOR: pass-through
    /// One caller: dial the TCP server, then copy both ways, one direction
    /// on a thread of its own, until both have ended.
    fn pass_through(mut caller: UnixStream, addr: &str, n: u64) {
        let idle = Some(Duration::from_secs(60));
        let server = match TcpStream::connect(addr) {
            Ok(server) => server,
            Err(err) => {
                println!("caller {n}: could not reach {addr}: {err}");
                let _ = caller.write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                // Read what the caller sent before hanging up (a little,
                // for a second at most): closing with it unread would make
                // the kernel report a reset, and the answer could be lost.
                let _ = caller.shutdown(Shutdown::Write);
                let _ = caller.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = io::copy(&mut (&caller).take(64 * 1024), &mut io::sink());
                return;
            }
        };
        let (Ok(up_from), Ok(down_to)) = (caller.try_clone(), server.try_clone()) else {
            return;
        };
        for timeout in [caller.set_read_timeout(idle), server.set_read_timeout(idle)] {
            if timeout.is_err() {
                return;
            }
        }
        // The caller's bytes up to the server, on a second thread...
        let up = thread::Builder::new().spawn(move || {
            let mut to = &server;
            relay(up_from, &mut to, || {
                let _ = server.shutdown(Shutdown::Write);
            });
        });
        // ...and the server's answer down to the caller, on this one.
        let mut to = &caller;
        relay(down_to, &mut to, || {
            let _ = caller.shutdown(Shutdown::Write);
        });
        if let Ok(up) = up {
            let _ = up.join();
        }
        println!("caller {n} done");
    }
    // ANCHOR_END: pass-through
}
