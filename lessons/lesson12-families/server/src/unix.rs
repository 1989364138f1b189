//! Lesson 12 server, the Unix domain socket (`AF_UNIX`): the address is a
//! file, the file's permissions decide who may call, and the kernel can tell
//! us who is calling.

// ANCHOR: unix-imports
use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use shared::Seats;
use socket2::{Domain, SockAddr, Socket, Type};

use super::{Conn, serve_callers};

impl Conn for UnixStream {
    fn set_idle_timeout(&self, idle: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(idle))?;
        self.set_write_timeout(Some(idle))
    }
}
// ANCHOR_END: unix-imports

// ANCHOR: unix-run
/// Listens on the socket file `path` and serves every caller, numbered in
/// the order they called, since a Unix-socket caller has no address.
pub fn run(path: &Path, seats: &Seats, idle: Duration) -> anyhow::Result<()> {
    let stale = clear_the_way(path)?;
    let listener = listen(path)?;
    remove_on_ctrl_c(path)?;
    println!("listening on {}", path.display());
    if stale {
        println!("removed a stale socket file: its server had gone without removing it");
    }
    let mut callers = 0u64;
    serve_callers(
        || {
            let (conn, _unnamed) = listener.accept()?;
            callers += 1;
            let who = match credentials(&conn) {
                Ok(who) => who,
                Err(err) => format!("credentials unknown: {err}"),
            };
            Ok((conn, format!("{callers} ({who})")))
        },
        seats,
        idle,
    )
}
// ANCHOR_END: unix-run

// ANCHOR: clear-the-way
/// Makes sure `path` is free for our socket file. Returns whether a stale
/// file was removed.
///
/// `bind` fails when the file exists, even if the server that made it died
/// long ago: a socket file outlives its socket. So we look first. Anything
/// that is not a socket is never removed. A socket file is removed only when
/// nothing answers on it: connecting is the one sure test of a live server.
fn clear_the_way(path: &Path) -> anyhow::Result<bool> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err).with_context(|| format!("could not look at {shown}")),
    };
    if !meta.file_type().is_socket() {
        bail!("{shown} exists and is not a socket: refusing to touch it (pass another path)");
    }
    match UnixStream::connect(path) {
        Ok(_live) => {
            bail!("another server is listening on {shown} (stop it first, or pass another path)")
        }
        // "Connection refused": a socket file with no socket behind it.
        Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
            fs::remove_file(path).with_context(|| format!("could not remove stale {shown}"))?;
            Ok(true)
        }
        Err(err) => Err(err).with_context(|| format!("could not check who is on {shown}")),
    }
}
// ANCHOR_END: clear-the-way

// ANCHOR: unix-listen
/// The phone calls of lesson 03, with a file for the SIM card: `bind`
/// creates the socket file, with the permissions the umask leaves (often
/// anyone may connect). Before `listen` nobody can connect at all, so that
/// is when we make the file ours alone: mode 0600, read and write for its
/// owner. To connect, a caller needs write permission on the file.
fn listen(path: &Path) -> anyhow::Result<UnixListener> {
    let shown = path.display();
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket
        .bind(&SockAddr::unix(path)?)
        .with_context(|| format!("could not listen on {shown}"))?;
    if let Err(err) = fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(path);
        return Err(err).with_context(|| format!("could not make {shown} private"));
    }
    socket
        .listen(128)
        .with_context(|| format!("could not listen on {shown}"))?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}
// ANCHOR_END: unix-listen

// ANCHOR: ctrl-c
/// On Ctrl-C, removes the socket file, then ends the server. Without this,
/// the file would stay behind, and the next start would find it stale.
fn remove_on_ctrl_c(path: &Path) -> anyhow::Result<()> {
    let path: PathBuf = path.to_path_buf();
    ctrlc::set_handler(move || {
        let _ = fs::remove_file(&path);
        println!("stopped; removed {}", path.display());
        std::process::exit(0);
    })
    .context("could not install the Ctrl-C handler")
}
// ANCHOR_END: ctrl-c

// ANCHOR: credentials
/// Who is calling, as the kernel knows it: on Linux, `SO_PEERCRED` gives the
/// caller's process id and user id, read when they connected. No IP address
/// can tell a server that.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn credentials(conn: &UnixStream) -> io::Result<String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let peer = getsockopt(conn, PeerCredentials)?;
    Ok(format!("pid {}, uid {}", peer.pid(), peer.uid()))
}

/// On macOS and the BSDs, `getpeereid` gives the caller's user id (and group
/// id), but no process id.
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
fn credentials(conn: &UnixStream) -> io::Result<String> {
    let (uid, _gid) = nix::unistd::getpeereid(conn)?;
    Ok(format!("uid {uid}"))
}
// ANCHOR_END: credentials

// ANCHOR: no-credentials
/// Elsewhere, no portable call: the caller stays a number.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)))]
fn credentials(_conn: &UnixStream) -> io::Result<String> {
    Err(io::Error::new(ErrorKind::Unsupported, "not offered here"))
}
// ANCHOR_END: no-credentials
