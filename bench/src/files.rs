//! Lesson 08's benchmark: one file of 1 GiB up and down, through the Rust
//! server, through its Python twin, and through a bare loopback connection,
//! in the same run.
//!
//! The file is made of one random MiB, each copy numbered in its first eight
//! bytes, so that the generator never holds more than a MiB and can check
//! every byte that comes back, without building the expected bytes again. An upload is timed from the first byte of the
//! body to the server's last answer, which it sends only once the file is
//! hashed, synced to the disk and renamed: storing it safely is part of the
//! work. A download is timed from the request to the last byte.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use course_kit::{Server, TempDir};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::procs::{self, Peak};
use crate::provenance::{Program, Provenance};
use crate::stats::median;

const MIB: usize = 1024 * 1024;

/// Rounds of each measurement (raw loopback, the disk, each server), in turns, so that
/// what the disk is still doing after one (writing back, freeing the file
/// just removed) falls on both alike. The table gives the median.
const ROUNDS: usize = 3;

/// What one subject did with the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Transfer {
    pub subject: String,
    pub upload_mb_s: f64,
    pub download_mb_s: f64,
    /// Server CPU (user + system) per MB moved, in milliseconds.
    pub upload_cpu_ms_per_mb: Option<f64>,
    pub download_cpu_ms_per_mb: Option<f64>,
    /// The largest resident memory seen, in MB.
    pub peak_mb: Option<f64>,
}

/// The whole run: `files.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub provenance: Provenance,
    /// How long the whole run took, in seconds.
    pub took_s: f64,
    pub size_mib: usize,
    pub raw_mb_s: f64,
    pub disk_mb_s: f64,
    /// SHA-256 of the file's bytes in memory, on one core: the ceiling of
    /// a server that hashes what it receives as it receives it.
    pub hash_mb_s: f64,
    pub rust: Transfer,
    pub python: Option<Transfer>,
}

/// Turns `chunk`, a copy of the random block, into chunk `i` of the file:
/// only its first eight bytes change from one chunk to the next.
fn number(chunk: &mut [u8], i: usize) {
    chunk[..8].copy_from_slice(&(i as u64).to_be_bytes());
}

/// Whether `got` is chunk `i`, checked without building it.
fn is_chunk(got: &[u8], block: &[u8], i: usize) -> bool {
    got[..8] == (i as u64).to_be_bytes() && got[8..] == block[8..]
}

fn sha256_of_file(block: &[u8], chunks: usize) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut chunk = block.to_vec();
    for i in 0..chunks {
        number(&mut chunk, i);
        hasher.update(&chunk);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn send_header(conn: &mut TcpStream, header: &Value) -> anyhow::Result<()> {
    let body = header.to_string().into_bytes();
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    conn.write_all(&frame).context("sending a header")
}

fn read_header(conn: &mut TcpStream) -> anyhow::Result<Value> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).context("reading a header")?;
    let len = u32::from_be_bytes(len) as usize;
    ensure!(
        len <= 64 * 1024,
        "the server announced a header of {len} bytes"
    );
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).context("reading a header")?;
    serde_json::from_slice(&body).context("the server's header is not JSON")
}

/// The raw loopback ceiling for this size: one socket streams the bytes to
/// another, which throws them away.
fn raw(bytes: usize) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = thread::spawn(move || -> std::io::Result<u64> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match conn.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut conn = TcpStream::connect(addr)?;
    let buf = vec![b'x'; MIB];
    let start = Instant::now();
    for _ in 0..bytes / MIB {
        conn.write_all(&buf)?;
    }
    drop(conn);
    let got = reader
        .join()
        .map_err(|_| anyhow!("the raw reader panicked"))??;
    let seconds = start.elapsed().as_secs_f64();
    ensure!(got == bytes as u64, "raw: {got} of {bytes} bytes arrived");
    Ok(bytes as f64 / seconds / 1e6)
}

/// The disk's ceiling for this size: the same bytes written to a file in
/// the temporary folder and synced, with no network and no hash.
fn disk(bytes: usize) -> anyhow::Result<f64> {
    let dir = TempDir::with_prefix("loadgen-files-disk-")?;
    let mut file = std::fs::File::create(dir.path().join("ceiling.bin"))?;
    let buf = vec![b'x'; MIB];
    let start = Instant::now();
    for _ in 0..bytes / MIB {
        file.write_all(&buf)?;
    }
    file.sync_all()?;
    Ok(bytes as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Samples `pid`'s memory every 20 ms until dropped.
struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Peak>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Peak::default());
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.sample(pid);
                // Sampling memory: a clock is the only event there is.
                thread::sleep(Duration::from_millis(20));
            }
        });
        Sampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak_mb(mut self, pid: u32) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.sample(pid);
        let sampled = self.peak.get().0;
        // The kernel's high-water mark catches a peak between two samples.
        let hwm = course_kit::memory(pid).ok().map(|m| m.peak_kib);
        sampled.max(hwm).map(|kib| kib as f64 / 1024.0)
    }
}

/// Uploads and downloads the file through `server`, checking every byte.
fn transfer(
    subject: &str,
    server: &Server,
    block: &[u8],
    chunks: usize,
    sha256: &str,
) -> anyhow::Result<Transfer> {
    let pid = server.pid();
    let size = chunks * MIB;
    let mb = size as f64 / 1e6;
    let sampler = Sampler::start(pid);
    let mut conn = TcpStream::connect(server.addr)?;
    // Storing 1 GiB safely includes its fsync, which a slow disk makes long.
    conn.set_read_timeout(Some(Duration::from_secs(600)))?;

    send_header(
        &mut conn,
        &json!({"cmd": "put", "name": "big.bin", "size": size, "sha256": sha256}),
    )?;
    let ready = read_header(&mut conn)?;
    ensure!(
        ready == json!({"ok": true, "offset": 0}),
        "{subject}: {ready}"
    );
    let cpu_before = procs::cpu_seconds(pid);
    let start = Instant::now();
    let mut chunk = block.to_vec();
    for i in 0..chunks {
        number(&mut chunk, i);
        conn.write_all(&chunk)?;
    }
    let stored = read_header(&mut conn)?;
    let up_seconds = start.elapsed().as_secs_f64();
    let cpu_after = procs::cpu_seconds(pid);
    ensure!(
        stored["ok"] == true && stored["sha256"] == sha256,
        "{subject}: {stored}"
    );
    let upload_cpu = cpu_after
        .zip(cpu_before)
        .map(|(a, b)| (a - b) * 1000.0 / mb);

    let cpu_before = procs::cpu_seconds(pid);
    let start = Instant::now();
    send_header(&mut conn, &json!({"cmd": "get", "name": "big.bin"}))?;
    let found = read_header(&mut conn)?;
    ensure!(
        found["size"] == size && found["sha256"] == sha256,
        "{subject}: {found}"
    );
    let mut got = vec![0u8; MIB];
    for i in 0..chunks {
        conn.read_exact(&mut got)?;
        if !is_chunk(&got, block, i) {
            bail!("{subject}: MiB {i} of the download differs from what was uploaded");
        }
    }
    let down_seconds = start.elapsed().as_secs_f64();
    let cpu_after = procs::cpu_seconds(pid);
    let download_cpu = cpu_after
        .zip(cpu_before)
        .map(|(a, b)| (a - b) * 1000.0 / mb);
    Ok(Transfer {
        subject: subject.to_string(),
        upload_mb_s: mb / up_seconds,
        download_mb_s: mb / down_seconds,
        upload_cpu_ms_per_mb: upload_cpu,
        download_cpu_ms_per_mb: download_cpu,
        peak_mb: sampler.peak_mb(pid),
    })
}

/// Starts `program prefix 127.0.0.1:0 --dir DIR`, the file server under test.
fn start(program: &Path, prefix: &[OsString], dir: &Path) -> anyhow::Result<Server> {
    let mut args: Vec<OsString> = prefix.to_vec();
    args.push("127.0.0.1:0".into());
    args.push("--dir".into());
    args.push(dir.as_os_str().to_owned());
    procs::start(program, &args)
}

/// Runs the whole benchmark with a file of `size_mib` MiB.
pub fn run(size_mib: usize, progress: bool) -> anyhow::Result<Report> {
    ensure!(size_mib >= 1, "the file must be at least 1 MiB");
    let say = |text: &str| {
        if progress {
            eprintln!("{text}");
        }
    };
    let started = Instant::now();
    let block = course_kit::Rng::new(0x0808).bytes(MIB);
    say(&format!("hashing the {size_mib} MiB file"));
    let hashing = Instant::now();
    let sha256 = sha256_of_file(&block, size_mib);
    let hash_mb_s = (size_mib * MIB) as f64 / hashing.elapsed().as_secs_f64() / 1e6;

    let rust_dir = TempDir::with_prefix("loadgen-files-rust-")?;
    let rust_bin = procs::build("lesson08-server")?;
    let rust_server = start(&rust_bin, &[], rust_dir.path())?;
    let python_dir = TempDir::with_prefix("loadgen-files-python-")?;
    let python_server = match procs::python() {
        None => {
            say("no Python 3: the twin is not measured");
            None
        }
        Some((python, _)) => {
            let script: PathBuf =
                procs::workspace_dir().join("lessons/lesson08-file-transfer/python/server.py");
            // Its log written line by line, as the Rust server's.
            let args = procs::python_args(&script, &[]);
            Some(start(&python, &args, python_dir.path())?)
        }
    };
    let (mut raws, mut disks) = (Vec::new(), Vec::new());
    let (mut rust, mut python) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        say(&format!("round {round} of {ROUNDS}: raw loopback"));
        raws.push(raw(size_mib * MIB)?);
        say(&format!("round {round} of {ROUNDS}: the disk"));
        disks.push(disk(size_mib * MIB)?);
        say(&format!("round {round} of {ROUNDS}: lesson08-server"));
        rust.push(transfer(
            "lesson08-server",
            &rust_server,
            &block,
            size_mib,
            &sha256,
        )?);
        if let Some(server) = &python_server {
            say(&format!("round {round} of {ROUNDS}: the Python twin"));
            python.push(transfer("Python twin", server, &block, size_mib, &sha256)?);
        }
    }
    let raw_mb_s = median(raws).unwrap_or(0.0);
    let disk_mb_s = median(disks).unwrap_or(0.0);
    let rust = median_transfer(&rust);
    let python = (!python.is_empty()).then(|| median_transfer(&python));
    Ok(Report {
        provenance: Provenance::now(),
        took_s: started.elapsed().as_secs_f64(),
        size_mib,
        raw_mb_s,
        disk_mb_s,
        hash_mb_s,
        rust,
        python,
    })
}

/// Each figure's median over the rounds, and the largest memory seen.
fn median_transfer(rounds: &[Transfer]) -> Transfer {
    let mid = |value: fn(&Transfer) -> Option<f64>| median(rounds.iter().filter_map(value));
    Transfer {
        subject: rounds
            .first()
            .map(|t| t.subject.clone())
            .unwrap_or_default(),
        upload_mb_s: mid(|t| Some(t.upload_mb_s)).unwrap_or(0.0),
        download_mb_s: mid(|t| Some(t.download_mb_s)).unwrap_or(0.0),
        upload_cpu_ms_per_mb: mid(|t| t.upload_cpu_ms_per_mb),
        download_cpu_ms_per_mb: mid(|t| t.download_cpu_ms_per_mb),
        peak_mb: rounds.iter().filter_map(|t| t.peak_mb).reduce(f64::max),
    }
}

fn or_dash(value: Option<f64>, digits: usize) -> String {
    value.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

/// The table and the targets, as the appendix includes them.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- generated by `cargo run --release -p loadgen -- files`; do not edit -->\n"
    );
    let _ = writeln!(
        out,
        "From one run of `cargo run --release -p loadgen -- files` {}, which took {:.0} s: \
         one file of {} MiB, up and down; each figure is the median of {ROUNDS} rounds, taken in turns.{}\n",
        report.provenance.phrase(),
        report.took_s,
        report.size_mib,
        match report.provenance.changed_since(
            &PROGRAMS.iter().collect::<Vec<_>>(),
            "cargo run --release -p loadgen -- files"
        ) {
            text if text.is_empty() => text,
            text => format!(" {text}"),
        }
    );
    let _ = writeln!(
        out,
        "| subject | upload MB/s | download MB/s | server CPU per MB, up / down | server peak memory |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    let _ = writeln!(
        out,
        "| raw loopback (no server, no disk) | {:.0} | {:.0} | – | – |",
        report.raw_mb_s, report.raw_mb_s
    );
    let _ = writeln!(
        out,
        "| disk: write and sync a file (no network, no hash) | {:.0} | – | – | – |",
        report.disk_mb_s
    );
    for t in std::iter::once(&report.rust).chain(report.python.iter()) {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} ms / {} ms | {} MB |",
            t.subject,
            t.upload_mb_s,
            t.download_mb_s,
            or_dash(t.upload_cpu_ms_per_mb, 2),
            or_dash(t.download_cpu_ms_per_mb, 2),
            or_dash(t.peak_mb, 1)
        );
    }
    let _ = writeln!(out, "\n| target | wanted | measured | |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let verdict = |met: bool| if met { "met" } else { "missed" };
    // The download goes out by sendfile, with no copy through the server:
    // it should come near the raw stream. The upload is hashed, written and
    // synced, and a disk is usually slower than loopback.
    for (what, rust, wanted) in [
        ("upload", report.rust.upload_mb_s, 0.5),
        ("download", report.rust.download_mb_s, 0.7),
    ] {
        let ratio = rust / report.raw_mb_s;
        let _ = writeln!(
            out,
            "| lesson 08 {what} against raw loopback | at least {wanted}× | {ratio:.2}× | {} |",
            verdict(ratio >= wanted)
        );
    }
    if let Some(python) = &report.python {
        for (what, rust, py) in [
            ("upload", report.rust.upload_mb_s, python.upload_mb_s),
            ("download", report.rust.download_mb_s, python.download_mb_s),
        ] {
            let ratio = rust / py;
            let _ = writeln!(
                out,
                "| lesson 08 {what} against its Python twin | at least 2× | {ratio:.2}× | {} |",
                verdict(ratio >= 2.0)
            );
        }
    }
    let of_disk = report.rust.upload_mb_s / report.disk_mb_s;
    let _ = writeln!(
        out,
        "| (for comparison) lesson 08 upload against the disk alone | | {of_disk:.2}× | |"
    );
    if let Some(peak) = report.rust.peak_mb {
        let _ = writeln!(
            out,
            "| lesson 08 server's peak memory | under 16 MB | {peak:.1} MB | {} |",
            verdict(peak < 16.0)
        );
    }
    let _ = writeln!(
        out,
        "\nWriting and syncing the file alone ran at {:.2}× the speed of raw loopback, and \
         lesson 08's upload at {of_disk:.2}× the speed of that disk alone. SHA-256 over the \
         same bytes in memory, on one core, ran at {:.0} MB/s, {:.2}× raw loopback.",
        report.disk_mb_s / report.raw_mb_s,
        report.hash_mb_s,
        report.hash_mb_s / report.raw_mb_s,
    );
    if let Some(python) = &report.python {
        let _ = writeln!(
            out,
            "The Python twin's upload ran at {:.2}× lesson 08's, its download at {:.2}×.",
            python.upload_mb_s / report.rust.upload_mb_s,
            python.download_mb_s / report.rust.download_mb_s,
        );
    }
    out
}

/// The sources measured, to tell whether they changed since a run.
const PROGRAMS: [Program; 2] = [
    Program {
        name: "lesson 08's server",
        paths: &[
            "lessons/lesson08-file-transfer/server",
            "lessons/lesson08-file-transfer/header-server",
            "lessons/lesson07-framing/frame",
        ],
    },
    Program {
        name: "its Python twin",
        paths: &["lessons/lesson08-file-transfer/python/server.py"],
    },
];

/// Writes `files.json` and `files.md` into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("files.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    redraw(report, dir)
}

/// Writes `files.md` from `report`.
pub fn redraw(report: &Report, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("files.md");
    std::fs::write(&path, markdown(report)).with_context(|| format!("writing {}", path.display()))
}
