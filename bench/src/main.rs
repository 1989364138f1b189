//! `loadgen`: the load generator behind the book's "How fast is it?" appendix.
//!
//! It drives any lesson's echo server (TCP or UDP) or lesson 06's chat room
//! with many clients at once, checks every reply, and reports messages per
//! second, MB/s and latency percentiles. It also carries the baseline servers
//! the lessons are compared with (a tokio echo server, a thread-per-connection
//! echo server, the raw loopback ceiling), and `report` runs the whole
//! benchmark and regenerates the chapter's tables and plots (`files` measures
//! lesson 08's file transfer on its own):
//!
//! ```text
//! cargo run --release -p loadgen -- report
//! ```
//!
//! All traffic goes to 127.0.0.1; every run is bounded in time and stops by
//! itself.

mod c10k;
mod echo;
mod fanout;
mod files;
mod notes;
mod procs;
mod provenance;
mod raw;
mod render;
mod report;
mod results;
mod serve;
mod stats;
#[cfg(unix)]
mod unix;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// Load generator and baseline servers for socket-lessons. `loadgen report`
/// reruns the whole benchmark and rewrites the book's tables and plots.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drive a running echo server: C clients, S-byte messages, for D seconds or N messages each
    Run(RunArgs),
    /// Drive a running lesson 06 chat server: K clients in the room, one sender
    Fanout(FanoutArgs),
    /// The raw loopback ceiling: one socket streams S-byte writes to another, no replies
    Raw {
        /// Bytes per write
        #[arg(short, long, default_value_t = 64)]
        size: usize,
        /// How long to stream: 3s, 500ms, 1m
        #[arg(short, long, default_value = "3s", value_parser = parse_duration)]
        duration: Duration,
    },
    /// Run the whole benchmark and rewrite the chapter's tables and plots
    Report(ReportArgs),
    /// Lesson 08: one file up and down through lesson08-server, its Python twin and raw loopback
    Files {
        /// The file's size in MiB
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
        size_mib: u64,
        /// Where to write files.json and files.md (default: the book's perf/ folder)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Redraw files.md from the files.json in the output folder, without measuring
        #[arg(long)]
        redraw: bool,
    },
    /// Lesson 12: the same echo server over a Unix domain socket and over TCP loopback, in turns
    Unix {
        /// Measured runs per transport and load (the median is reported)
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
        runs: u64,
        /// Length of one measured run (3, 3s, 500ms)
        #[arg(long, default_value = "3s", value_parser = parse_duration)]
        duration: Duration,
        /// Where to write unix.json and unix.md (default: the book's perf/ folder)
        #[arg(long)]
        out: Option<PathBuf>,
        /// Redraw unix.md from the unix.json in the output folder, without measuring
        #[arg(long)]
        redraw: bool,
    },
    /// C10K: one chat room grown to 100, 1,000, 5,000 and 10,000 members, on lessons 06, 10, 11 and the Python twins
    C10k(C10kArgs),
    /// Redraw the tables and plots from a results file, without measuring
    Plot {
        /// The results file `report` wrote
        #[arg(default_value_os_t = report::default_out_dir().join("results.json"))]
        results: PathBuf,
        /// Where to write results.md, the other tables and the SVG plots
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Baseline: a tokio echo server (the practical ceiling for Rust)
    ServeTokio {
        /// Address to listen on (port 0 lets the system pick)
        #[arg(default_value = "127.0.0.1:9101", value_parser = shared::parse_addr)]
        addr: String,
    },
    /// Baseline: hyper, serving lesson 09's page at / (for the web benchmark)
    ServeHyper {
        /// Address to listen on (port 0 lets the system pick)
        #[arg(default_value = "127.0.0.1:9103", value_parser = shared::parse_addr)]
        addr: String,
    },
    /// Baseline: a thread-per-connection echo server, in the style of lesson 06
    ServeThreads {
        /// Address to listen on (port 0 lets the system pick)
        #[arg(default_value = "127.0.0.1:9102", value_parser = shared::parse_addr)]
        addr: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The server's address, e.g. 127.0.0.1:9003 (loopback only)
    #[arg(value_parser = parse_loopback)]
    addr: SocketAddr,
    /// Talk UDP (one datagram per message, as lesson 05) instead of TCP
    #[arg(long)]
    udp: bool,
    /// Send each message as a frame, a 4-byte big-endian length first (lesson 07)
    #[arg(long, conflicts_with = "udp")]
    framed: bool,
    /// Fetch GET / over a new connection each time (lesson 09) instead of echoing
    #[arg(long, conflicts_with_all = ["udp", "framed"])]
    http: bool,
    /// Concurrent clients
    #[arg(short, long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    clients: u32,
    /// Bytes per message
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    size: u32,
    /// How long to run (3s, 500ms, 1m); with --messages, the longest it may take
    #[arg(short, long, default_value = "3s", value_parser = parse_duration)]
    duration: Duration,
    /// Messages per client; each client hangs up after its last reply
    #[arg(short = 'n', long)]
    messages: Option<u64>,
    /// A warm-up run of this length first, not counted
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// The server's process id, to report its CPU time, memory and thread count
    #[arg(long)]
    pid: Option<u32>,
    /// Write the results as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct FanoutArgs {
    /// The chat server's address, e.g. 127.0.0.1:9006 (loopback only)
    #[arg(value_parser = parse_loopback)]
    addr: SocketAddr,
    /// Clients in the room (one of them sends)
    #[arg(short = 'k', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    clients: u32,
    /// Lines the sender sends, one at a time
    #[arg(short = 'n', long, default_value_t = 200)]
    messages: u64,
    /// The server's process id, to report its memory and thread count
    #[arg(long)]
    pid: Option<u32>,
    /// Write the results as JSON to this file
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct C10kArgs {
    /// The room sizes, separated by commas, from 2 to 10,000 [default: 100,1000,5000,10000]
    #[arg(long, value_delimiter = ',', hide_default_value = true, default_values_t = [100, 1_000, 5_000, 10_000],
          value_parser = clap::value_parser!(u32).range(2..=10_000))]
    rooms: Vec<u32>,
    /// Lines one member sends to all the others at each size
    #[arg(short = 'n', long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    messages: u64,
    /// Deliveries to time at each size, at least: smaller rooms get more lines
    #[arg(long, default_value_t = 100_000)]
    deliveries: u64,
    /// The longest one server may take to fill its room to the largest size (600s, 10m)
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    budget: Duration,
    /// Measure only these servers, separated by commas (lesson10,lesson11); the five are lesson06, lesson10, lesson11, python10 and python11
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where to write c10k.json, c10k.md, c10k-ladder.md, c10k-notes.md and the plot c10k-memory.svg (and -narrow.svg) (default: the book's perf/ folder)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Redraw c10k.md, c10k-ladder.md, c10k-notes.md and the plot from the c10k.json in the output folder, without measuring
    #[arg(long)]
    redraw: bool,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// A tiny setting (well under a second per scenario) to check that everything works; figures mean nothing
    #[arg(long)]
    smoke: bool,
    /// Where to write results.json, the tables and the plots (default: the book's perf/ folder; with --smoke, a temporary folder)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Measured runs per scenario (the median is reported)
    #[arg(long)]
    runs: Option<usize>,
    /// Length of one measured run (3s, 500ms)
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Skip timing a clean release build of loadgen (it takes about a minute)
    #[arg(long)]
    no_build_time: bool,
}

fn main() -> ExitCode {
    let cli: Cli = shared::parse_args();
    shared::exit_status(dispatch(cli.command))
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run(args),
        Command::Fanout(args) => run_fanout(args),
        Command::Raw { size, duration } => {
            let stats = raw::stream(size, duration)?;
            println!(
                "raw loopback: {} writes of {size} bytes in {:.2} s: {} writes/s, {:.1} MB/s",
                stats.messages,
                stats.seconds,
                render::thousands(stats.msgs_per_s),
                stats.mb_per_s
            );
            Ok(())
        }
        Command::Report(args) => report::report(&args),
        Command::Files {
            size_mib,
            out,
            redraw,
        } => {
            let dir = out.unwrap_or_else(report::default_out_dir);
            if redraw {
                let json = dir.join("files.json");
                if !json.exists() {
                    return unmeasured(&dir, "files", "lesson 08's file transfer");
                }
                let data: files::Report = read_json(&json)?;
                return files::redraw(&data, &dir);
            }
            let data = files::run(size_mib as usize, true)?;
            files::write(&data, &dir)?;
            print!("{}", files::markdown(&data));
            eprintln!("wrote files.json and files.md in {}", dir.display());
            Ok(())
        }
        Command::Unix {
            runs,
            duration,
            out,
            redraw,
        } => run_unix(runs as usize, duration, out, redraw),
        Command::C10k(args) => run_c10k(args),
        Command::Plot { results, out } => {
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("reading {}", results.display()))?;
            let results_data: results::Results = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a results file", results.display()))?;
            let dir = match out {
                Some(dir) => dir,
                None => results
                    .parent()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(".")),
            };
            render::write_all(&results_data, &dir)
        }
        Command::ServeTokio { addr } => serve::tokio_echo(&addr),
        Command::ServeThreads { addr } => serve::thread_echo(&addr),
        Command::ServeHyper { addr } => serve::hyper_page(&addr),
    }
}

/// `loadgen run`: one load run against a server somebody else started.
fn run(args: RunArgs) -> anyhow::Result<()> {
    let spec = echo::Spec {
        label: format!("{} {}", if args.udp { "udp" } else { "tcp" }, args.addr),
        addr: args.addr,
        udp: args.udp,
        framed: args.framed,
        http: args.http,
        clients: args.clients as usize,
        size: args.size as usize,
        duration: args.duration,
        messages: args.messages,
        pid: args.pid,
        progress: true,
    };
    let runtime = echo::runtime()?;
    if !args.warmup.is_zero() {
        let warm = echo::Spec {
            duration: args.warmup,
            messages: None,
            label: format!("{} (warm-up)", spec.label),
            ..spec.clone()
        };
        runtime.block_on(echo::run(&warm))?;
    }
    let stats = runtime.block_on(echo::run(&spec))?;
    println!("{}", render::run_summary(&stats));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&stats)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if stats.wrong > 0 || stats.broken > 0 {
        bail!(
            "{} wrong replies, {} connections broken: {}",
            stats.wrong,
            stats.broken,
            stats.first_error.as_deref().unwrap_or("no detail")
        );
    }
    Ok(())
}

/// `loadgen fanout`: one chat fan-out run against a running lesson 06 server.
fn run_fanout(args: FanoutArgs) -> anyhow::Result<()> {
    let runtime = echo::runtime()?;
    let stats = runtime.block_on(fanout::run(&fanout::Spec {
        addr: args.addr,
        clients: args.clients as usize,
        messages: args.messages,
        pid: args.pid,
        progress: true,
    }))?;
    println!("{}", render::fanout_summary(&stats));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&stats)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(err) = &stats.first_error {
        bail!("{err}");
    }
    Ok(())
}

/// With no results file to redraw from, `NAME.md` says that nothing was
/// measured yet, and how to measure it.
fn unmeasured(dir: &std::path::Path, name: &str, what: &str) -> anyhow::Result<()> {
    let path = dir.join(format!("{name}.md"));
    let text = format!(
        "<!-- generated by `cargo run --release -p loadgen -- {name}`; do not edit -->\n\n\
         Not measured yet: there is no `{name}.json` beside this file. \
         `cargo run --release -p loadgen -- {name}` measures {what} and writes both.\n"
    );
    eprintln!("no {name}.json in {}: {name}.md says so", dir.display());
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// A results file that a measuring command wrote.
fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a results file", path.display()))
}

/// `loadgen unix`: lesson 12's echo over a Unix socket beside TCP loopback.
#[cfg(unix)]
fn run_unix(
    runs: usize,
    duration: Duration,
    out: Option<PathBuf>,
    redraw: bool,
) -> anyhow::Result<()> {
    let dir = out.unwrap_or_else(report::default_out_dir);
    if redraw {
        let json = dir.join("unix.json");
        if !json.exists() {
            return unmeasured(&dir, "unix", "lesson 12's Unix socket beside TCP");
        }
        let data: unix::Report = read_json(&json)?;
        return unix::redraw(&data, &dir);
    }
    let data = unix::run(runs, duration, true)?;
    unix::write(&data, &dir)?;
    print!("{}", unix::markdown(&data));
    eprintln!("wrote unix.json and unix.md in {}", dir.display());
    Ok(())
}

/// Where std has no Unix domain sockets there is nothing to compare.
#[cfg(not(unix))]
fn run_unix(
    _runs: usize,
    _duration: Duration,
    _out: Option<PathBuf>,
    _redraw: bool,
) -> anyhow::Result<()> {
    bail!("loadgen unix needs Unix domain sockets, which this system's std does not have")
}

/// `loadgen c10k`: the chat rooms at scale, or their table redrawn.
fn run_c10k(args: C10kArgs) -> anyhow::Result<()> {
    let dir = args.out.unwrap_or_else(report::default_out_dir);
    if args.redraw {
        let path = dir.join("c10k.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let data: c10k::Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a c10k results file", path.display()))?;
        return c10k::redraw(&data, &dir);
    }
    let known = c10k::keys();
    if let Some(bad) = args.only.iter().find(|k| !known.contains(&k.as_str())) {
        bail!(
            "--only {bad}: no such server; choose from {}",
            known.join(", ")
        );
    }
    let mut rooms: Vec<usize> = args.rooms.iter().map(|&n| n as usize).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let spec = c10k::Spec {
        rooms,
        messages: args.messages,
        deliveries: args.deliveries,
        budget_s: args.budget.as_secs_f64(),
    };
    let data = c10k::run(&spec, &args.only, true)?;
    c10k::write(&data, &dir)?;
    print!("{}", c10k::markdown(&data));
    eprintln!(
        "wrote c10k.json, c10k.md, c10k-ladder.md, c10k-notes.md, c10k-memory.svg and c10k-memory-narrow.svg in {}",
        dir.display()
    );
    Ok(())
}

/// A length of time as humantime writes it (`3s`, `500ms`, `1m 30s`), at
/// most an hour.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: String| format!("expected a time like 3s, 500ms or 1m, got {text:?} ({why})");
    let duration = humantime::parse_duration(text).map_err(|err| bad(err.to_string()))?;
    if duration > Duration::from_secs(3600) {
        return Err(bad("more than an hour".to_string()));
    }
    Ok(duration)
}

/// The load generator sends only to this machine: the address must be loopback.
fn parse_loopback(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("expected IP:PORT, e.g. 127.0.0.1:9003, got {text:?}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr} is not a loopback address: loadgen only loads servers on this machine (127.0.0.1 or [::1])"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_humantime_writes_them() {
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2s 500ms"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("2h").is_err());
    }

    #[test]
    fn only_loopback_is_a_target() {
        assert!(parse_loopback("127.0.0.1:9003").is_ok());
        assert!(parse_loopback("[::1]:9003").is_ok());
        assert!(parse_loopback("10.0.0.1:9003").is_err());
        assert!(parse_loopback("localhost:9003").is_err());
    }
}
