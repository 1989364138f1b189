//! `loadgen c10k`: the chat room of lessons 06, 10 and 11 (and the two Python
//! twins) grown to 100, 1,000, 5,000 and 10,000 members, on one server each.
//!
//! For every server, one room grows in stages. At each size the members
//! first all hear each other join (every join is announced to everyone
//! already in, so filling a room of N costs N(N-1)/2 notices: that is the
//! join time), then one member sends a few lines, one at a time, and every
//! other member's receipt is timed, as in `loadgen fanout`. The server's
//! memory, threads and CPU time are read from `/proc` at each size.
//!
//! A server that cannot hold the next size within the time budget, or that
//! hangs up on members, or turns them away, stops there, and the report says
//! where and why. The generator itself is one thread with a task per member,
//! so that it takes one core and leaves the other to the server.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

use crate::fanout;
use crate::procs;
use crate::provenance::{self, Program, Provenance};
use crate::render::{self, plot_err};
use crate::stats::{Latencies, Percentiles};

/// The longest a connect, a welcome or one line reaching everybody may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Callers joining at once, each waiting for its welcome: as when a
/// crowd arrives together. Notices then pile up a little on each member's
/// socket, and the generator reads them in fewer calls.
const JOINING: usize = 32;

/// How a run is set up.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    /// The room sizes, smallest first.
    pub rooms: Vec<usize>,
    /// Lines sent at each size, at least: more in small rooms, so that
    /// every size has `deliveries` deliveries to time.
    pub messages: u64,
    /// Deliveries timed at each size, at least: enough for a steady p99,
    /// and for the server's CPU time (counted in 10 ms ticks) to be read
    /// closely.
    pub deliveries: u64,
    /// The longest one server may take to fill its room to the largest size.
    pub budget_s: f64,
}

/// A server under test: how to start it.
pub struct Subject {
    pub key: &'static str,
    pub label: &'static str,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// One room size, as one server held it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stage {
    /// The size asked for.
    pub members: usize,
    /// Members in the room when the stage ended (less than `members` when
    /// the server broke on the way).
    pub reached: usize,
    /// From the first connect to the moment every member had heard every
    /// later member join, in seconds.
    pub fill_s: f64,
    /// Delivery latency of the chat lines, send to receipt, all receivers.
    pub latency: Option<Percentiles>,
    pub deliveries: u64,
    pub missing: u64,
    /// The server's resident memory and threads with the room full.
    pub rss_kb: Option<u64>,
    pub threads: Option<u64>,
    /// Server CPU time (user + system) per delivered line, in microseconds.
    pub cpu_us_per_line: Option<f64>,
    /// Why the server went no further, if it broke at this size.
    pub broke: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SubjectResult {
    pub key: String,
    pub label: String,
    pub stages: Vec<Stage>,
    /// Why this server was not measured at all.
    pub missing: Option<String>,
}

/// Everything one `loadgen c10k` run measured: `c10k.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub date: String,
    /// Which run this was: machine, commit (absent in older files, which
    /// recorded only the date).
    #[serde(default)]
    pub provenance: Option<Provenance>,
    pub spec: Spec,
    pub open_files: Option<u64>,
    pub subjects: Vec<SubjectResult>,
    pub took_s: f64,
}

/// What the member tasks share with the coordinator.
#[derive(Default)]
struct Shared {
    /// `* NAME joined` notices heard, all members together.
    joins: AtomicU64,
    /// Members whose connection ended, and the first reason.
    closed: AtomicU64,
    first_close: Mutex<Option<String>>,
    /// Woken whenever `joins` or `closed` changes.
    changed: Notify,
}

/// One room on one server: the members' write halves and their reader
/// tasks, which are stopped when the room is dropped.
struct Room {
    addr: SocketAddr,
    base: Instant,
    shared: Arc<Shared>,
    got: mpsc::UnboundedSender<(u64, u32)>,
    inbox: mpsc::UnboundedReceiver<(u64, u32)>,
    writers: Vec<OwnedWriteHalf>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Room {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl Room {
    fn new(addr: SocketAddr) -> Room {
        let (got, inbox) = mpsc::unbounded_channel();
        Room {
            addr,
            base: Instant::now(),
            shared: Arc::default(),
            got,
            inbox,
            writers: Vec::new(),
            readers: Vec::new(),
        }
    }

    fn members(&self) -> usize {
        self.writers.len()
    }

    /// Why the room is no longer whole, if a member's connection ended.
    fn hung_up(&self) -> Option<String> {
        let closed = self.shared.closed.load(Ordering::Relaxed);
        if closed == 0 {
            return None;
        }
        let why = self
            .shared
            .first_close
            .lock()
            .ok()
            .and_then(|first| first.clone())
            .unwrap_or_default();
        Some(format!("{closed} members were disconnected ({why})"))
    }

    /// Adds members until there are `size`, [`JOINING`] at a time, and
    /// reports each new count to `tick`.
    async fn grow(
        &mut self,
        size: usize,
        deadline: Instant,
        mut tick: impl FnMut(usize),
    ) -> Result<(), String> {
        let mut joining = tokio::task::JoinSet::new();
        loop {
            while self.members() + joining.len() < size && joining.len() < JOINING {
                joining.spawn(arrive(self.addr, deadline));
            }
            let Some(arrived) = joining.join_next().await else {
                return Ok(());
            };
            let (read, write, early) =
                arrived.map_err(|err| format!("joining failed: {err}"))??;
            self.readers.push(tokio::spawn(member(
                read,
                early,
                self.base,
                self.shared.clone(),
                self.got.clone(),
            )));
            self.writers.push(write);
            tick(self.members());
            if let Some(why) = self.hung_up() {
                return Err(why);
            }
        }
    }

    /// Waits until every member has heard of every later member joining.
    async fn settle(&self, deadline: Instant) -> Result<(), String> {
        let n = self.members() as u64;
        let expected = n * n.saturating_sub(1) / 2;
        loop {
            // A notification that comes between the check and the wait is
            // kept by `Notify` as a permit, so none is missed.
            let heard = self.shared.joins.load(Ordering::Relaxed);
            if heard >= expected {
                return Ok(());
            }
            if let Some(why) = self.hung_up() {
                return Err(why);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || timeout(left, self.shared.changed.notified()).await.is_err() {
                return Err(format!(
                    "out of time: {heard} of {expected} join notices heard"
                ));
            }
        }
    }

    /// Member 0 says `messages` lines, one at a time; each is timed at every
    /// other member. Returns the latencies (µs) and how many deliveries never
    /// came (counting the lines not sent after one went astray).
    async fn talk(&mut self, messages: u64) -> Result<(Latencies, u64), String> {
        let receivers = self.members() as u64 - 1;
        let mut latencies = Latencies::new();
        let mut missing = 0;
        for seq in 0..messages {
            let sent_us = self.base.elapsed().as_micros();
            let line = format!("m {seq} {sent_us}\n");
            timeout(STEP_TIMEOUT, self.writers[0].write_all(line.as_bytes()))
                .await
                .map_err(|_| "sending a chat line timed out".to_string())?
                .map_err(|err| format!("sending a chat line failed: {err}"))?;
            let mut got = 0;
            let until = Instant::now() + STEP_TIMEOUT;
            while got < receivers {
                let left = until.saturating_duration_since(Instant::now());
                match timeout(left, self.inbox.recv()).await {
                    Ok(Some((s, latency))) if s == seq => {
                        got += 1;
                        latencies.record(Duration::from_micros(latency.into()));
                    }
                    Ok(Some(_)) => {} // a late one from an earlier line
                    Ok(None) | Err(_) => break,
                }
            }
            if got < receivers {
                // A line that does not reach everybody within the step's
                // time ends the stage: the next would only wait as long.
                missing = (messages - seq) * receivers - got;
                break;
            }
        }
        Ok((latencies, missing))
    }
}

/// One caller arriving: connect, and read up to the welcome line. Returns
/// the connection and whatever came after the welcome.
async fn arrive(
    addr: SocketAddr,
    deadline: Instant,
) -> Result<(OwnedReadHalf, OwnedWriteHalf, Vec<u8>), String> {
    let wait = STEP_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
    if wait.is_zero() {
        return Err("out of time".into());
    }
    let work = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|err| format!("a caller could not connect: {err}"))?;
        let _ = stream.set_nodelay(true);
        let (mut read, write) = stream.into_split();
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        let end = loop {
            if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                break end;
            }
            match read.read(&mut chunk).await {
                Ok(0) => return Err("a caller was hung up on before a welcome".to_string()),
                Ok(n) if buf.len() + n <= 4096 => buf.extend_from_slice(&chunk[..n]),
                Ok(_) => return Err("the welcome is longer than 4 KiB".to_string()),
                Err(err) => return Err(format!("a caller could not read its welcome: {err}")),
            }
        };
        if !buf.starts_with(b"* welcome") {
            let line = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Err(format!("a caller was turned away: {line:?}"));
        }
        Ok((read, write, buf.split_off(end + 1)))
    };
    match timeout(wait, work).await {
        Ok(done) => done,
        Err(_) if wait < STEP_TIMEOUT => Err("out of time".into()),
        Err(_) => Err(format!("a caller got no welcome within {wait:?}")),
    }
}

/// One member: reads everything the server sends, as a chat client must
/// (a server hangs up on a member who does not read). It counts join
/// notices and reports stamped chat lines (`NAME: m SEQ MICROS`). `early`
/// is what came with the welcome.
async fn member(
    mut read: OwnedReadHalf,
    early: Vec<u8>,
    base: Instant,
    shared: Arc<Shared>,
    got: mpsc::UnboundedSender<(u64, u32)>,
) {
    let mut buf = vec![0u8; 4096];
    let mut filled = early.len();
    buf[..filled].copy_from_slice(&early);
    let why = loop {
        // Whole lines first (the early bytes may hold some), then read more.
        let now_us = base.elapsed().as_micros();
        let mut joins = 0;
        let mut start = 0;
        while let Some(end) = buf[start..filled].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + end];
            start += end + 1;
            if line.starts_with(b"* ") && line.ends_with(b" joined") {
                joins += 1;
            } else if let Some((seq, sent_us)) =
                std::str::from_utf8(line).ok().and_then(fanout::parse_stamp)
            {
                let latency = now_us.saturating_sub(sent_us).min(u128::from(u32::MAX)) as u32;
                let _ = got.send((seq, latency));
            }
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if joins > 0 {
            shared.joins.fetch_add(joins, Ordering::Relaxed);
            shared.changed.notify_one();
        }
        if filled == buf.len() {
            break "a line longer than 4 KiB".to_string();
        }
        match read.read(&mut buf[filled..]).await {
            Ok(0) => break "the server hung up".to_string(),
            Ok(n) => filled += n,
            Err(err) => break format!("reading failed: {err}"),
        }
    };
    if let Ok(mut first) = shared.first_close.lock() {
        first.get_or_insert(why);
    }
    shared.closed.fetch_add(1, Ordering::Relaxed);
    shared.changed.notify_one();
}

/// Grows one server's room through every size of `spec`.
fn measure(
    runtime: &tokio::runtime::Runtime,
    subject: &Subject,
    spec: &Spec,
    progress: bool,
) -> SubjectResult {
    let mut result = SubjectResult {
        key: subject.key.into(),
        label: subject.label.into(),
        ..SubjectResult::default()
    };
    let server = match procs::start(&subject.program, &subject.args) {
        Ok(server) => server,
        Err(err) => {
            result.missing = Some(format!("{err:#}"));
            return result;
        }
    };
    let pid = server.pid();
    let budget = Duration::from_secs_f64(spec.budget_s);
    // Time spent talking counts neither against the budget nor as filling.
    let mut deadline = Instant::now() + budget;
    let mut talked = Duration::ZERO;
    runtime.block_on(async {
        let mut room = Room::new(server.addr);
        for &size in &spec.rooms {
            let mut stage = Stage {
                members: size,
                ..Stage::default()
            };
            let base = room.base;
            let tick = |members: usize| {
                if progress && members % 1000 == 0 {
                    let secs = (base.elapsed() - talked).as_secs_f64();
                    eprintln!("   {}: {members} members, {secs:.0} s", subject.label);
                }
            };
            let mut grown = room.grow(size, deadline, tick).await;
            if grown.is_ok() {
                grown = room.settle(deadline).await;
            }
            stage.reached = room.members();
            stage.fill_s = (room.base.elapsed() - talked).as_secs_f64();
            (stage.rss_kb, stage.threads) = procs::sample(pid).unzip();
            if let Err(why) = grown {
                stage.broke = Some(why);
                if progress {
                    eprintln!("   {}: {}", subject.label, stage_line(&stage));
                }
                result.stages.push(stage);
                break;
            }
            let lines = spec.messages.max(spec.deliveries.div_ceil(size as u64 - 1));
            let talk_start = Instant::now();
            let cpu_before = procs::cpu_seconds(pid);
            match room.talk(lines).await {
                Ok((latencies, missing)) => {
                    stage.deliveries = latencies.count();
                    stage.missing = missing;
                    stage.latency = latencies.percentiles();
                    if missing > 0 {
                        stage.broke = Some(format!(
                            "a line did not reach everybody within {STEP_TIMEOUT:?}"
                        ));
                    }
                }
                Err(why) => stage.broke = Some(why),
            }
            let cpu_after = procs::cpu_seconds(pid);
            talked += talk_start.elapsed();
            deadline += talk_start.elapsed();
            if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
                if stage.deliveries > 0 {
                    stage.cpu_us_per_line = Some((after - before) * 1e6 / stage.deliveries as f64);
                }
            }
            if let Some((rss, threads)) = procs::sample(pid) {
                stage.rss_kb = Some(stage.rss_kb.unwrap_or(0).max(rss));
                stage.threads = Some(stage.threads.unwrap_or(0).max(threads));
            }
            if stage.broke.is_none() {
                stage.broke = room.hung_up();
            }
            if progress {
                eprintln!("   {}: {}", subject.label, stage_line(&stage));
            }
            let broke = stage.broke.is_some();
            result.stages.push(stage);
            if broke {
                break;
            }
        }
    });
    drop(server);
    result
}

/// One stage in a line, for the progress log.
fn stage_line(s: &Stage) -> String {
    format!(
        "{} members in {:.1} s; p50 {}, p99 {}, max {}; {}, {} threads{}",
        s.reached,
        s.fill_s,
        render::micros(s.latency.map(|p| p.p50_us)),
        render::micros(s.latency.map(|p| p.p99_us)),
        render::micros(s.latency.map(|p| p.max_us)),
        render::rss(s.rss_kb),
        s.threads.map_or("?".into(), |t| t.to_string()),
        s.broke
            .as_deref()
            .map(|why| format!("; stopped: {why}"))
            .unwrap_or_default()
    )
}

/// The servers, in the order the table shows them: `(key, label, how)`.
const SUBJECTS: [(&str, &str, Launch); 5] = [
    (
        "lesson06",
        "lesson 06 (two threads per member)",
        Launch::Rust("lesson06-server", &[]),
    ),
    (
        "lesson10",
        "lesson 10 (mio event loop)",
        Launch::Rust("lesson10-server", &[]),
    ),
    (
        "lesson11",
        "lesson 11 (tokio tasks)",
        Launch::Rust("lesson11-server", &[]),
    ),
    (
        "python10",
        "lesson 10's Python twin (selectors)",
        Launch::Python("lessons/lesson10-event-loop/python/server.py", &[]),
    ),
    (
        "python11",
        "lesson 11's Python twin (asyncio)",
        Launch::Python("lessons/lesson11-async/python/server.py", &[]),
    ),
];

enum Launch {
    Rust(&'static str, &'static [&'static str]),
    Python(&'static str, &'static [&'static str]),
}

/// What the table calls a server: the key's short name (the table is wide
/// enough with ten columns); the results file's label for anything else.
fn short(subject: &SubjectResult) -> &str {
    match subject.key.as_str() {
        "lesson06" => "lesson 06",
        "lesson10" => "lesson 10",
        "lesson11" => "lesson 11",
        "python10" => "Python selectors",
        "python11" => "Python asyncio",
        _ => &subject.label,
    }
}

/// The keys `--only` accepts.
pub fn keys() -> Vec<&'static str> {
    SUBJECTS.iter().map(|s| s.0).collect()
}

/// Raises this process's open-file limit to the most it may have and
/// returns it. The servers it starts inherit it.
fn raise_open_files() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write `limit`.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
        Some(limit.rlim_cur)
    }
    #[cfg(not(unix))]
    None
}

/// Measures every server (or those in `only`) through every size.
pub fn run(spec: &Spec, only: &[String], progress: bool) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(
        !spec.rooms.is_empty() && spec.rooms.iter().all(|&n| n >= 2),
        "every room needs at least 2 members (one sender, one receiver)"
    );
    let largest = spec.rooms.iter().copied().max().unwrap_or(2);
    let open_files = raise_open_files();
    if let Some(limit) = open_files {
        anyhow::ensure!(
            limit >= largest as u64 + 64,
            "this process may open only {limit} files, and a room of {largest} needs \
             {largest} sockets here and as many in the server: raise the limit \
             (`ulimit -n {}`) or pass smaller --rooms",
            largest + 64
        );
    }
    let max_clients = (largest + 10).to_string();
    let python = procs::python();
    let mut subjects = Vec::new();
    for (key, label, launch) in &SUBJECTS {
        if !only.is_empty() && !only.iter().any(|o| o == key) {
            continue;
        }
        // The address first, then the server's own options.
        let extra = match launch {
            Launch::Rust(_, extra) | Launch::Python(_, extra) => extra,
        };
        let mut rest: Vec<OsString> = vec!["127.0.0.1:0".into()];
        rest.extend(extra.iter().map(OsString::from));
        rest.extend(["--max-clients".into(), max_clients.clone().into()]);
        let (program, args): (Result<PathBuf, String>, Vec<OsString>) = match launch {
            Launch::Rust(package, _) => (procs::build(package).map_err(|e| format!("{e:#}")), rest),
            // A twin writes its log line by line, as the Rust servers do.
            Launch::Python(script, _) => (
                python
                    .as_ref()
                    .map(|(path, _)| path.clone())
                    .ok_or_else(|| "python3 is not installed".to_string()),
                procs::python_args(&procs::workspace_dir().join(script), &rest),
            ),
        };
        subjects.push((key, label, program, args));
    }
    let runtime = crate::echo::runtime()?;
    let mut results = Vec::new();
    for (key, label, program, args) in subjects {
        if progress {
            eprintln!("== {label}");
        }
        let result = match program {
            Ok(program) => {
                let subject = Subject {
                    key,
                    label,
                    program,
                    args,
                };
                measure(&runtime, &subject, spec, progress)
            }
            Err(why) => SubjectResult {
                key: (*key).into(),
                label: (*label).into(),
                stages: Vec::new(),
                missing: Some(why),
            },
        };
        if let Some(why) = &result.missing {
            eprintln!("   {label}: not measured: {why}");
        }
        results.push(result);
    }
    Ok(Report {
        date: crate::report::today(),
        provenance: Some(Provenance::now()),
        spec: spec.clone(),
        open_files,
        subjects: results,
        took_s: started.elapsed().as_secs_f64(),
    })
}

/// Writes `c10k.json`, `c10k.md`, `c10k-ladder.md`, `c10k-memory.svg` and
/// `c10k-memory-narrow.svg` into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("c10k.json");
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    redraw(report, dir)
}

/// Writes the tables and the plot (wide and narrow) from `report`.
pub fn redraw(report: &Report, dir: &Path) -> anyhow::Result<()> {
    for (name, text) in [
        ("c10k.md", markdown(report)),
        ("c10k-ladder.md", ladder(report)),
        ("c10k-notes.md", notes(report)),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    render::Canvas::draw_both(dir, "c10k-memory", |canvas, path| {
        memory_plot(report, canvas, path)
    })
}

/// The three Rust rooms at the largest size each one held, for lesson 11's
/// ladder of designs.
pub fn ladder(report: &Report) -> String {
    let mut out = format!(
        "<!-- generated by `cargo run --release -p loadgen -- c10k`; do not edit -->\n\n\
         {}\n\n\
         | lesson | largest room it held | delivery p99 there | server memory there | threads there |\n\
         | --- | --: | --: | --: | --: |\n",
        which_run(report)
    );
    for (key, lesson) in [
        (
            "lesson06",
            "[06](lesson06-threaded-chat.md), two threads per member",
        ),
        ("lesson10", "[10](lesson10-event-loop.md), one event loop"),
        ("lesson11", "11, tasks on a runtime"),
    ] {
        let Some(subject) = report.subjects.iter().find(|s| s.key == key) else {
            continue;
        };
        let held = subject.stages.iter().rev().find(|s| s.broke.is_none());
        let Some(s) = held else {
            let _ = writeln!(out, "| {lesson} | none | – | – | – |");
            continue;
        };
        let stopped = subject
            .stages
            .last()
            .filter(|last| last.broke.is_some())
            .map(|last| {
                format!(
                    " (not {}: {} members after {:.0} s)",
                    render::thousands(last.members as f64),
                    render::thousands(last.reached as f64),
                    last.fill_s
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {lesson} | {}{stopped} | {} | {} | {} |",
            render::thousands(s.members as f64),
            render::micros(s.latency.map(|p| p.p99_us)),
            render::rss(s.rss_kb),
            s.threads
                .map_or("–".into(), |t| render::thousands(t as f64)),
        );
    }
    out
}

fn sizes(rooms: &[usize]) -> String {
    let mut text: Vec<String> = rooms.iter().map(|&n| render::thousands(n as f64)).collect();
    if let Some(last) = text.pop() {
        if text.is_empty() {
            return last;
        }
        return format!("{} and {last}", text.join(", "));
    }
    String::new()
}

/// What each server did, in sentences, for the prose around the table.
pub fn notes(report: &Report) -> String {
    let mut out = String::from(
        "<!-- generated by `cargo run --release -p loadgen -- c10k`; do not edit -->\n\n",
    );
    for subject in &report.subjects {
        let full: Vec<&Stage> = subject
            .stages
            .iter()
            .filter(|s| s.reached == s.members && s.broke.is_none())
            .collect();
        let (Some(first), Some(last)) = (full.first(), full.last()) else {
            let why = subject.missing.as_deref().unwrap_or("it held no room");
            let _ = writeln!(out, "- **{}:** not measured: {why}.", subject.label);
            continue;
        };
        let _ = write!(
            out,
            "- **{}:** held {} members at most, filled in {}; there a line reached all the \
             others with a p99 of {}, the server held {} ({} per member) on {} thread{}, and \
             spent {} of CPU per delivered line ({} with {} members)",
            subject.label,
            render::thousands(last.members as f64),
            took(last.fill_s),
            render::micros(last.latency.map(|p| p.p99_us)),
            render::rss(last.rss_kb),
            per_member_kb(last).map_or("–".into(), |kb| format!("{kb:.1} kB")),
            last.threads
                .map_or("?".into(), |t| render::thousands(t as f64)),
            if last.threads == Some(1) { "" } else { "s" },
            line_cpu(last),
            line_cpu(first),
            render::thousands(first.members as f64),
        );
        if let Some(stop) = subject
            .stages
            .iter()
            .find(|s| s.reached < s.members || s.broke.is_some())
        {
            let _ = write!(
                out,
                ". It stopped at {} of {} members after {}: {}",
                render::thousands(stop.reached as f64),
                render::thousands(stop.members as f64),
                took(stop.fill_s),
                stop.broke.as_deref().unwrap_or("it went no further"),
            );
            if let Some(kb) = per_member_kb(stop) {
                let _ = write!(
                    out,
                    ", with {} on {} threads ({kb:.1} kB per member)",
                    render::rss(stop.rss_kb),
                    stop.threads
                        .map_or("?".into(), |t| render::thousands(t as f64)),
                );
            }
        }
        out.push_str(".\n");
    }
    if let Some(limit) = report.open_files {
        let _ = writeln!(
            out,
            "\nloadgen could open {} files at once on the machine of this run, and its servers as many.",
            render::thousands(limit as f64)
        );
    }
    out
}

fn line_cpu(s: &Stage) -> String {
    s.cpu_us_per_line
        .map_or("an unmeasured amount".into(), |us| format!("{us:.1} µs"))
}

/// How long the run took: seconds for a trial, minutes for the real thing.
fn took(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.0} minutes", seconds / 60.0)
    }
}

/// Resident memory per member, in kB (10^3 bytes).
fn per_member_kb(s: &Stage) -> Option<f64> {
    let rss = s.rss_kb? as f64 * 1024.0 / 1e3;
    (s.reached > 0).then(|| rss / s.reached as f64)
}

/// A time in three significant digits or fewer, to keep the wide table
/// narrow: `678 µs`, `1.29 ms`, `94.8 ms`, `195 ms`.
fn compact(us: Option<u64>) -> String {
    match us {
        Some(us) if (10_000..1_000_000).contains(&us) => {
            let ms = us as f64 / 1e3;
            let digits = usize::from(ms < 100.0);
            format!("{ms:.digits$} ms")
        }
        other => render::micros(other),
    }
}

/// The sources of each server measured, to tell whether they changed since.
const PROGRAMS: [Program; 5] = [
    Program {
        name: "lesson 06",
        paths: &[
            "lessons/lesson06-threaded-chat/server",
            "lessons/lesson06-threaded-chat/protocol",
        ],
    },
    Program {
        name: "lesson 10",
        paths: &[
            "lessons/lesson10-event-loop/server",
            "lessons/lesson06-threaded-chat/protocol",
        ],
    },
    Program {
        name: "lesson 11",
        paths: &[
            "lessons/lesson11-async/server",
            "lessons/lesson06-threaded-chat/protocol",
        ],
    },
    Program {
        name: "lesson 10's twin",
        paths: &["lessons/lesson10-event-loop/python/server.py"],
    },
    Program {
        name: "lesson 11's twin",
        paths: &["lessons/lesson11-async/python/server.py"],
    },
];

/// Which run the figures come from, and what has changed since, in words.
pub fn which_run(report: &Report) -> String {
    let measured: Vec<&Program> = PROGRAMS
        .iter()
        .zip(keys())
        .filter(|(_, key)| {
            report
                .subjects
                .iter()
                .any(|s| s.key == *key && s.missing.is_none())
        })
        .map(|(p, _)| p)
        .collect();
    let (run, unrecorded) = match &report.provenance {
        Some(p) => (p.clone(), ""),
        None => (
            provenance::from_date(&report.date),
            " The machine and the commit of the sources were not recorded with these figures.",
        ),
    };
    let changed = run.changed_since(&measured, "cargo run --release -p loadgen -- c10k");
    let mut text = format!(
        "These figures come from one run of `cargo run --release -p loadgen -- c10k` {}, \
         which took {}.{unrecorded}",
        run.phrase(),
        took(report.took_s)
    );
    if !changed.is_empty() {
        text.push(' ');
        text.push_str(&changed);
    }
    text
}

/// The table, the list of where servers stopped, and the targets.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- generated by `cargo run --release -p loadgen -- c10k`; do not edit -->\n"
    );
    let _ = writeln!(out, "{}\n", which_run(report));
    let _ = writeln!(
        out,
        "One room per server, grown to {} members. At each size, one member sent {} lines, one at a \
         time, to all the others (more in smaller rooms, for at least {} deliveries \
         at each size). Each server had {:.0} s to fill its room. p50, p99 and max \
         are the delivery times of those lines; memory is the server's resident \
         memory with the room full; CPU per line is the server's CPU time per \
         delivered line.{}\n",
        sizes(&report.spec.rooms),
        report.spec.messages,
        render::thousands(report.spec.deliveries as f64),
        report.spec.budget_s,
        if report.subjects.iter().any(|s| s.key.starts_with("python")) {
            " Python selectors and Python asyncio are the twins of lessons 10 and 11."
        } else {
            ""
        }
    );
    // The three delivery times share a column, as in the fan-out table, so
    // that the table fits the column of a 1200-px laptop.
    let _ = writeln!(
        out,
        "| server | members | time to fill | delivery p50 / p99 / max | memory | per member | threads | CPU per line |"
    );
    let _ = writeln!(out, "| --- | --: | --: | --: | --: | --: | --: | --: |");
    let mut stops = Vec::new();
    for subject in &report.subjects {
        if let Some(why) = &subject.missing {
            stops.push(format!("- {}: not measured: {why}.", subject.label));
            continue;
        }
        for s in &subject.stages {
            let members = if s.reached < s.members {
                format!(
                    "{} of {}",
                    render::thousands(s.reached as f64),
                    render::thousands(s.members as f64)
                )
            } else {
                render::thousands(s.members as f64)
            };
            // A figure keeps its unit on its line (a no-break space): where
            // the column is narrow, the three delivery times wrap at a slash.
            let keep = |figure: String| figure.replace(' ', "\u{a0}");
            let lat = |pick: fn(&Percentiles) -> u64| keep(compact(s.latency.as_ref().map(pick)));
            let _ = writeln!(
                out,
                "| {} | {members} | {} | {} / {} / {} | {} | {} | {} | {} |",
                short(subject),
                keep(format!("{:.1} s", s.fill_s)),
                lat(|p| p.p50_us),
                lat(|p| p.p99_us),
                lat(|p| p.max_us),
                keep(render::rss(s.rss_kb)),
                keep(per_member_kb(s).map_or("–".into(), |kb| format!("{kb:.1} kB"))),
                s.threads
                    .map_or("–".into(), |t| render::thousands(t as f64)),
                keep(
                    s.cpu_us_per_line
                        .map_or("–".into(), |us| format!("{us:.1} µs"))
                ),
            );
            if let Some(why) = &s.broke {
                stops.push(format!(
                    "- {} stopped at {} members, after {:.0} s: {why}.",
                    subject.label,
                    render::thousands(s.reached as f64),
                    s.fill_s
                ));
            }
        }
    }
    if !stops.is_empty() {
        let _ = writeln!(out, "\nWhere a server went no further:\n");
        for stop in stops {
            let _ = writeln!(out, "{stop}");
        }
    }
    let _ = writeln!(out, "\n{}", targets(report));
    out
}

/// The C10K targets, for lessons 10 and 11 at the largest size: p99 under
/// 100 ms, memory under 64 MB, and no more threads than in the smallest room
/// (the runtime's own, whatever the number of members).
fn targets(report: &Report) -> String {
    let largest = report.spec.rooms.iter().copied().max().unwrap_or(0);
    let mut out = format!(
        "Targets at {} members:\n\n| target | lesson 10 | lesson 11 |\n| --- | --- | --- |\n",
        render::thousands(largest as f64)
    );
    let full = |key: &str| -> Option<(&Stage, &Stage)> {
        let subject = report.subjects.iter().find(|s| s.key == key)?;
        let last = subject.stages.last()?;
        let first = subject.stages.first()?;
        (last.members == largest && last.reached == largest && last.broke.is_none())
            .then_some((first, last))
    };
    let verdict =
        |ok: bool, figure: String| format!("{} ({figure})", if ok { "met" } else { "missed" });
    type Check = fn(&Stage, &Stage) -> Option<(bool, String)>;
    let checks: [(&str, Check); 3] = [
        ("delivery p99 under 100 ms", |_, last| {
            let p99 = last.latency?.p99_us;
            Some((p99 < 100_000, render::micros(Some(p99))))
        }),
        ("server memory under 64 MB", |_, last| {
            let mb = last.rss_kb? as f64 * 1024.0 / 1e6;
            Some((mb < 64.0, render::rss(last.rss_kb)))
        }),
        (
            "no more threads than in the smallest room",
            |first, last| {
                let (small, big) = (first.threads?, last.threads?);
                Some((big <= small, format!("{big}, against {small}")))
            },
        ),
    ];
    for (name, check) in checks {
        let measured = |key: &str| {
            let subject = report.subjects.iter().find(|s| s.key == key);
            subject.is_some_and(|s| s.missing.is_none())
        };
        let cell = |key: &str| match full(key) {
            // Left out with --only, or could not be started.
            None if !measured(key) => "not measured".to_string(),
            None => "missed (did not hold the room)".to_string(),
            Some((first, last)) => {
                check(first, last).map_or("not measured".into(), |(ok, figure)| verdict(ok, figure))
            }
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} |",
            cell("lesson10"),
            cell("lesson11")
        );
    }
    out
}

/// Memory per member against room size, one line per server, both axes on
/// log scales (the servers differ by a factor of a hundred). Narrow, the
/// legend goes under the plot.
fn memory_plot(report: &Report, canvas: render::Canvas, path: &Path) -> anyhow::Result<()> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = report
        .subjects
        .iter()
        .map(|s| {
            let points = s
                .stages
                .iter()
                .filter_map(|st| Some((st.reached as f64, per_member_kb(st)?)))
                .filter(|&(n, _)| n >= 2.0)
                .collect();
            (s.label.as_str(), points)
        })
        .collect();
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (100.0f64, f64::INFINITY, 1.0f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !y_min.is_finite() {
        y_min = 0.1;
    }
    let title = "The chat room at scale: server memory per member";
    let (plot_height, legend_h) = if canvas.narrow {
        (400, render::legend_height(series.len()))
    } else {
        (440, 0)
    };
    let root = SVGBackend::new(path, (canvas.width, plot_height + legend_h)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (area, below) = render::titled(&root, canvas, title)?
        .split_vertically(plot_height - 12 - 22 * canvas.title_lines(title).len() as u32 - 6);
    let x_min = report.spec.rooms.first().copied().unwrap_or(2) as f64 / 1.5;
    let mut chart = ChartBuilder::on(&area)
        .margin(14)
        .margin_top(0)
        .x_label_area_size(48)
        .y_label_area_size(if canvas.narrow { 56 } else { 72 })
        .build_cartesian_2d(
            (x_min..x_max * 1.5).log_scale(),
            ((y_min / 2.0).max(0.01)..y_max * 2.0).log_scale(),
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("members in the room (log scale)")
        .y_desc("kB per member (log scale)")
        .x_label_formatter(&|v| render::thousands(*v))
        .y_label_formatter(&|v| format!("{v}"))
        .label_style(("sans-serif", render::LABEL))
        .draw()
        .map_err(plot_err)?;
    let palette = [
        RGBColor(214, 96, 39),
        RGBColor(31, 119, 180),
        RGBColor(148, 103, 189),
        RGBColor(44, 160, 44),
        RGBColor(140, 86, 75),
    ];
    for (i, (label, points)) in series.iter().enumerate() {
        render::dotted_line(&mut chart, points, palette[i % palette.len()], label)?;
    }
    if canvas.narrow {
        let entries: Vec<(String, RGBColor)> = series
            .iter()
            .enumerate()
            .map(|(i, (label, _))| (label.to_string(), palette[i % palette.len()]))
            .collect();
        render::legend_rows(&below, &entries)?;
    } else {
        render::legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_list() {
        assert_eq!(sizes(&[100, 1000, 10_000]), "100, 1,000 and 10,000");
        assert_eq!(sizes(&[5]), "5");
    }

    #[test]
    fn a_trial_takes_seconds_and_the_real_run_minutes() {
        assert_eq!(took(15.4), "15 s");
        assert_eq!(took(1_860.0), "31 minutes");
    }

    #[test]
    fn times_are_compact() {
        assert_eq!(compact(Some(678)), "678 µs");
        assert_eq!(compact(Some(1_290)), "1.29 ms");
        assert_eq!(compact(Some(94_760)), "94.8 ms");
        assert_eq!(compact(Some(194_660)), "195 ms");
        assert_eq!(compact(None), "–");
    }
}
