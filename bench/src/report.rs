//! `loadgen report`: the whole benchmark, one command.
//!
//! It builds the lesson servers (release, when loadgen itself is a release
//! build), starts every server under test on 127.0.0.1:0, one at a time, and
//! for each scenario does a warm-up run, then several measured runs, keeping
//! the median of each figure. The results go to `results.json`, and the
//! tables and plots the book shows are drawn from that file.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;

use crate::ReportArgs;
use crate::echo::{self, RunStats};
use crate::fanout;
use crate::procs;
use crate::provenance::Program;
use crate::raw;
use crate::render;
use crate::results::{
    BuildTime, Entry, FanoutEntry, FanoutSummary, Log, Machine, Results, Settings, Summary,
};
use course_kit::Server;

/// Where the book keeps the generated tables and plots.
pub fn default_out_dir() -> PathBuf {
    procs::workspace_dir().join("book").join("src").join("perf")
}

/// How a server under test is started.
#[derive(Clone)]
enum Launch {
    /// No server: the raw loopback stream.
    Raw,
    /// This binary, with a `serve-...` subcommand.
    Loadgen(&'static str),
    /// A lesson binary, by package name, with extra arguments.
    Lesson(&'static str, Vec<&'static str>),
    /// A Python script, relative to the workspace, run with its log
    /// written line by line (see [`procs::python_args`]).
    Python(&'static str),
    /// The raw loopback stream through lesson 13's proxy, a fresh one per run.
    RawThroughProxy,
    /// This binary's `serve-...` server, with lesson 13's proxy in front.
    ThroughProxy(&'static str),
}

#[derive(Clone)]
struct Candidate {
    key: String,
    label: &'static str,
    kind: &'static str,
    launch: Launch,
    /// Where its log goes: read from a pipe, line by line, as a reader's
    /// terminal would show it, or thrown away by the system.
    log: Log,
}

/// A server as a reader runs it: its log, if it has one, written line by
/// line into a pipe that loadgen reads. The baselines log nothing.
fn candidate(
    key: &'static str,
    label: &'static str,
    kind: &'static str,
    launch: Launch,
) -> Candidate {
    let log = if matches!(kind, "ceiling" | "baseline") || key == "py-threading" {
        Log::None
    } else {
        Log::Lines
    };
    Candidate {
        key: key.to_string(),
        label,
        kind,
        launch,
        log,
    }
}

/// The same server with its output sent to `/dev/null` by the system: what
/// it costs without the pipe and the reader at its other end. Every lesson
/// that has a twin in a table runs both ways, and so does the twin, so that
/// each pair is compared like with like.
fn silent(c: &Candidate) -> Candidate {
    Candidate {
        key: format!("{}-silent", c.key),
        log: Log::DevNull,
        ..c.clone()
    }
}

/// `c`, then `c` with its log to `/dev/null`.
fn both_ways(c: Candidate) -> [Candidate; 2] {
    let quiet = silent(&c);
    [c, quiet]
}

const PY_SEQUENTIAL: &str = "lessons/lesson03-connection-loop/python/server.py";
const PY_THREADING: &str = "bench/python/threading_server.py";
const PY_UDP: &str = "lessons/lesson05-udp/python/server.py";
const PY_FRAMED: &str = "lessons/lesson07-framing/python/server.py";
const PY_HTTP: &str = "bench/python/http_server.py";
const LESSONS: [&str; 8] = [
    "lesson03-server",
    "lesson04-server",
    "lesson05-server",
    "lesson06-echo-server",
    "lesson06-server",
    "lesson07-server",
    "lesson09-server",
    "lesson13-proxy",
];

/// The sources of everything `report` measures, to tell whether they
/// changed since a run.
pub const PROGRAMS: [Program; 11] = [
    Program {
        name: "lesson 03",
        paths: &["lessons/lesson03-connection-loop/server"],
    },
    Program {
        name: "lesson 04",
        paths: &["lessons/lesson04-disconnect-handling/server"],
    },
    Program {
        name: "lesson 05",
        paths: &["lessons/lesson05-udp/server"],
    },
    Program {
        name: "lesson 06",
        paths: &[
            "lessons/lesson06-threaded-chat/echo-server",
            "lessons/lesson06-threaded-chat/server",
            "lessons/lesson06-threaded-chat/protocol",
        ],
    },
    Program {
        name: "lesson 07",
        paths: &[
            "lessons/lesson07-framing/server",
            "lessons/lesson07-framing/frame",
        ],
    },
    Program {
        name: "lesson 09",
        paths: &["lessons/lesson09-browser/server"],
    },
    Program {
        name: "lesson 13",
        paths: &["lessons/lesson13-bad-network/proxy"],
    },
    Program {
        name: "the Python twins",
        paths: &[PY_SEQUENTIAL, PY_UDP, PY_FRAMED],
    },
    Program {
        name: "the baselines",
        paths: &["bench/src/serve.rs", "bench/python"],
    },
    Program {
        name: "the way loadgen starts the servers",
        paths: &["bench/src/procs.rs"],
    },
    Program {
        name: "the load itself",
        paths: &[
            "bench/src/echo.rs",
            "bench/src/fanout.rs",
            "bench/src/raw.rs",
        ],
    },
];

/// Lesson 13's proxy, which the hop scenario puts in front of the others.
const PROXY: &str = "lesson13-proxy";

/// Everything the runs need to start servers.
struct Env {
    me: PathBuf,
    lessons: Vec<(String, Result<PathBuf, String>)>,
    python: Option<PathBuf>,
}

impl Env {
    /// The program and arguments for `launch`, or why it cannot run.
    fn command(&self, launch: &Launch) -> Result<(PathBuf, Vec<OsString>), String> {
        let port0: OsString = "127.0.0.1:0".into();
        match launch {
            Launch::Raw => Err("the raw stream has no server".into()),
            Launch::Loadgen(sub) => Ok((self.me.clone(), vec![(*sub).into(), port0])),
            Launch::Lesson(name, extra) => {
                let path = self
                    .lessons
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| p.clone())
                    .unwrap_or_else(|| Err(format!("{name} was not built")))?;
                let mut args = vec![port0];
                args.extend(extra.iter().map(OsString::from));
                Ok((path, args))
            }
            Launch::RawThroughProxy | Launch::ThroughProxy(_) => {
                Err("a proxied server is started by start_proxied".into())
            }
            Launch::Python(script) => {
                let python = self
                    .python
                    .clone()
                    .ok_or_else(|| "python3 is not installed".to_string())?;
                let path = procs::workspace_dir().join(script);
                if !path.is_file() {
                    return Err(format!("{script} does not exist yet"));
                }
                Ok((python, procs::python_args(&path, &[port0])))
            }
        }
    }
}

pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let settings = settings(args);
    // A smoke run must never overwrite the book's real figures.
    let out = args.out.clone().unwrap_or_else(|| {
        if settings.smoke {
            std::env::temp_dir().join("loadgen-smoke")
        } else {
            default_out_dir()
        }
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mode = if settings.smoke { "smoke" } else { "full" };
    eprintln!(
        "== loadgen report ({mode} setting), results to {}",
        out.display()
    );

    let started = Instant::now();
    let load_before = load_average();
    let build = if settings.smoke || args.no_build_time {
        None
    } else {
        Some(time_clean_build())
    };

    eprintln!("== building the lesson servers ({})", profile());
    let lessons = LESSONS
        .iter()
        .map(|name| {
            let built = procs::build(name).map_err(|err| format!("{err:#}"));
            if let Err(err) = &built {
                eprintln!("   {name}: {err}");
            }
            (name.to_string(), built)
        })
        .collect();
    let python = procs::python();
    let env = Env {
        me: std::env::current_exe().context("where is this program?")?,
        lessons,
        python: python.as_ref().map(|(path, _)| path.clone()),
    };
    let mut results = Results {
        machine: machine(python.map(|(_, v)| v), load_before),
        settings: settings.clone(),
        build,
        ..Results::default()
    };
    let runtime = echo::runtime()?;

    let [lesson03, lesson03_silent] = both_ways(candidate(
        "lesson03",
        "lesson 03, sequential",
        "lesson",
        Launch::Lesson("lesson03-server", vec![]),
    ));
    let [py_sequential, py_sequential_silent] = both_ways(candidate(
        "py-sequential",
        "Python, sequential (lesson 03 twin)",
        "python",
        Launch::Python(PY_SEQUENTIAL),
    ));
    let tcp = [
        candidate("raw", "raw loopback, no replies", "ceiling", Launch::Raw),
        candidate(
            "tokio",
            "tokio echo",
            "baseline",
            Launch::Loadgen("serve-tokio"),
        ),
        candidate(
            "threads",
            "thread per connection",
            "baseline",
            Launch::Loadgen("serve-threads"),
        ),
        lesson03,
        py_sequential,
        lesson03_silent,
        py_sequential_silent,
        candidate(
            "lesson04",
            "lesson 04, sequential",
            "lesson",
            Launch::Lesson("lesson04-server", vec![]),
        ),
        candidate(
            "lesson06-echo",
            "lesson 06 step 1, thread per caller",
            "lesson",
            Launch::Lesson("lesson06-echo-server", vec![]),
        ),
        candidate(
            "py-threading",
            "Python ThreadingTCPServer",
            "python",
            Launch::Python(PY_THREADING),
        ),
    ];
    let load = echo::Spec {
        label: String::new(),
        addr: "127.0.0.1:0".parse()?,
        udp: false,
        framed: false,
        http: false,
        clients: settings.clients,
        size: settings.size,
        duration: Duration::from_secs_f64(settings.duration_s),
        messages: None,
        pid: None,
        progress: !settings.smoke,
    };
    eprintln!(
        "== TCP echo: {} clients, {}-byte messages, {} runs of {} s after a {} s warm-up",
        settings.clients, settings.size, settings.runs, settings.duration_s, settings.warmup_s
    );
    let all: Vec<&Candidate> = tcp.iter().collect();
    results.echo = measure_group(&runtime, &env, &all, &load, &settings);

    let [lesson05, lesson05_silent] = both_ways(candidate(
        "lesson05",
        "lesson 05, UDP",
        "lesson",
        Launch::Lesson("lesson05-server", vec![]),
    ));
    let [py_udp, py_udp_silent] = both_ways(candidate(
        "py-udp",
        "Python, UDP (lesson 05 twin)",
        "python",
        Launch::Python(PY_UDP),
    ));
    let udp = [lesson05, py_udp, lesson05_silent, py_udp_silent];
    eprintln!("== UDP echo, the same load");
    let udp_load = echo::Spec {
        udp: true,
        ..load.clone()
    };
    let all: Vec<&Candidate> = udp.iter().collect();
    results.udp = measure_group(&runtime, &env, &all, &udp_load, &settings);

    eprintln!("== framed echo (lesson 07): the same load, each message a frame");
    let [lesson07, lesson07_silent] = both_ways(candidate(
        "lesson07",
        "lesson 07, framed, thread per client",
        "lesson",
        Launch::Lesson("lesson07-server", vec![]),
    ));
    let [py_framed, py_framed_silent] = both_ways(candidate(
        "py-framed",
        "Python, framed (lesson 07 twin)",
        "python",
        Launch::Python(PY_FRAMED),
    ));
    let framed = [lesson07, py_framed, lesson07_silent, py_framed_silent];
    let framed_load = echo::Spec {
        framed: true,
        ..load.clone()
    };
    let all: Vec<&Candidate> = framed.iter().collect();
    results.framed = measure_group(&runtime, &env, &all, &framed_load, &settings);

    eprintln!("== web (lesson 09): GET / over a new connection per request, the same clients");
    let [lesson09, lesson09_silent] = both_ways(candidate(
        "lesson09",
        "lesson 09, thread per connection",
        "lesson",
        Launch::Lesson("lesson09-server", vec![]),
    ));
    let [py_http, py_http_silent] = both_ways(candidate(
        "py-http",
        "Python http.server (ThreadingHTTPServer)",
        "python",
        Launch::Python(PY_HTTP),
    ));
    let web = [
        candidate(
            "hyper",
            "hyper (tokio), the baseline",
            "baseline",
            Launch::Loadgen("serve-hyper"),
        ),
        lesson09,
        py_http,
        lesson09_silent,
        py_http_silent,
    ];
    let web_load = echo::Spec {
        http: true,
        ..load.clone()
    };
    let all: Vec<&Candidate> = web.iter().collect();
    results.web = measure_group(&runtime, &env, &all, &web_load, &settings);

    eprintln!(
        "== one hop (lesson 13's proxy, no fault): the raw stream and the tokio echo, straight and through it"
    );
    let hop = [
        candidate("raw", "raw loopback, no replies", "ceiling", Launch::Raw),
        candidate(
            "raw-proxy",
            "raw loopback through lesson 13's proxy",
            "lesson",
            Launch::RawThroughProxy,
        ),
        candidate(
            "tokio",
            "tokio echo",
            "baseline",
            Launch::Loadgen("serve-tokio"),
        ),
        candidate(
            "tokio-proxy",
            "tokio echo through lesson 13's proxy",
            "lesson",
            Launch::ThroughProxy("serve-tokio"),
        ),
    ];
    let all: Vec<&Candidate> = hop.iter().collect();
    results.hop = measure_group(&runtime, &env, &all, &load, &settings);

    eprintln!(
        "== sessions: {} clients start at once, each sends {} messages and hangs up (at most {} s)",
        settings.clients, settings.session_messages, settings.session_deadline_s
    );
    let session_load = echo::Spec {
        messages: Some(settings.session_messages),
        duration: Duration::from_secs_f64(settings.session_deadline_s),
        ..load.clone()
    };
    let session_settings = Settings {
        warmup_s: 0.0,
        ..settings.clone()
    };
    let some: Vec<&Candidate> = tcp
        .iter()
        .filter(|c| {
            [
                "tokio",
                "threads",
                "lesson03",
                "py-sequential",
                "py-threading",
            ]
            .contains(&c.key.as_str())
        })
        .collect();
    results.sessions = measure_group(&runtime, &env, &some, &session_load, &session_settings);

    eprintln!(
        "== chat fan-out: lesson 06, {} runs of {} lines per room size",
        settings.fanout_runs, settings.fanout_messages
    );
    for &k in &settings.fanout_clients {
        results
            .fanout
            .push(measure_fanout(&runtime, &env, k, &settings));
    }

    results.machine.load_after = load_average();
    results.took_s = Some(started.elapsed().as_secs_f64());
    results.targets = results.check_targets();
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    render::write_all(&results, &out)?;
    println!("{}", render::echo_table(&results.echo, &results));
    println!("{}", render::targets_table(&results));
    println!("results, tables and plots written to {}", out.display());
    let wrong: u64 = results
        .echo
        .iter()
        .chain(&results.udp)
        .chain(&results.framed)
        .chain(&results.web)
        .chain(&results.sessions)
        .chain(&results.hop)
        .filter_map(|e| e.summary.as_ref())
        .map(|s| s.wrong)
        .sum();
    anyhow::ensure!(wrong == 0, "{wrong} replies were wrong: see the tables");
    Ok(())
}

fn settings(args: &ReportArgs) -> Settings {
    let full = Settings {
        smoke: false,
        clients: 50,
        size: 64,
        duration_s: 3.0,
        warmup_s: 1.0,
        runs: 5,
        session_messages: 100,
        session_deadline_s: 20.0,
        fanout_clients: vec![10, 100, 500],
        fanout_messages: 200,
        fanout_runs: 5,
    };
    let mut s = if args.smoke {
        Settings {
            smoke: true,
            clients: 4,
            duration_s: 0.15,
            warmup_s: 0.0,
            runs: 1,
            session_messages: 20,
            session_deadline_s: 2.0,
            fanout_clients: vec![5],
            fanout_messages: 10,
            fanout_runs: 1,
            ..full
        }
    } else {
        full
    };
    if let Some(runs) = args.runs {
        s.runs = runs.max(1);
        s.fanout_runs = runs.max(1);
    }
    if let Some(d) = args.duration {
        s.duration_s = d.as_secs_f64();
    }
    s
}

/// One server of a group being measured: its process, its runs so far, and
/// why it dropped out, if it did.
struct Subject<'a> {
    c: &'a Candidate,
    server: Option<Server>,
    /// The server behind the proxy, for [`Launch::ThroughProxy`].
    upstream: Option<Server>,
    runs: Vec<RunStats>,
    failed: Option<String>,
}

/// Starts every candidate's server, warms each up, then measures them in
/// turns: run 1 of every server, then run 2 of every server, and so on.
/// Interleaving the runs spreads whatever else the machine is doing over all
/// the servers alike, instead of letting it fall on one of them.
fn measure_group(
    runtime: &tokio::runtime::Runtime,
    env: &Env,
    candidates: &[&Candidate],
    load: &echo::Spec,
    settings: &Settings,
) -> Vec<Entry> {
    let mut subjects: Vec<Subject> = candidates
        .iter()
        .map(|&c| {
            let mut subject = Subject {
                c,
                server: None,
                upstream: None,
                runs: Vec::new(),
                failed: None,
            };
            if let Launch::ThroughProxy(sub) = c.launch {
                match start_proxied(env, sub) {
                    Ok((proxy, upstream)) => {
                        subject.server = Some(proxy);
                        subject.upstream = Some(upstream);
                    }
                    Err(why) => subject.failed = Some(why),
                }
            } else if !matches!(c.launch, Launch::Raw | Launch::RawThroughProxy) {
                let started = env.command(&c.launch).and_then(|(program, args)| {
                    match c.log {
                        Log::DevNull => procs::start_silent(&program, &args, load.udp),
                        _ => procs::start(&program, &args),
                    }
                    .map_err(|e| format!("{e:#}"))
                });
                match started {
                    Ok(server) => subject.server = Some(server),
                    Err(why) => subject.failed = Some(why),
                }
            }
            subject
        })
        .collect();
    let warmup = Duration::from_secs_f64(settings.warmup_s);
    if !warmup.is_zero() {
        for subject in subjects.iter_mut().filter(|s| s.failed.is_none()) {
            if let Err(why) = one_run(runtime, env, subject, load, Some(warmup)) {
                subject.failed = Some(why);
            }
        }
    }
    for run in 1..=settings.runs {
        if !settings.smoke {
            eprintln!("   run {run} of {}", settings.runs);
        }
        for subject in subjects.iter_mut().filter(|s| s.failed.is_none()) {
            match one_run(runtime, env, subject, load, None) {
                Ok(stats) => subject.runs.push(stats),
                Err(why) => subject.failed = Some(why),
            }
        }
    }
    subjects.into_iter().map(entry).collect()
}

/// Lesson 13's proxy, with no fault, in front of `to`.
fn start_proxy(env: &Env, to: std::net::SocketAddr) -> Result<Server, String> {
    let (program, mut args) = env.command(&Launch::Lesson(PROXY, vec![]))?;
    args.extend(["--to".into(), to.to_string().into()]);
    procs::start(&program, &args).map_err(|e| format!("{e:#}"))
}

/// This binary's server `sub`, and lesson 13's proxy in front of it.
fn start_proxied(env: &Env, sub: &'static str) -> Result<(Server, Server), String> {
    let (program, args) = env.command(&Launch::Loadgen(sub))?;
    let upstream = procs::start(&program, &args).map_err(|e| format!("{e:#}"))?;
    let proxy = start_proxy(env, upstream.addr)?;
    Ok((proxy, upstream))
}

/// One run (or, with `warmup`, the warm-up) of one server.
fn one_run(
    runtime: &tokio::runtime::Runtime,
    env: &Env,
    subject: &Subject,
    load: &echo::Spec,
    warmup: Option<Duration>,
) -> Result<RunStats, String> {
    let Some(server) = &subject.server else {
        // The raw loopback stream needs no server; through the proxy, it
        // gets a fresh proxy in front of its reader.
        let length = warmup.unwrap_or(load.duration);
        let stats = match subject.c.launch {
            Launch::RawThroughProxy => raw::stream_through(load.size, length, |reader| {
                let proxy = start_proxy(env, reader).map_err(anyhow::Error::msg)?;
                Ok((proxy.addr, proxy))
            }),
            _ => raw::stream(load.size, length),
        };
        return stats.map_err(|e| format!("{e:#}"));
    };
    let mut spec = echo::Spec {
        label: subject.c.label.to_string(),
        addr: server.addr,
        pid: Some(server.pid()),
        ..load.clone()
    };
    if let Some(length) = warmup {
        spec.duration = length;
        spec.messages = None;
        spec.progress = false;
    }
    runtime
        .block_on(echo::run(&spec))
        .map_err(|e| format!("{e:#}"))
}

/// The entry for the tables; stops the subject's server.
fn entry(subject: Subject) -> Entry {
    let c = subject.c;
    let mut entry = Entry {
        key: c.key.clone(),
        label: c.label.into(),
        kind: c.kind.into(),
        log: Some(c.log),
        ..Entry::default()
    };
    let label = match c.log {
        Log::DevNull => format!("{}, log to /dev/null", c.label),
        _ => c.label.to_string(),
    };
    if let Some(why) = subject.failed {
        eprintln!("   {label:<38} not measured: {why}");
        entry.missing = Some(why);
        return entry;
    }
    entry.summary = Summary::of(&subject.runs);
    entry.runs = subject.runs;
    if let Some(s) = &entry.summary {
        eprintln!(
            "   {:<38} {:>9} msgs/s  p99 {:>8}  served {}/{}{}",
            label,
            render::thousands(s.msgs_per_s),
            render::micros(s.p99_us),
            s.served,
            s.clients,
            s.first_error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
    }
    entry
}

/// Lesson 06's room with `k` clients: a fresh server for every run, so the
/// memory figure is that of one room of `k`.
fn measure_fanout(
    runtime: &tokio::runtime::Runtime,
    env: &Env,
    k: usize,
    settings: &Settings,
) -> FanoutEntry {
    let mut entry = FanoutEntry {
        label: format!("lesson 06, {k} clients"),
        clients: k,
        ..FanoutEntry::default()
    };
    let max_clients = (k + 100).to_string();
    let launch = Launch::Lesson("lesson06-server", vec!["--max-clients"]);
    let result = (|| -> Result<Vec<fanout::FanoutStats>, String> {
        let (program, mut args) = env.command(&launch)?;
        args.push(max_clients.clone().into());
        let mut runs = Vec::new();
        for _ in 0..settings.fanout_runs {
            let server = procs::start(&program, &args).map_err(|e| format!("{e:#}"))?;
            let spec = fanout::Spec {
                addr: server.addr,
                clients: k,
                messages: settings.fanout_messages,
                pid: Some(server.pid()),
                progress: !settings.smoke && k >= 100,
            };
            runs.push(
                runtime
                    .block_on(fanout::run(&spec))
                    .map_err(|e| format!("{e:#}"))?,
            );
            drop(server);
        }
        Ok(runs)
    })();
    match result {
        Ok(runs) => {
            entry.summary = FanoutSummary::of(&runs);
            entry.runs = runs;
            if let Some(s) = &entry.summary {
                eprintln!(
                    "   {:<38} p50 {:>8}  p99 {:>8}  RSS {}  threads {}",
                    entry.label,
                    render::micros(s.p50_us),
                    render::micros(s.p99_us),
                    render::rss(s.server_rss_kb),
                    s.server_threads.map_or("?".into(), |t| t.to_string())
                );
            }
        }
        Err(why) => {
            eprintln!("   {:<38} not measured: {why}", entry.label);
            entry.missing = Some(why);
        }
    }
    entry
}

/// The 1, 5 and 15 minute load averages, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    }
}

/// Times `cargo build --release -p loadgen` into an empty target folder: the
/// "release build from clean" target. The crates themselves are not
/// downloaded again (cargo keeps them in its own cache).
fn time_clean_build() -> BuildTime {
    let target = std::env::temp_dir().join(format!("loadgen-clean-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&target);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = procs::workspace_dir().join("Cargo.toml");
    eprintln!(
        "== timing a clean release build of loadgen (CARGO_TARGET_DIR={})",
        target.display()
    );
    let start = Instant::now();
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "loadgen",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&target);
    let ok = status.is_ok_and(|s| s.success());
    eprintln!("   {seconds:.1} s{}", if ok { "" } else { " (FAILED)" });
    BuildTime {
        command: "CARGO_TARGET_DIR=<empty folder> cargo build --release -p loadgen".into(),
        seconds,
        ok,
    }
}

fn machine(python: Option<String>, load_before: String) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, name)| name.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!("Linux {}", k.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_string());
    let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let here = crate::provenance::Provenance::now();
    Machine {
        commit: here.commit,
        dirty: here.dirty,
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: (memory_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        os: kernel,
        rustc,
        python,
        date: today(),
        load_before,
        load_after: String::new(),
        profile: profile().into(),
    }
}

/// Today's UTC date as YYYY-MM-DD (Howard Hinnant's civil-from-days).
pub fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
