//! The small helper crate every lesson uses.
//!
//! It holds only the plumbing that every lesson would otherwise repeat and
//! that is *not* what the lesson teaches: reading the command line, printing
//! the `listening on` line, the upper-casing rule, reading lines from the
//! keyboard, and turning an error into one clear line.
//!
//! The socket calls themselves (`bind`, `listen`, `accept`, `connect`, `read`,
//! `write`, `shutdown`, and the `drop` that closes) are never hidden in here:
//! they stay in each lesson's own `main.rs`, where the book explains them.

use std::borrow::Cow;
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

// ANCHOR: parse_args
/// Parses the command line into `T`, the lesson's own `Args` struct.
///
/// `--help` and `--version` print to stdout and exit 0. Anything wrong on the
/// command line becomes one line on stderr and exit status 2, the usual
/// status for "you called me wrongly"; a lesson never panics on bad input.
pub fn parse_args<T: clap::Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        // Help and version are not errors: clap prints them to stdout, exit 0.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or("error: bad arguments");
            eprintln!("{first} (see --help)");
            std::process::exit(2);
        }
    }
}
// ANCHOR_END: parse_args

// ANCHOR: parse_addr
/// Checks an `ADDR` argument: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
///
/// The string itself is kept, because `TcpListener::bind`, `TcpStream::connect`
/// and `UdpSocket::bind` all accept a `&str` and resolve it themselves, just as
/// Python's `bind(("127.0.0.1", 9001))` does. We check it here only so that a
/// typo is reported before any socket is made.
pub fn parse_addr(text: &str) -> Result<String, String> {
    if text.parse::<SocketAddr>().is_ok() {
        return Ok(text.to_string());
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        if port.parse::<u16>().is_ok() {
            return Ok(text.to_string());
        }
    }
    Err("expected IP:PORT, [IPv6]:PORT or localhost:PORT, e.g. 127.0.0.1:9001".to_string())
}
// ANCHOR_END: parse_addr

// ANCHOR: parse_socket_path
/// Checks a `--unix PATH` argument: the file name of a Unix domain socket.
///
/// The kernel keeps that name in `sun_path`, a fixed array inside the socket
/// address: 108 bytes on Linux, 104 on macOS and the BSDs, the last of them
/// a terminating zero. A longer path cannot be an address at all, so it is
/// refused here, with the numbers, rather than by `bind` with a vague error.
/// Where std has no Unix domain sockets (Windows), every path is refused.
pub fn parse_socket_path(text: &str) -> Result<std::path::PathBuf, String> {
    if cfg!(not(unix)) {
        return Err("Unix domain sockets are not available on this system \
                    (Rust's standard library has them only on Unix); use an address instead"
            .to_string());
    }
    const SUN_PATH: usize = if cfg!(any(target_os = "linux", target_os = "android")) {
        108
    } else {
        104
    };
    if text.is_empty() {
        return Err("expected the path of a socket file, e.g. /tmp/lesson12.sock".to_string());
    }
    if text.len() >= SUN_PATH {
        return Err(format!(
            "the path is {} bytes long, and a socket's path must be shorter than {SUN_PATH} bytes here (the size of sun_path)",
            text.len()
        ));
    }
    Ok(std::path::PathBuf::from(text))
}
// ANCHOR_END: parse_socket_path

// ANCHOR: resolve
/// Resolves a checked `ADDR` to the first socket address it names.
///
/// Only needed where a lesson builds its socket by hand (with `socket2`) and
/// therefore must know the address family before calling `bind`.
pub fn resolve(addr: &str) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} names no address")))
}
// ANCHOR_END: resolve

// ANCHOR: print_listening
/// Prints `listening on IP:PORT`, the first line every server prints.
///
/// It shows the address the operating system really bound, so with port 0
/// the reader (and the tests) learn which port was chosen. The line is flushed
/// at once so that whoever reads it through a pipe sees it immediately.
///
/// A server that listens on anything other than loopback also gets a warning
/// on stderr: other machines can now reach it.
pub fn print_listening(addr: SocketAddr) {
    println!("listening on {addr}");
    let _ = io::stdout().flush();
    if !addr.ip().is_loopback() {
        eprintln!("warning: listening on {addr}: other machines on the network can now connect");
    }
}
// ANCHOR_END: print_listening

// ANCHOR: upper
/// The answer every echo server in this course gives: the same bytes with
/// ASCII letters upper-cased.
///
/// This is exactly Python's `bytes.upper()`: `a`..`z` become `A`..`Z` and every
/// other byte passes through untouched. Because it works byte by byte it never
/// needs a whole character: the bytes of a Chinese character cut in half by a
/// read boundary are still passed on unchanged.
pub fn upper(data: &[u8]) -> Vec<u8> {
    data.to_ascii_uppercase()
}
// ANCHOR_END: upper

// ANCHOR: show
/// Turns bytes from a peer into text for a log line, never panicking.
///
/// Invalid UTF-8 is shown as `�` (like Python's `errors="replace"`), and very
/// long messages are cut to their first 60 characters so one big read does not
/// flood the terminal. The result is quoted, with control characters escaped,
/// so `said "hi\n"` shows exactly what arrived.
pub fn show(data: &[u8]) -> String {
    const MAX_CHARS: usize = 60;
    let text: Cow<str> = String::from_utf8_lossy(data);
    if text.chars().count() <= MAX_CHARS {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head:?}... ({} bytes)", data.len())
    }
}
// ANCHOR_END: show

// ANCHOR: input_lines
/// The lines a person types (or a pipe delivers) on stdin, as bytes without
/// their line ending.
///
/// When stdin is a terminal, the `>> ` prompt is shown before each line; when
/// it is a pipe or a file, nothing is printed but the replies. Bytes are read
/// as they are, so input that is not valid UTF-8 is passed on, not rejected.
pub fn input_lines() -> InputLines {
    InputLines {
        prompt: io::stdin().is_terminal(),
    }
}

/// Iterator returned by [`input_lines`].
pub struct InputLines {
    prompt: bool,
}

impl Iterator for InputLines {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.prompt {
            show_prompt();
        }
        let mut line = Vec::new();
        let read = io::stdin().lock().read_until(b'\n', &mut line);
        prompt_answered();
        match read {
            Ok(0) => {
                // End of input: Ctrl-D, or the end of a pipe. At a terminal
                // the cursor is still after `>> `: end that line, so the
                // shell's prompt does not land on it.
                if self.prompt {
                    println!();
                }
                None
            }
            Ok(_) => {
                if line.ends_with(b"\n") {
                    line.pop();
                    if line.ends_with(b"\r") {
                        line.pop(); // typed on Windows
                    }
                }
                Some(Ok(line))
            }
            Err(err) => Some(Err(err)),
        }
    }
}
// ANCHOR_END: input_lines

// ANCHOR: prompt
/// Whether the `>> ` prompt is the last thing on the screen, waiting for a
/// line to be typed after it.
static PROMPT_SHOWN: AtomicBool = AtomicBool::new(false);

/// Prints the `>> ` prompt (call it only when stdin is a terminal).
pub fn show_prompt() {
    let mut out = io::stdout().lock();
    let _ = out.write_all(b">> ");
    let _ = out.flush();
    PROMPT_SHOWN.store(true, Ordering::SeqCst);
}

/// Notes that the prompt has its answer: Enter (or the end of input) moved
/// the cursor to a fresh line.
pub fn prompt_answered() {
    PROMPT_SHOWN.store(false, Ordering::SeqCst);
}

/// Prints one line that arrived from the other side, for a chat client
/// whose other thread (or task) may be showing the prompt. If the prompt
/// is on the screen, the line takes its place (`\r` goes back to the start
/// of the screen's line, `\x1b[K` clears it) and the prompt comes back
/// below it; so a line never lands after `>> `. Anything half typed is no
/// longer shown, but is still there: Enter sends it.
pub fn print_incoming(text: &str) {
    let mut out = io::stdout().lock();
    let _ = if PROMPT_SHOWN.load(Ordering::SeqCst) {
        write!(out, "\r\x1b[K{text}\n>> ")
    } else {
        writeln!(out, "{text}")
    };
    let _ = out.flush();
}
// ANCHOR_END: prompt

// ANCHOR: advice
/// The advice a server adds when it cannot listen on its address.
pub fn cannot_listen(addr: &str) -> String {
    format!(
        "could not listen on {addr} (is another server using it? pass another address, e.g. 127.0.0.1:0)"
    )
}

/// The advice a client adds when it cannot connect: which server to start.
pub fn no_server(addr: &str, server: &str) -> String {
    format!(
        "could not connect to {addr} (is {server} running? start it with: cargo run -p {server})"
    )
}
// ANCHOR_END: advice

// ANCHOR: exit_status
/// Turns the result of a lesson's `run` into its exit status.
///
/// An error is printed as one line, every cause included
/// (`error: could not connect to 127.0.0.1:9001 (...): Connection refused`),
/// and the status is 1. Success is status 0.
pub fn exit_status(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
// ANCHOR_END: exit_status

// ANCHOR: accept_log
/// How long a server waits before it calls `accept` again after it failed.
/// It usually fails because the process has no file descriptor left ("too
/// many open files"); the caller stays in the queue, so calling again at
/// once would fail again at once, in a loop that eats a whole core.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Logs failed `accept`s once per episode: one line when `accept` starts
/// failing, one when it works again, and none for every retry in between
/// (ten a second would flood the log).
#[derive(Default)]
pub struct AcceptLog {
    failures: u64,
}

impl AcceptLog {
    /// `accept` failed with `err`; the server tries again after ACCEPT_RETRY.
    pub fn failed(&mut self, err: &io::Error) {
        if self.failures == 0 {
            let every = ACCEPT_RETRY.as_millis();
            println!("accept failed: {err}; trying again every {every} ms");
        }
        self.failures += 1;
    }

    /// `accept` gave a caller.
    pub fn worked(&mut self) {
        if self.failures > 0 {
            println!("accept works again after {} failures", self.failures);
            self.failures = 0;
        }
    }
}
// ANCHOR_END: accept_log

// ANCHOR: seats
/// The seats of a server that serves many callers at once: at most `max`
/// are taken at any moment (the server's `--max-clients`).
///
/// Each caller being served holds a [`Seat`]; dropping it, when the caller's
/// thread ends for any reason, gives the seat back. Cloning `Seats` clones a
/// handle to the same count, so every thread sees the same seats.
#[derive(Clone)]
pub struct Seats {
    taken: Arc<AtomicUsize>,
    max: usize,
}

/// One taken seat of [`Seats`], given back when dropped.
pub struct Seat {
    taken: Arc<AtomicUsize>,
}

impl Seats {
    /// `max` seats, none taken.
    pub fn new(max: usize) -> Seats {
        Seats {
            taken: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes a seat, or returns `None` when all `max` are taken.
    pub fn take(&self) -> Option<Seat> {
        // Add one only if the count is below `max`, in one atomic step, so
        // two threads can never both take the last seat.
        let max = self.max;
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Seat {
                taken: Arc::clone(&self.taken),
            })
    }

    /// How many seats there are: the `max` this was made with.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
}
// ANCHOR_END: seats

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_changes_only_ascii_letters() {
        assert_eq!(upper(b"hello 123 !"), b"HELLO 123 !");
        let chinese = "hello 哈哈哈".as_bytes();
        assert_eq!(upper(chinese), "HELLO 哈哈哈".as_bytes());
    }

    #[test]
    fn upper_leaves_half_a_character_alone() {
        let bytes = "哈".as_bytes();
        assert_eq!(upper(&bytes[..2]), &bytes[..2]);
        assert_eq!(upper(&[0xff, b'a']), [0xff, b'A']);
    }

    #[test]
    fn parse_addr_accepts_the_three_forms() {
        for ok in ["127.0.0.1:9001", "[::1]:0", "localhost:9003", "0.0.0.0:80"] {
            assert_eq!(parse_addr(ok).as_deref(), Ok(ok));
        }
    }

    #[test]
    fn parse_addr_rejects_the_rest() {
        for bad in [
            "",
            "9001",
            "127.0.0.1",
            "127.0.0.1:99999",
            "::1:80",
            "example.com:80",
            "localhost",
        ] {
            assert!(parse_addr(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn parse_socket_path_refuses_what_sun_path_cannot_hold() {
        assert!(parse_socket_path("/tmp/lesson12.sock").is_ok());
        assert!(parse_socket_path(&format!("/{}", "x".repeat(106))).is_ok());
        let err = parse_socket_path(&format!("/{}", "x".repeat(107))).unwrap_err();
        assert!(
            err.contains("108 bytes long") && err.contains("sun_path"),
            "{err}"
        );
        assert!(parse_socket_path("").is_err());
    }

    #[test]
    fn show_quotes_escapes_and_cuts() {
        assert_eq!(show(b"hello"), r#""hello""#);
        assert_eq!(show(b"a\nb"), r#""a\nb""#);
        assert_eq!(show(&[b'o', b'k', 0xff]), "\"ok\u{fffd}\"");
        assert_eq!(show("哈哈".as_bytes()), "\"哈哈\"");
        let long = show(&[b'x'; 1000]);
        assert!(long.ends_with("... (1000 bytes)"), "{long}");
        assert!(long.len() < 100);
    }

    #[test]
    fn seats_are_given_back_when_dropped() {
        let seats = Seats::new(2);
        let first = seats.take().expect("a seat is free");
        let second = seats.clone().take().expect("a second seat is free");
        assert!(seats.take().is_none(), "a third seat was given out");
        drop(first);
        let third = seats.take().expect("the dropped seat is free again");
        drop((second, third));
        assert_eq!(seats.taken.load(Ordering::Acquire), 0);
    }

    #[test]
    fn no_server_names_address_and_server() {
        let text = no_server("127.0.0.1:9001", "lesson01-server");
        assert!(text.contains("127.0.0.1:9001"));
        assert!(text.contains("cargo run -p lesson01-server"));
    }
}
