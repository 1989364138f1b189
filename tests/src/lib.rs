//! Support code for the end-to-end tests: find fresh lesson binaries, start a
//! server on port 0 and learn its address, read its log with timeouts, and
//! make sure no process outlives its test.
//!
//! Every wait here has a deadline; nothing sleeps and hopes.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

pub mod contract;
pub mod transcript;

/// How long any single wait may take before the test fails. Generous, so a
/// loaded CI machine does not make the suite flaky; a passing test never
/// waits this long.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Builds (if needed) the binary `name` of the package of the same name and
/// returns its path.
///
/// `cargo test` builds only the binaries of the package under test, and a
/// binary left in `target/` by an earlier build may be stale. So we ask cargo
/// itself, once per binary per test process: `escargot` runs `cargo build` for
/// exactly that package and binary and reports where the fresh file is.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    static PATHS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let paths = PATHS.get_or_init(Default::default);
    // Holding the lock while cargo runs means concurrent tests wait for one
    // build instead of starting several cargo processes that would only queue
    // on cargo's own lock.
    let mut paths = paths
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = paths.get(name) {
        return Ok(path.clone());
    }
    let run = escargot::CargoBuild::new()
        .package(name)
        .bin(name)
        .manifest_path(workspace_dir().join("Cargo.toml"))
        .run()
        .with_context(|| format!("building {name} failed"))?;
    let path = run.path().to_path_buf();
    paths.insert(name.to_string(), path.clone());
    Ok(path)
}

/// The workspace's top directory (the parent of this package).
pub fn workspace_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// An `assert_cmd` command for the lesson binary `name`, with a timeout so a
/// hanging binary fails the test instead of hanging it.
pub fn cmd(name: &str) -> Result<assert_cmd::Command> {
    let mut cmd = assert_cmd::Command::new(bin_path(name)?);
    cmd.timeout(TIMEOUT);
    Ok(cmd)
}

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

/// Asserts that nothing arrives on `stream` for `window`.
///
/// This is the one place where the suite waits for time to pass: proving that
/// something does *not* happen needs a window. A later failure to receive is
/// still checked by the caller with a real event.
pub fn assert_silent(stream: &mut TcpStream, window: Duration) -> Result<()> {
    stream.set_read_timeout(Some(window))?;
    let mut byte = [0u8; 1];
    let result = stream.read(&mut byte);
    stream.set_read_timeout(Some(TIMEOUT))?;
    match result {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Ok(0) => bail!("the peer closed the connection instead of staying silent"),
        Ok(_) => bail!("received {:?} while expecting silence", byte[0] as char),
        Err(err) => Err(err).context("reading while expecting silence"),
    }
}

/// A running lesson process whose output is collected line by line.
///
/// Dropping it kills and reaps the process, so a failing test leaves nothing
/// running.
pub struct Proc {
    child: Child,
    stdout: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl Proc {
    /// Starts binary `name` with `args`, stdin, stdout and stderr piped.
    pub fn spawn(name: &str, args: &[&str]) -> Result<Proc> {
        let mut command = Command::new(bin_path(name)?);
        command.args(args);
        Proc::spawn_command(command)
    }

    /// Starts any command (a Python twin, say) the same way.
    pub fn spawn_command(mut command: Command) -> Result<Proc> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr_pipe = child.stderr.take().context("no stderr")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let stderr_thread = thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr_pipe).read_to_string(&mut text);
            if let Ok(mut all) = sink.lock() {
                all.push_str(&text);
            }
        });
        Ok(Proc {
            child,
            stdout: rx,
            seen: Vec::new(),
            stderr,
            stderr_thread: Some(stderr_thread),
        })
    }

    /// The process's stdin, to type into it as a reader would.
    pub fn stdin(&mut self) -> Result<&mut ChildStdin> {
        self.child.stdin.as_mut().context("stdin already closed")
    }

    /// Closes stdin: the process sees end of input (Ctrl-D).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits for the next stdout line.
    pub fn next_line(&mut self) -> Result<String> {
        match self.stdout.recv_timeout(TIMEOUT) {
            Ok(line) => {
                self.seen.push(line.clone());
                Ok(line)
            }
            Err(RecvTimeoutError::Timeout) => {
                bail!(
                    "no line on stdout within {TIMEOUT:?}; so far: {:?}",
                    self.seen
                )
            }
            Err(RecvTimeoutError::Disconnected) => bail!(
                "stdout closed; so far: {:?}; stderr: {:?}",
                self.seen,
                self.stderr_now()
            ),
        }
    }

    /// Waits for a stdout line containing `needle`, skipping others, and
    /// returns it.
    pub fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "no line containing {needle:?} within {TIMEOUT:?}; so far: {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => bail!(
                    "stdout closed before a line containing {needle:?}; so far: {:?}; stderr: {:?}",
                    self.seen,
                    self.stderr_now()
                ),
            }
        }
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Waits for the process to exit by itself, then returns its status,
    /// the rest of its stdout, and all of its stderr.
    pub fn wait_exit(mut self) -> Result<Finished> {
        let deadline = Instant::now() + TIMEOUT;
        self.close_stdin();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                bail!(
                    "process still running after {TIMEOUT:?}; stdout so far: {:?}",
                    self.seen
                );
            }
            // Polling the exit status; the event we wait for is the exit.
            thread::sleep(Duration::from_millis(5));
        };
        // The pipes close when the process exits; collect what is left.
        while let Ok(line) = self.stdout.recv_timeout(TIMEOUT) {
            self.seen.push(line);
        }
        if let Some(handle) = self.stderr_thread.take() {
            let _ = handle.join();
        }
        Ok(Finished {
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr: self.stderr_now(),
        })
    }

    /// Kills the process now (SIGKILL on Unix) and reaps it.
    pub fn kill(mut self) -> Result<Finished> {
        self.child.kill()?;
        self.wait_exit()
    }

    /// The process id, for signals and `/proc`.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn stderr_now(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a process left behind when it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: String,
}

impl Finished {
    /// Fails if anything the process printed looks like a Rust panic.
    pub fn assert_no_panic(&self) -> Result<()> {
        let all = format!("{}\n{}", self.stdout.join("\n"), self.stderr);
        ensure!(!all.contains("panicked"), "the process panicked: {all}");
        Ok(())
    }
}

/// A lesson server started on `127.0.0.1:0`, with the address it printed.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts server `name` on `127.0.0.1:0` (plus `extra` arguments) and
    /// reads its first line, `listening on IP:PORT`, to learn its address.
    pub fn start(name: &str, extra: &[&str]) -> Result<Server> {
        Self::start_on(name, "127.0.0.1:0", extra)
    }

    /// Starts server `name` on `addr`.
    pub fn start_on(name: &str, addr: &str, extra: &[&str]) -> Result<Server> {
        let mut args = vec![addr];
        args.extend_from_slice(extra);
        Self::from_proc(Proc::spawn(name, &args)?)
    }

    /// Starts any server command that follows the contract (first line
    /// `listening on IP:PORT`), e.g. a Python twin given `127.0.0.1:0`.
    pub fn start_command(command: Command) -> Result<Server> {
        Self::from_proc(Proc::spawn_command(command)?)
    }

    fn from_proc(mut proc: Proc) -> Result<Server> {
        let first = proc.next_line()?;
        let addr = parse_listening(&first)?;
        Ok(Server { proc, addr })
    }

    /// The address as text, to pass to a client on its command line.
    pub fn addr_arg(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_for(&mut self, needle: &str) -> Result<String> {
        self.proc.wait_for(needle)
    }

    /// Waits for the server to exit by itself.
    pub fn wait_exit(self) -> Result<Finished> {
        self.proc.wait_exit()
    }

    /// Kills the server and returns what it printed.
    pub fn kill(self) -> Result<Finished> {
        self.proc.kill()
    }
}

/// Reads the address out of a `listening on IP:PORT` line.
pub fn parse_listening(line: &str) -> Result<SocketAddr> {
    let addr = line.strip_prefix("listening on ").ok_or_else(|| {
        anyhow!("expected `listening on IP:PORT` as the first line, got {line:?}")
    })?;
    addr.parse()
        .with_context(|| format!("`{addr}` in the listening line is not an address"))
}

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
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
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

/// Closes `stream` abruptly: with `SO_LINGER` set to 0, closing sends a
/// reset (RST) instead of the polite FIN, as a crashed peer's kernel might.
pub fn reset(stream: TcpStream) -> Result<()> {
    socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

/// The Python 3 interpreter's name: Windows installs it as `python`.
pub const PYTHON: &str = if cfg!(windows) { "python" } else { "python3" };

/// The Python twin `file` (`server.py` or `client.py`) of lesson folder
/// `lesson` (e.g. `lesson03-connection-loop`), as a command ready for
/// arguments. Python's output is unbuffered (`-u`) so lines arrive at once.
pub fn python(lesson: &str, file: &str) -> Command {
    let mut command = Command::new(PYTHON);
    // UTF-8 on pipes on every system (Windows would use its code page).
    command.env("PYTHONUTF8", "1");
    command.arg("-u").arg(
        workspace_dir()
            .join("lessons")
            .join(lesson)
            .join("python")
            .join(file),
    );
    command
}

/// An address on which nothing listens: bind port 0, note the port, close.
pub fn unused_addr() -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr().map_err(Into::into)
}

// Lesson 05 (UDP): plain UDP sockets made by the test itself.

/// A UDP socket of the test's own on `127.0.0.1:0`, with read and write
/// timeouts so that no `recv` can hang the test.
pub fn udp_socket() -> Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.set_write_timeout(Some(TIMEOUT))?;
    Ok(socket)
}

/// Sends `message` to `to` as one datagram and returns the next datagram that
/// arrives (up to 65,535 bytes) with its sender, or fails after the socket's
/// read timeout.
pub fn udp_ask(
    socket: &std::net::UdpSocket,
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
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    socket.local_addr().map_err(Into::into)
}

// Issue 5, hostile clients (tests/hostile.rs): how much memory a server uses.

/// A process's memory as Linux reports it in `/proc/PID/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: the memory resident right now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most that was ever resident (the "high water mark"), in KiB.
    pub peak_kib: u64,
}

/// Reads the resident memory of process `pid` from `/proc/PID/status`.
#[cfg(target_os = "linux")]
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Lines look like `VmRSS:\t    2048 kB`.
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .with_context(|| format!("no {name} in {path}"))?;
        let kib = line.trim().trim_end_matches("kB").trim();
        kib.parse()
            .with_context(|| format!("{name} in {path} is not a number: {line:?}"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}
