//! Starting the servers under test, with the test kit (`course-kit`), and
//! the peak of a server's memory and threads while it is under load.

use std::ffi::OsString;
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
/// block them.
pub fn start(program: &Path, args: &[OsString]) -> anyhow::Result<Server> {
    let mut command = Command::new(program);
    // A Python twin's `print` into our pipe is then block-buffered, as Python
    // does by default; unbuffered, every print would cost several write
    // calls, far more than it costs at a terminal.
    command.args(args).env_remove("PYTHONUNBUFFERED");
    Server::start_quiet(command).with_context(|| format!("starting {}", program.display()))
}

/// Starts a lesson server with its log thrown away by the system (stdout to
/// `/dev/null`), to measure what the log line costs. With no `listening on`
/// line to read, it picks a free port itself, passes it as the address, and
/// waits until a connection succeeds.
pub fn start_silent(program: &Path) -> anyhow::Result<Server> {
    let addr = course_kit::unused_addr()?;
    let mut command = Command::new(program);
    command.arg(addr.to_string());
    let proc = Proc::spawn_keeping(command, Keep::Nothing)
        .with_context(|| format!("starting {}", program.display()))?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        // A sequential server serves this probe first; closing it at once
        // lets it go back to `accept`.
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
            return Ok(Server { proc, addr });
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
