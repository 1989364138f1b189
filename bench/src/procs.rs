//! Starting the servers under test, with the test kit (`course-kit`), and
//! the peak of a server's memory and threads while it is under load.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use course_kit::procs::Keep;
use course_kit::{Proc, Profile, Server, TIMEOUT};

pub use course_kit::{cpu_times, workspace_dir};

/// Starts `program args` (its address being `127.0.0.1:0`) and reads its
/// `listening on` line. The rest of its log is read and thrown away: the
/// lesson servers log a line per message, and a pipe nobody reads would soon
/// block them. A Python twin is started through [`python_args`], so that it
/// writes its log line by line, as the Rust servers do.
pub fn start(program: &Path, args: &[OsString]) -> anyhow::Result<Server> {
    Server::start_quiet(command(program, args))
        .with_context(|| format!("starting {}", program.display()))
}

/// `program args`, without `PYTHONUNBUFFERED` in its environment: set, it
/// would make every `print` several `write` calls, one per piece of the
/// line, which is neither how a terminal nor how a pipe runs a twin.
fn command(program: &Path, args: &[OsString]) -> Command {
    let mut command = Command::new(program);
    command.args(args).env_remove("PYTHONUNBUFFERED");
    command
}

/// What makes Python write its log as it does at a terminal. Python buffers
/// its standard output by lines when that is a terminal, and in blocks of
/// 8 KiB when it is a pipe or a file; a Rust `println!` writes each line at
/// once, wherever stdout goes. This prelude sets the twin's stdout to line
/// buffering, then runs the script as `python3 SCRIPT ARGS` would (as
/// `__main__`, with `sys.argv` and `sys.path[0]` as Python sets them), so
/// that a twin makes one `write` per line, like the Rust server beside it.
const LINE_BY_LINE: &str = "import os, runpy, sys; \
sys.stdout.reconfigure(line_buffering=True); \
sys.argv = sys.argv[1:]; \
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0])); \
runpy.run_path(sys.argv[0], run_name='__main__')";

/// The arguments that make `python3` run `script args` with its log written
/// line by line (see [`LINE_BY_LINE`]).
pub fn python_args(script: &Path, args: &[OsString]) -> Vec<OsString> {
    let mut all: Vec<OsString> = vec!["-c".into(), LINE_BY_LINE.into(), script.into()];
    all.extend(args.iter().cloned());
    all
}

/// Starts a server with its output (stdout and stderr) thrown away by the
/// system, to `/dev/null`, to measure what writing its log costs. With no
/// `listening on` line to read, it picks a free port itself, passes it in
/// place of `127.0.0.1:0` in `args`, and waits until a connection succeeds
/// (with `udp`, until a datagram is answered).
pub fn start_silent(program: &Path, args: &[OsString], udp: bool) -> anyhow::Result<Server> {
    let addr = if udp {
        course_kit::unused_udp_addr()?
    } else {
        course_kit::unused_addr()?
    };
    let args: Vec<OsString> = args
        .iter()
        .map(|a| {
            if a == "127.0.0.1:0" {
                addr.to_string().into()
            } else {
                a.clone()
            }
        })
        .collect();
    let proc = Proc::spawn_keeping(command(program, &args), Keep::Nothing)
        .with_context(|| format!("starting {}", program.display()))?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if answers(addr, udp) {
            // Never through chaos mode's proxy: the benchmark measures the server.
            return Ok(Server {
                proc,
                addr,
                direct: addr,
                chaos: None,
            });
        }
        if Instant::now() >= deadline {
            bail!(
                "{} did not listen on {addr} within {TIMEOUT:?}",
                program.display()
            );
        }
        // Polling for the server to be up: it prints nothing to wait for.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a server listens at `addr`: a TCP connection is accepted, or a
/// UDP datagram answered within 100 ms.
fn answers(addr: SocketAddr, udp: bool) -> bool {
    if !udp {
        // A sequential server serves this probe first; closing it at once
        // lets it go back to `accept`.
        return TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
    }
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let mut reply = [0u8; 64];
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_ok()
        && socket.send_to(b"ping", addr).is_ok()
        && socket.recv_from(&mut reply).is_ok()
}

/// Resident memory (kB) and thread count of process `pid`, from `/proc`
/// (Linux only; `None` elsewhere or once the process is gone).
pub fn sample(pid: u32) -> Option<(u64, u64)> {
    let memory = course_kit::memory(pid).ok()?;
    Some((memory.rss_kib, course_kit::threads(pid).ok()?))
}

/// User plus system CPU seconds of process `pid` (0: this process).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_times(pid).map(|(user, system)| user + system)
}

/// The largest memory and thread count seen in a series of samples.
#[derive(Default)]
pub struct Peak(Mutex<(Option<u64>, Option<u64>)>);

impl Peak {
    pub fn sample(&self, pid: u32) {
        if let Some((rss, threads)) = sample(pid) {
            if let Ok(mut peak) = self.0.lock() {
                peak.0 = Some(peak.0.unwrap_or(0).max(rss));
                peak.1 = Some(peak.1.unwrap_or(0).max(threads));
            }
        }
    }

    pub fn get(&self) -> (Option<u64>, Option<u64>) {
        self.0.lock().map(|p| *p).unwrap_or_default()
    }
}

/// Builds lesson server `name` with cargo, in the profile this load
/// generator was built with (release figures come from release binaries),
/// and returns where it is. Asking cargo, rather than looking in `target/`,
/// means a stale binary is never measured.
pub fn build(name: &str) -> anyhow::Result<PathBuf> {
    course_kit::bin_path_in(name, Profile::of_this_build())
}

/// The Python interpreter, if there is one: `python3 --version` works.
pub fn python() -> Option<(PathBuf, String)> {
    let output = Command::new(course_kit::PYTHON)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Some((PathBuf::from(course_kit::PYTHON), version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A twin started by the benchmark writes each log line at once, as it
    /// does at a reader's terminal: the `said` line of a message arrives
    /// while the caller is still connected. Python's default into a pipe
    /// would hold it back until 8 KiB of log had gathered.
    #[test]
    fn a_python_twin_logs_line_by_line() -> anyhow::Result<()> {
        if !course_kit::tools::PYTHON3.is_here()? {
            return Ok(());
        }
        let script = workspace_dir().join("lessons/lesson03-connection-loop/python/server.py");
        let python = Path::new(course_kit::PYTHON);
        let args = python_args(&script, &["127.0.0.1:0".into()]);
        let mut server = Server::start_command(command(python, &args))?;
        let mut conn = TcpStream::connect_timeout(&server.addr, TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.write_all(b"hi")?;
        let mut reply = [0u8; 2];
        conn.read_exact(&mut reply)?;
        anyhow::ensure!(&reply == b"HI", "reply {reply:?}");
        let line = server.wait_for("said")?;
        anyhow::ensure!(line.ends_with("said 'hi'"), "{line}");
        Ok(())
    }
}
