//! Running lesson programs: a process whose output is read line by line with
//! deadlines, and a server started on port 0 that tells us its address.

use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::chaos::Chaos;
use crate::{TIMEOUT, bin_path, workspace_dir};

/// What to keep of a process's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every stdout line, for the test to read, and all of stderr.
    Everything,
    /// Only the first stdout line (`listening on ...`); the rest is read and
    /// thrown away, so that a server logging a line per message never blocks
    /// on a full pipe, and nothing piles up in memory. The first 8 KiB of
    /// stderr are kept, for error messages. This is what the benchmark uses.
    FirstLine,
    /// Nothing: stdout and stderr go to the null device, so the program's
    /// logging costs it no pipe at all (the benchmark measures that too).
    Nothing,
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
    pub fn spawn_command(command: Command) -> Result<Proc> {
        Proc::spawn_keeping(command, Keep::Everything)
    }

    /// Starts `command`, keeping what `keep` says of its output.
    pub fn spawn_keeping(mut command: Command, keep: Keep) -> Result<Proc> {
        let output = || match keep {
            Keep::Nothing => Stdio::null(),
            _ => Stdio::piped(),
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(output())
            .stderr(output())
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        let (tx, rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (Some(stdout), Some(stderr_pipe)) = (child.stdout.take(), child.stderr.take()) else {
            // Keep::Nothing: no pipes, and a stdout that is closed from the start.
            return Ok(Proc {
                child,
                stdout: rx,
                seen: Vec::new(),
                stderr,
                stderr_thread: None,
            });
        };
        thread::spawn(move || {
            let mut lines = BufReader::with_capacity(64 * 1024, stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = line.strip_suffix('\n').unwrap_or(&line);
                        let text = text.strip_suffix('\r').unwrap_or(text);
                        if tx.send(text.to_string()).is_err() {
                            break;
                        }
                        if keep == Keep::FirstLine {
                            let _ = io::copy(&mut lines, &mut io::sink());
                            break;
                        }
                    }
                }
            }
        });
        let sink = Arc::clone(&stderr);
        let limit = match keep {
            Keep::Everything => u64::MAX,
            _ => 8 * 1024,
        };
        let stderr_thread = thread::spawn(move || {
            let mut pipe = BufReader::new(stderr_pipe);
            let mut text = String::new();
            let _ = (&mut pipe).take(limit).read_to_string(&mut text);
            if let Ok(mut all) = sink.lock() {
                all.push_str(&text);
            }
            let _ = io::copy(&mut pipe, &mut io::sink());
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

    /// Waits until the process closes its stdout without printing another
    /// line, as it does when it exits, while its stdin stays open. (The
    /// `wait_exit` below closes stdin first, which a client reads as the
    /// end of its input.)
    pub fn wait_for_stdout_to_close(&mut self) -> Result<()> {
        match self.stdout.recv_timeout(TIMEOUT) {
            Err(RecvTimeoutError::Disconnected) => Ok(()),
            Ok(line) => {
                self.seen.push(line.clone());
                bail!("expected the process to end, it printed {line:?}")
            }
            Err(RecvTimeoutError::Timeout) => bail!(
                "stdout still open after {TIMEOUT:?}; so far: {:?}",
                self.seen
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
    pub fn wait_exit(self) -> Result<Finished> {
        self.wait_exit_within(TIMEOUT)
    }

    /// Like [`Proc::wait_exit`], for a program known to take longer than
    /// [`TIMEOUT`] (one that builds other programs first, say).
    pub fn wait_exit_within(mut self, limit: Duration) -> Result<Finished> {
        let deadline = Instant::now() + limit;
        self.close_stdin();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                bail!(
                    "process still running after {limit:?}; stdout so far: {:?}",
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
///
/// In chaos mode (see [`crate::chaos`]) `addr` is the address of a proxy in
/// front of the server, which dies with it; `direct` is always the
/// server's own.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub direct: SocketAddr,
    pub chaos: Option<Chaos>,
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

    /// Like [`Server::start_command`], keeping only the first line of its
    /// output (see [`Keep::FirstLine`]): for servers under load.
    pub fn start_quiet(command: Command) -> Result<Server> {
        Self::from_proc(Proc::spawn_keeping(command, Keep::FirstLine)?)
    }

    fn from_proc(mut proc: Proc) -> Result<Server> {
        let first = proc.next_line()?;
        let addr = parse_listening(&first).with_context(|| {
            format!("the server did not start; stderr: {:?}", proc.stderr_now())
        })?;
        let chaos = crate::chaos::wrap(addr)?;
        Ok(Server {
            proc,
            addr: chaos.as_ref().map_or(addr, |c| c.addr),
            direct: addr,
            chaos,
        })
    }

    /// The address as text, to pass to a client on its command line.
    pub fn addr_arg(&self) -> String {
        self.addr.to_string()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.id()
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
