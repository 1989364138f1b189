//! Starting the servers under test, finding the lesson binaries, and reading
//! a server's memory and thread count from `/proc`.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The workspace's top directory. `LOADGEN_WORKSPACE` overrides it.
pub fn workspace_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOADGEN_WORKSPACE") {
        return PathBuf::from(dir);
    }
    // This package lives at tests/loadgen/.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// A server under test, started on 127.0.0.1:0.
///
/// Its stdout is read on a thread of our own: first the `listening on` line,
/// then everything else is discarded (the lesson servers log a line per
/// message, and a pipe nobody reads would soon block them). Dropping the
/// value kills and reaps the process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(program: &Path, args: &[OsString]) -> anyhow::Result<Server> {
        let mut child = Command::new(program)
            .args(args)
            // A Python twin's `print` into our pipe is then block-buffered,
            // as Python does by default; unbuffered, every print would cost
            // several write calls, far more than it costs at a terminal.
            .env_remove("PYTHONUNBUFFERED")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {}", program.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr_pipe = child.stderr.take().context("no stderr")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            // Keep the first few kilobytes, for error messages.
            let mut text = String::new();
            let _ = BufReader::new(stderr_pipe.take(8192)).read_to_string(&mut text);
            if let Ok(mut all) = sink.lock() {
                all.push_str(&text);
            }
        });
        let (first_line, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::with_capacity(64 * 1024, stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = first_line.send(read);
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => bail!("reading the server's first line failed: {err}"),
            Err(_) => bail!(
                "{} printed no line within {START_TIMEOUT:?}",
                program.display()
            ),
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .ok_or_else(|| {
                anyhow!(
                    "{} did not start: first line {:?}, stderr {:?}",
                    program.display(),
                    line.trim_end(),
                    server.stderr_text().trim()
                )
            })?;
        server.addr = addr
            .parse()
            .with_context(|| format!("{addr:?} in the listening line is not an address"))?;
        Ok(server)
    }

    /// Starts a lesson server with its log thrown away by the system
    /// (stdout to `/dev/null`), to measure what the log line costs. With no
    /// `listening on` line to read, it picks a free port itself, passes it
    /// as the address, and waits until a connection succeeds.
    pub fn start_silent(program: &Path) -> anyhow::Result<Server> {
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        }; // the probe closes here, and the port is free for the server
        let child = Command::new(program)
            .arg(addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {}", program.display()))?;
        let server = Server {
            child,
            addr,
            stderr: Arc::default(),
        };
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            // A sequential server serves this probe first; closing it at
            // once lets it go back to `accept`.
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(server);
            }
            if std::time::Instant::now() >= deadline {
                bail!(
                    "{} did not listen on {addr} within {START_TIMEOUT:?}",
                    program.display()
                );
            }
            // Polling for the server to be up: it prints nothing to wait for.
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_text(&mut self) -> String {
        // The process may still be writing; give it a moment to exit first.
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory (kB) and thread count of process `pid`, from `/proc`
/// (Linux only; `None` elsewhere or once the process is gone).
pub fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

/// CPU time that process `pid` has used so far, all threads together, in
/// seconds: (user, system). User time is spent in the program itself,
/// system time in the kernel on its behalf (the socket calls). `pid` 0
/// means this process. Linux only.
pub fn cpu_times(pid: u32) -> Option<(f64, f64)> {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file, utime and stime, in clock ticks of
    // 1/100 s (USER_HZ is 100 on every Linux platform Rust supports).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / 100.0, stime / 100.0))
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

/// Builds the lesson server binaries `names` with cargo, in the profile this
/// load generator was built with (release figures come from release
/// binaries), and returns where each one is. Asking cargo, rather than
/// looking in `target/`, means a stale binary is never measured.
pub fn build_binaries(names: &[&str]) -> anyhow::Result<HashMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = workspace_dir().join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.arg("build")
        .arg("--quiet")
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    for name in names {
        cmd.args(["-p", name, "--bin", name]);
    }
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not run {}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        bail!("building {} failed", names.join(", "));
    }
    let mut found = HashMap::new();
    for line in output.stdout.split(|&b| b == b'\n') {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) else {
            continue;
        };
        if names.contains(&name) {
            found.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    for name in names {
        if !found.contains_key(*name) {
            bail!("cargo built no binary named {name}");
        }
    }
    Ok(found)
}

/// The Python interpreter, if there is one: `python3 --version` works.
pub fn python() -> Option<(PathBuf, String)> {
    let output = Command::new("python3")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Some((PathBuf::from("python3"), version))
}
