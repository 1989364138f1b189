//! Lesson 12's benchmark: one echo server, `lesson12-server`, reached over
//! a Unix domain socket and over TCP loopback (127.0.0.1 and ::1), in the
//! same run, with the same clients. Only the family differs, so the
//! difference is what the TCP/IP stack costs on one machine.
//!
//! Each client is a thread in a closed loop: write a message, read exactly
//! as many bytes back, check they are the message in capitals, send the
//! next. The three transports take turns, run after run, so that a change
//! in the machine's load touches all of them alike; the median run counts.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use course_kit::procs::Keep;
use course_kit::{Proc, Server, TempDir};
use serde::{Deserialize, Serialize};

use crate::procs;
use crate::provenance::{Program, Provenance};
use crate::stats::Latencies;

/// The load of one scenario.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Load {
    pub clients: usize,
    pub size: usize,
}

/// The two scenarios: one client with small messages, where each round trip
/// is mostly the kernel's work, and several clients with messages as large
/// as the server's buffer, so that each is one read and one write. (Larger
/// ones would reach the server's TCP socket as several small writes, and
/// Nagle's algorithm would then hold them back for the client's delayed
/// acknowledgement: that would measure a timer, not the stack.)
pub const LOADS: [Load; 2] = [
    Load {
        clients: 1,
        size: 64,
    },
    Load {
        clients: 8,
        size: 1024,
    },
];

/// What one transport did under one load (the median of the runs).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub transport: String,
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Server CPU time (user + system) per message, in microseconds.
    pub cpu_us_per_msg: Option<f64>,
}

/// The whole run: `unix.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub provenance: Provenance,
    /// How long the whole run took, in seconds.
    pub took_s: f64,
    pub runs: usize,
    pub seconds: f64,
    /// Per load: the rows, Unix socket first.
    pub results: Vec<(Load, Vec<Row>)>,
}

/// Where a client connects.
#[derive(Clone, Debug)]
enum Target {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// What a client needs of a stream: both std types read and write.
trait Stream: Read + Write {}
impl Stream for UnixStream {}
impl Stream for TcpStream {}

fn dial(target: &Target) -> std::io::Result<Box<dyn Stream>> {
    let stream: Box<dyn Stream> = match target {
        Target::Unix(path) => {
            let s = UnixStream::connect(path)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            Box::new(s)
        }
        Target::Tcp(addr) => {
            let s = TcpStream::connect_timeout(addr, Duration::from_secs(10))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            Box::new(s)
        }
    };
    Ok(stream)
}

/// One client's closed loop until `end`: its round-trip times.
fn client(target: &Target, size: usize, end: Instant) -> anyhow::Result<Latencies> {
    let mut conn = dial(target).with_context(|| format!("connecting to {target:?}"))?;
    // Lower-case letters and digits: the reply differs from the message.
    let message: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz0123456789"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect();
    let expected = message.to_ascii_uppercase();
    let mut reply = vec![0u8; size];
    let mut latencies = Latencies::new();
    while Instant::now() < end {
        let start = Instant::now();
        conn.write_all(&message).context("sending")?;
        conn.read_exact(&mut reply).context("reading the reply")?;
        let took = start.elapsed();
        ensure!(reply == expected, "a reply was not the message in capitals");
        latencies.record(took);
    }
    Ok(latencies)
}

/// One measured run of `load` against `target`.
fn measure(
    name: &'static str,
    target: &Target,
    pid: u32,
    load: Load,
    length: Duration,
) -> anyhow::Result<Row> {
    let cpu_before = procs::cpu_seconds(pid);
    let start = Instant::now();
    let end = start + length;
    let results: Vec<anyhow::Result<Latencies>> = thread::scope(|scope| {
        let threads: Vec<_> = (0..load.clients)
            .map(|_| scope.spawn(|| client(target, load.size, end)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(anyhow!("a client panicked")))
            })
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = procs::cpu_seconds(pid);
    let mut all = Latencies::new();
    for result in results {
        all.merge(&result.with_context(|| format!("{name}: a client failed"))?);
    }
    let messages = all.count() as f64;
    ensure!(messages > 0.0, "{name}: not one reply in {seconds:.1} s");
    let latency = all.percentiles().context("no latencies")?;
    Ok(Row {
        transport: name.to_string(),
        msgs_per_s: messages / seconds,
        mb_per_s: messages * load.size as f64 / seconds / 1e6,
        p50_us: latency.p50_us,
        p99_us: latency.p99_us,
        cpu_us_per_msg: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| (after - before) * 1e6 / messages),
    })
}

/// Starts lesson12-server on a socket file and reads its first line; the
/// rest of its log is thrown away, as for the other servers measured.
fn start_unix(program: &Path, path: &Path) -> anyhow::Result<Proc> {
    let mut command = Command::new(program);
    command.arg("--unix").arg(path);
    let mut proc = Proc::spawn_keeping(command, Keep::FirstLine)?;
    let first = proc.next_line()?;
    if first != format!("listening on {}", path.display()) {
        bail!(
            "lesson12-server did not start on {}: {first}",
            path.display()
        );
    }
    Ok(proc)
}

/// Runs every load `runs` times on each transport, in turns.
pub fn run(runs: usize, length: Duration, progress: bool) -> anyhow::Result<Report> {
    let started = Instant::now();
    let program = procs::build("lesson12-server")?;
    let dir = TempDir::with_prefix("loadgen-unix-")?;
    let path = dir.path().join("lesson12.sock");
    let unix = start_unix(&program, &path)?;
    let v4: Server = procs::start(&program, &["127.0.0.1:0".into()])?;
    // No ::1 on this machine: the IPv6 row is left out, and the table says so.
    let v6: Option<Server> = std::net::TcpListener::bind("[::1]:0")
        .ok()
        .map(|_| procs::start(&program, &["[::1]:0".into()]))
        .transpose()?;
    let mut targets: Vec<(&'static str, Target, u32)> = vec![
        ("Unix domain socket", Target::Unix(path.clone()), unix.id()),
        ("TCP over 127.0.0.1", Target::Tcp(v4.addr), v4.pid()),
    ];
    if let Some(v6) = &v6 {
        targets.push(("TCP over ::1", Target::Tcp(v6.addr), v6.pid()));
    }
    let mut results = Vec::new();
    for load in LOADS {
        let mut rows: Vec<Vec<Row>> = vec![Vec::new(); targets.len()];
        for run in 1..=runs {
            for (i, (name, target, pid)) in targets.iter().enumerate() {
                let row = measure(name, target, *pid, load, length)?;
                if progress {
                    eprintln!(
                        "unix benchmark: {} clients x {} B, run {run}/{runs}, {name}: {:.0} msg/s",
                        load.clients, load.size, row.msgs_per_s
                    );
                }
                rows[i].push(row);
            }
        }
        let medians = rows
            .into_iter()
            .map(|mut runs| {
                runs.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
                runs.swap_remove(runs.len() / 2)
            })
            .collect();
        results.push((load, medians));
    }
    drop((unix, v4, v6));
    Ok(Report {
        provenance: Provenance::now(),
        took_s: started.elapsed().as_secs_f64(),
        runs,
        seconds: length.as_secs_f64(),
        results,
    })
}

/// Writes `unix.json` and `unix.md` into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("unix.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    redraw(report, dir)
}

/// Writes `unix.md` from `report`.
pub fn redraw(report: &Report, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("unix.md");
    std::fs::write(&path, markdown(report)).with_context(|| format!("writing {}", path.display()))
}

fn size_text(bytes: usize) -> String {
    if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The tables and the sentences that compare them, as the appendix
/// includes them: every figure the prose needs is written here.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- generated by `cargo run --release -p loadgen -- unix`; do not edit -->\n"
    );
    let program = Program {
        name: "lesson 12's server",
        paths: &["lessons/lesson12-families/server"],
    };
    let changed = report
        .provenance
        .changed_since(&[&program], "cargo run --release -p loadgen -- unix");
    let _ = writeln!(
        out,
        "From one run of `cargo run --release -p loadgen -- unix` {}, which took {:.0} s: \
         lesson12-server, the median of {} runs of {:.0} s for each transport, taking turns.{}\n",
        report.provenance.phrase(),
        report.took_s,
        report.runs,
        report.seconds,
        if changed.is_empty() {
            changed
        } else {
            format!(" {changed}")
        }
    );
    for (load, rows) in &report.results {
        let clients = match load.clients {
            1 => "one client".to_string(),
            n => format!("{n} clients"),
        };
        let _ = writeln!(
            out,
            "**{clients}, messages of {}:**\n",
            size_text(load.size)
        );
        let _ = writeln!(
            out,
            "| transport | messages/s | MB/s | round trip p50 | p99 | server CPU per message |"
        );
        let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
        for row in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {} µs | {} µs | {} |",
                row.transport,
                crate::render::thousands(row.msgs_per_s),
                row.mb_per_s,
                row.p50_us,
                row.p99_us,
                row.cpu_us_per_msg
                    .map_or("–".to_string(), |us| format!("{us:.1} µs"))
            );
        }
        if let [unix, tcp, ..] = rows.as_slice() {
            let cpu = match (unix.cpu_us_per_msg, tcp.cpu_us_per_msg) {
                (Some(u), Some(t)) if t > 0.0 => {
                    format!(
                        ", and the server spent {:.2}× the CPU time on each message",
                        u / t
                    )
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "\nWith {clients} and messages of {}, the Unix domain socket carried {:.2}× the messages per second of TCP over 127.0.0.1, with a median round trip {:.2}× as long{cpu}.",
                size_text(load.size),
                unix.msgs_per_s / tcp.msgs_per_s,
                unix.p50_us as f64 / tcp.p50_us.max(1) as f64,
            );
        }
        if rows.len() == 2 {
            let _ = writeln!(
                out,
                "\n(This machine has no `::1`, so TCP over IPv6 was not measured.)"
            );
        }
        let _ = writeln!(out);
    }
    out
}
