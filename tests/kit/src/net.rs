//! Sockets the tests open themselves: TCP connections and UDP sockets with
//! timeouts, the upper-case echo check, resets, a plain server of the test's
//! own, and the one timed window of the whole suite.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::TIMEOUT;

/// A plain TCP connection made by the test itself, with read and write
/// timeouts so that no read can hang the test.
pub fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

/// Reads exactly `len` bytes (or fails after [`TIMEOUT`]).
pub fn read_exactly(stream: &mut TcpStream, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0; len];
    stream.read_exact(&mut buf).context("reading the reply")?;
    Ok(buf)
}

/// Reads until the peer closes the connection (or fails after [`TIMEOUT`]).
pub fn read_to_close(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    stream
        .read_to_end(&mut buf)
        .context("reading until the peer closes")?;
    Ok(buf)
}

/// Reads until the peer hangs up and returns what came first. A reset also
/// counts as hanging up: a peer that closes while our bytes are still unread
/// makes its kernel send one (see lesson 04).
pub fn read_until_hung_up(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A signal arrived (the test's child processes end): read again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Ok(got),
            Err(err) => return Err(err).context("waiting for the peer to hang up"),
        }
    }
}

/// Sends `message` to an echo server and checks that exactly the upper-cased
/// bytes come back (Python's `bytes.upper()`).
pub fn exchange(stream: &mut TcpStream, message: &[u8]) -> Result<()> {
    stream.write_all(message).context("sending to the server")?;
    let reply = read_exactly(stream, message.len())?;
    ensure!(reply == message.to_ascii_uppercase(), "got {reply:?}");
    Ok(())
}

/// Closes `stream` abruptly: with `SO_LINGER` set to 0, closing sends a
/// reset (RST) instead of the polite FIN, as a crashed peer's kernel might.
pub fn reset(stream: TcpStream) -> Result<()> {
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

/// An address on which nothing listens: bind port 0, note the port, close.
pub fn unused_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr().map_err(Into::into)
}

// ---------------------------------------------------------------- time windows

/// Runs `read` with the socket's read timeout set to `window` (through
/// `set_timeout`), then puts [`TIMEOUT`] back. `None` if nothing arrived
/// within the window.
///
/// This is the one place where the suite waits for time to pass: proving
/// that something does *not* happen needs a window. Every other wait in the
/// suite ends on an event, with [`TIMEOUT`] only as a deadline.
pub fn within<T>(
    window: Duration,
    set_timeout: impl Fn(Option<Duration>) -> io::Result<()>,
    mut read: impl FnMut() -> io::Result<T>,
) -> Result<Option<T>> {
    let deadline = Instant::now() + window;
    let result = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(io::ErrorKind::TimedOut.into());
        }
        set_timeout(Some(left))?;
        match read() {
            // A read with a timeout is not restarted after a signal (a stop
            // and a continue of this process, say): wait out the rest.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    set_timeout(Some(TIMEOUT))?;
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(err).context("reading during a window of silence"),
    }
}

/// Asserts that nothing arrives on `stream` for `window`, and that the peer
/// does not hang up meanwhile.
pub fn assert_silent(stream: &mut TcpStream, window: Duration) -> Result<()> {
    if !still_on_the_line(stream, window)? {
        bail!("the peer closed the connection instead of staying silent");
    }
    Ok(())
}

/// Listens on `stream` for `window`, expecting silence: `true` if the peer
/// is still on the line, `false` if it hung up meanwhile. Bytes fail.
pub fn still_on_the_line(stream: &mut TcpStream, window: Duration) -> Result<bool> {
    let mut byte = [0u8; 1];
    let timeouts = stream.try_clone()?;
    match within(
        window,
        |t| timeouts.set_read_timeout(t),
        || stream.read(&mut byte),
    )? {
        None => Ok(true),
        Some(0) => Ok(false),
        Some(_) => bail!("received {:?} while expecting silence", byte[0] as char),
    }
}

/// Asserts that no datagram arrives on `socket` for `window`.
pub fn assert_no_datagram(socket: &UdpSocket, window: Duration) -> Result<()> {
    let mut buf = [0u8; 64];
    match within(
        window,
        |t| socket.set_read_timeout(t),
        || socket.recv_from(&mut buf),
    )? {
        None => Ok(()),
        Some((n, from)) => bail!("unexpected datagram from {from}: {:?}", &buf[..n.min(64)]),
    }
}

// ---------------------------------------------------------------- a plain server

/// A tiny plain TCP server written in the test itself, to check a lesson
/// client against something that is not our own server code.
pub struct PlainServer {
    pub addr: SocketAddr,
    handle: JoinHandle<Result<Vec<u8>>>,
}

impl PlainServer {
    /// Listens on `127.0.0.1:0`; for one connection, runs `serve` on it in a
    /// thread. `serve` returns whatever it wants the test to inspect.
    pub fn start<F>(serve: F) -> Result<PlainServer>
    where
        F: FnOnce(TcpStream) -> Result<Vec<u8>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept()?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_write_timeout(Some(TIMEOUT))?;
            serve(stream)
        });
        Ok(PlainServer { addr, handle })
    }

    /// Waits for the serving thread and returns its result.
    pub fn join(self) -> Result<Vec<u8>> {
        self.handle
            .join()
            .map_err(|_| anyhow!("the plain server thread panicked"))?
    }
}

// ---------------------------------------------------------------- UDP

/// A UDP socket of the test's own on `127.0.0.1:0`, with read and write
/// timeouts so that no `recv` can hang the test.
pub fn udp_socket() -> Result<UdpSocket> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.set_write_timeout(Some(TIMEOUT))?;
    Ok(socket)
}

/// Sends `message` to `to` as one datagram and returns the next datagram that
/// arrives (up to 65,535 bytes) with its sender, or fails after the socket's
/// read timeout.
pub fn udp_ask(
    socket: &UdpSocket,
    to: SocketAddr,
    message: &[u8],
) -> Result<(Vec<u8>, SocketAddr)> {
    socket
        .send_to(message, to)
        .with_context(|| format!("sending {} bytes to {to}", message.len()))?;
    let mut buf = vec![0u8; 65_535];
    let (n, from) = socket
        .recv_from(&mut buf)
        .with_context(|| format!("waiting for a datagram from {to}"))?;
    buf.truncate(n);
    Ok((buf, from))
}

/// An address where no UDP socket is bound: bind port 0, note it, close.
pub fn unused_udp_addr() -> Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.local_addr().map_err(Into::into)
}
