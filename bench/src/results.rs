//! The results file: everything one `report` measured, written as JSON.
//! The tables and plots are drawn from it alone, so `loadgen plot` can
//! redraw them without measuring again.

use serde::{Deserialize, Serialize};

use crate::echo::RunStats;
use crate::fanout::FanoutStats;
use crate::stats::{median, median_u64};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub settings: Settings,
    /// TCP echo: C clients, S-byte messages, for D seconds.
    pub echo: Vec<Entry>,
    /// UDP echo, the same load.
    pub udp: Vec<Entry>,
    /// Lesson 07's framed echo, the same load with a length before every
    /// message, beside the plain echo servers of the same run.
    #[serde(default)]
    pub framed: Vec<Entry>,
    /// Lesson 09's web server: `GET /`, a new connection per request, beside
    /// hyper and Python's http.server.
    #[serde(default)]
    pub web: Vec<Entry>,
    /// C clients that each send N messages and hang up, all starting at once.
    pub sessions: Vec<Entry>,
    /// Lesson 13's proxy with no fault: the raw stream and the tokio echo,
    /// each straight and through one hop of the proxy.
    #[serde(default)]
    pub hop: Vec<Entry>,
    /// Lesson 06's chat room, one line to everybody.
    pub fanout: Vec<FanoutEntry>,
    pub build: Option<BuildTime>,
    pub targets: Vec<TargetCheck>,
    /// How long the whole run took, in seconds (absent in older files).
    #[serde(default)]
    pub took_s: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub rustc: String,
    pub python: Option<String>,
    /// UTC date of the run, YYYY-MM-DD.
    pub date: String,
    /// The 1, 5 and 15 minute load averages just before and just after the
    /// run: other work on the machine competes for the same cores.
    pub load_before: String,
    #[serde(default)]
    pub load_after: String,
    /// Cargo profile of the load generator and the lesson servers.
    pub profile: String,
    /// The commit the sources were at, and whether the work tree had
    /// changes not committed (absent in older results files).
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub dirty: bool,
}

impl Machine {
    /// Which run this was, as the other figure files record it.
    pub fn provenance(&self) -> crate::provenance::Provenance {
        crate::provenance::Provenance {
            date: self.date.clone(),
            machine: format!(
                "{} ({} cores), {} GiB of memory, {}",
                self.cpu, self.cores, self.memory_gib, self.os
            ),
            commit: self.commit.clone(),
            dirty: self.dirty,
            load_before: self.load_before.clone(),
            profile: self.profile.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    pub smoke: bool,
    pub clients: usize,
    pub size: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub runs: usize,
    pub session_messages: u64,
    pub session_deadline_s: f64,
    pub fanout_clients: Vec<usize>,
    pub fanout_messages: u64,
    pub fanout_runs: usize,
}

/// One server measured under one kind of load.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Entry {
    /// Short stable name: `tokio`, `threads`, `lesson03`, `py-threading`...
    pub key: String,
    /// What the tables call it.
    pub label: String,
    /// `ceiling`, `baseline`, `lesson` or `python`.
    pub kind: String,
    /// Why it was not measured (a Python twin not written yet, a failed build).
    pub missing: Option<String>,
    /// Where the server's log went; absent in results written before
    /// loadgen recorded it (see [`Entry::log`]).
    #[serde(default)]
    pub log: Option<Log>,
    pub runs: Vec<RunStats>,
    pub summary: Option<Summary>,
}

/// Where a server's log lines went while it was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Log {
    /// It logs nothing per message (the baselines, the raw stream).
    None,
    /// Into a pipe that loadgen reads, each line written as it is printed:
    /// a Rust server's `println!`, and a Python twin as at a terminal.
    Lines,
    /// Into a pipe, gathered in blocks: a Python twin's `print` into a pipe
    /// when nothing asks it for lines (how earlier versions of loadgen ran
    /// the twins).
    Blocks,
    /// To `/dev/null`, by the system: written, and thrown away at once.
    DevNull,
}

impl Log {
    /// What the tables' "log" column says.
    pub fn short(self) -> &'static str {
        match self {
            Log::None => "none",
            Log::Lines => "pipe, by line",
            Log::Blocks => "pipe, in blocks",
            Log::DevNull => "/dev/null",
        }
    }
}

impl Entry {
    /// Where this server's log went. Results written before loadgen
    /// recorded it ran the lessons into a pipe line by line, lesson 03 once
    /// more with its output to `/dev/null`, and the Python twins into a
    /// pipe in blocks (http.server logs to stderr, which Python writes line
    /// by line anyway).
    pub fn log(&self) -> Log {
        if let Some(log) = self.log {
            return log;
        }
        match (self.kind.as_str(), self.key.as_str()) {
            (_, key) if key.ends_with("-silent") => Log::DevNull,
            ("ceiling" | "baseline", _) | (_, "py-threading") => Log::None,
            (_, "py-http") => Log::Lines,
            ("python", _) => Log::Blocks,
            _ => Log::Lines,
        }
    }
}

/// The median of each figure over the measured runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub msgs_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub clients: usize,
    pub served: usize,
    pub finished: usize,
    pub never_connected: usize,
    pub lost: u64,
    /// Totals over all runs: these must be zero.
    pub wrong: u64,
    pub broken: usize,
    pub first_error: Option<String>,
    /// Sessions: the median client's wait for its first reply, the last
    /// served client's wait, and the time until every client was done.
    pub first_reply_median_ms: Option<f64>,
    pub first_reply_last_ms: Option<f64>,
    pub all_done_ms: Option<f64>,
    /// Largest over all runs.
    pub server_rss_kb: Option<u64>,
    pub server_threads: Option<u64>,
    /// Server CPU time per reply, in microseconds: in the program itself
    /// and in the kernel. Then the share of one core the server and the load
    /// generator used.
    pub server_user_us_per_msg: Option<f64>,
    pub server_system_us_per_msg: Option<f64>,
    pub server_cores: Option<f64>,
    pub loadgen_cores: Option<f64>,
}

impl Summary {
    pub fn of(runs: &[RunStats]) -> Option<Summary> {
        if runs.is_empty() {
            return None;
        }
        let med = |f: &dyn Fn(&RunStats) -> f64| median(runs.iter().map(f)).unwrap_or(0.0);
        let med_u = |f: &dyn Fn(&RunStats) -> u64| median_u64(runs.iter().map(f)).unwrap_or(0);
        let med_opt = |f: &dyn Fn(&RunStats) -> Option<u64>| median_u64(runs.iter().filter_map(f));
        let med_ms = |f: &dyn Fn(&RunStats) -> Option<f64>| median(runs.iter().filter_map(f));
        Some(Summary {
            msgs_per_s: med(&|r| r.msgs_per_s),
            mb_per_s: med(&|r| r.mb_per_s),
            p50_us: med_opt(&|r| r.latency.map(|l| l.p50_us)),
            p99_us: med_opt(&|r| r.latency.map(|l| l.p99_us)),
            max_us: med_opt(&|r| r.latency.map(|l| l.max_us)),
            clients: runs[0].clients,
            served: med_u(&|r| r.served as u64) as usize,
            finished: med_u(&|r| r.finished as u64) as usize,
            never_connected: med_u(&|r| r.never_connected as u64) as usize,
            lost: med_u(&|r| r.lost),
            wrong: runs.iter().map(|r| r.wrong).sum(),
            broken: runs.iter().map(|r| r.broken).sum(),
            first_error: runs.iter().find_map(|r| r.first_error.clone()),
            first_reply_median_ms: med_ms(&|r| middle(&r.first_reply_ms)),
            first_reply_last_ms: med_ms(&|r| last(&r.first_reply_ms)),
            all_done_ms: med_ms(&|r| all_done(&r.done_ms)),
            server_rss_kb: runs.iter().filter_map(|r| r.server_rss_kb).max(),
            server_threads: runs.iter().filter_map(|r| r.server_threads).max(),
            server_user_us_per_msg: median(runs.iter().filter_map(|r| {
                let cpu = r.server_user_s?;
                (r.messages > 0).then(|| cpu * 1e6 / r.messages as f64)
            })),
            server_system_us_per_msg: median(runs.iter().filter_map(|r| {
                let cpu = r.server_system_s?;
                (r.messages > 0).then(|| cpu * 1e6 / r.messages as f64)
            })),
            server_cores: median(
                runs.iter()
                    .filter_map(|r| Some((r.server_user_s? + r.server_system_s?) / r.seconds)),
            ),
            loadgen_cores: median(
                runs.iter()
                    .filter_map(|r| Some(r.loadgen_cpu_s? / r.seconds)),
            ),
        })
    }
}

/// The median client's time (the list is sorted, never-served clients last
/// and counted as "not yet").
fn middle(sorted: &[Option<f64>]) -> Option<f64> {
    sorted
        .get(sorted.len().checked_sub(1)? / 2)
        .copied()
        .flatten()
}

/// The last served client's time.
fn last(sorted: &[Option<f64>]) -> Option<f64> {
    sorted.iter().rev().find_map(|t| *t)
}

/// When the last client was done, if all of them were.
fn all_done(sorted: &[Option<f64>]) -> Option<f64> {
    if sorted.iter().all(Option::is_some) {
        last(sorted)
    } else {
        None
    }
}

/// One room size of the chat fan-out.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FanoutEntry {
    pub label: String,
    pub clients: usize,
    pub missing: Option<String>,
    pub runs: Vec<FanoutStats>,
    pub summary: Option<FanoutSummary>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FanoutSummary {
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub join_ms: f64,
    /// Totals over all runs: should be zero.
    pub missing: u64,
    pub first_error: Option<String>,
    pub server_rss_kb: Option<u64>,
    pub server_threads: Option<u64>,
}

impl FanoutSummary {
    pub fn of(runs: &[FanoutStats]) -> Option<FanoutSummary> {
        if runs.is_empty() {
            return None;
        }
        Some(FanoutSummary {
            p50_us: median_u64(runs.iter().filter_map(|r| r.latency.map(|l| l.p50_us))),
            p99_us: median_u64(runs.iter().filter_map(|r| r.latency.map(|l| l.p99_us))),
            max_us: median_u64(runs.iter().filter_map(|r| r.latency.map(|l| l.max_us))),
            join_ms: median(runs.iter().map(|r| r.join_ms)).unwrap_or(0.0),
            missing: runs.iter().map(|r| r.missing).sum(),
            first_error: runs.iter().find_map(|r| r.first_error.clone()),
            server_rss_kb: runs.iter().filter_map(|r| r.server_rss_kb).max(),
            server_threads: runs.iter().filter_map(|r| r.server_threads).max(),
        })
    }
}

/// The release build of the load generator, from an empty target folder.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildTime {
    pub command: String,
    pub seconds: f64,
    pub ok: bool,
}

/// One of the course's own performance targets, checked against this run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetCheck {
    pub target: String,
    pub wanted: String,
    pub measured: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
}

impl Results {
    /// Nothing when entries `a` and `b` of `group` sent their logs to the
    /// same place; otherwise a note that says how they differ.
    fn unlike(&self, group: &[Entry], a: &str, b: &str) -> String {
        let log = |key: &str| group.iter().find(|e| e.key == key).map(Entry::log);
        match (log(a), log(b)) {
            (Some(x), Some(y)) if x != y => {
                format!(
                    " (not like with like: logs {} and {})",
                    x.short(),
                    y.short()
                )
            }
            _ => String::new(),
        }
    }

    pub fn echo_entry(&self, key: &str) -> Option<&Summary> {
        self.echo
            .iter()
            .find(|e| e.key == key)
            .and_then(|e| e.summary.as_ref())
    }

    /// Checks the course's targets against the figures.
    pub fn check_targets(&self) -> Vec<TargetCheck> {
        let mut checks = Vec::new();
        let setting = format!(
            "{} clients, {}-byte messages",
            self.settings.clients, self.settings.size
        );
        let threads = self.echo_entry("threads").map(|s| s.msgs_per_s);
        let python = self.echo_entry("py-threading").map(|s| s.msgs_per_s);
        let tokio = self.echo_entry("tokio").map(|s| s.msgs_per_s);
        checks.push(match (threads, python) {
            (Some(t), Some(p)) if p > 0.0 => TargetCheck {
                target: format!(
                    "thread-per-connection echo vs Python ThreadingTCPServer, {setting}"
                ),
                wanted: "at least 20x the messages/s".into(),
                measured: format!(
                    "{:.1}x ({} vs {} msgs/s){}",
                    t / p,
                    fmt_rate(t),
                    fmt_rate(p),
                    self.unlike(&self.echo, "threads", "py-threading")
                ),
                met: Some(t / p >= 20.0),
            },
            _ => not_run(
                "thread-per-connection echo vs Python ThreadingTCPServer",
                "at least 20x the messages/s",
            ),
        });
        checks.push(match (threads, tokio) {
            (Some(t), Some(k)) if t > 0.0 => TargetCheck {
                target: format!("thread-per-connection echo vs tokio echo, {setting}"),
                wanted: "within 2x of tokio".into(),
                measured: format!(
                    "tokio is {:.2}x the threads' messages/s ({} vs {})",
                    k / t,
                    fmt_rate(k),
                    fmt_rate(t)
                ),
                met: Some(k / t <= 2.0),
            },
            _ => not_run(
                "thread-per-connection echo vs tokio echo",
                "within 2x of tokio",
            ),
        });
        let biggest = self
            .fanout
            .iter()
            .filter(|f| f.summary.is_some())
            .max_by_key(|f| f.clients);
        let wanted_p99 = "p99 under 50 ms";
        let wanted_rss = "under 100 MB";
        match biggest.and_then(|f| f.summary.as_ref().map(|s| (f.clients, s))) {
            Some((k, s)) => {
                let p99 = s.p99_us.map(|us| us as f64 / 1000.0);
                checks.push(TargetCheck {
                    target: format!("chat fan-out to {k} clients: delivery latency"),
                    wanted: wanted_p99.into(),
                    measured: p99.map_or("no deliveries".into(), |ms| format!("p99 {ms:.1} ms")),
                    met: p99.map(|ms| ms < 50.0 && s.missing == 0),
                });
                let mb = s.server_rss_kb.map(|kb| kb as f64 * 1024.0 / 1e6);
                checks.push(TargetCheck {
                    target: format!("chat fan-out to {k} clients: server resident memory"),
                    wanted: wanted_rss.into(),
                    measured: mb.map_or("not sampled".into(), |mb| {
                        format!(
                            "{mb:.1} MB, {} threads",
                            s.server_threads.map_or("?".into(), |t| t.to_string())
                        )
                    }),
                    met: mb.map(|mb| mb < 100.0),
                });
            }
            None => {
                checks.push(not_run("chat fan-out: delivery latency", wanted_p99));
                checks.push(not_run("chat fan-out: server resident memory", wanted_rss));
            }
        }
        // Lesson 09: requests per second against Python's http.server and
        // against hyper, 50 clients, a new connection per request.
        let web = |key: &str| {
            self.web
                .iter()
                .find(|e| e.key == key)
                .and_then(|e| e.summary.as_ref())
                .map(|s| s.msgs_per_s)
                .filter(|&v| v > 0.0)
        };
        let clients = self.settings.clients;
        // Like with like: both log a line per request into a pipe that
        // loadgen reads, as a reader runs them; the same pair with both logs
        // to /dev/null is shown beside it.
        let quiet = match (web("lesson09-silent"), web("py-http-silent")) {
            (Some(l), Some(p)) => format!("; both logs to /dev/null: {:.1}x", l / p),
            _ => String::new(),
        };
        checks.push(match (web("lesson09"), web("py-http")) {
            (Some(l), Some(p)) => TargetCheck {
                target: format!(
                    "lesson 09 vs Python's http.server, GET /, {clients} clients, each logging a line per request"
                ),
                wanted: "at least 5x the requests/s".into(),
                measured: format!(
                    "{:.1}x ({} vs {} requests/s){quiet}{}",
                    l / p,
                    fmt_rate(l),
                    fmt_rate(p),
                    self.unlike(&self.web, "lesson09", "py-http")
                ),
                met: Some(l / p >= 5.0),
            },
            _ => not_run(
                "lesson 09 vs Python's http.server",
                "at least 5x the requests/s",
            ),
        });
        checks.push(match (web("lesson09"), web("hyper")) {
            (Some(l), Some(h)) => TargetCheck {
                target: format!("lesson 09 vs hyper, GET /, {clients} clients"),
                wanted: "within 2x of hyper".into(),
                measured: format!(
                    "hyper is {:.2}x lesson 09's requests/s ({} vs {})",
                    h / l,
                    fmt_rate(h),
                    fmt_rate(l)
                ),
                met: Some(h / l <= 2.0),
            },
            _ => not_run("lesson 09 vs hyper", "within 2x of hyper"),
        });
        checks.push(match &self.build {
            Some(b) if b.ok => TargetCheck {
                target: "release build of loadgen from clean".into(),
                wanted: "under 60 s".into(),
                measured: format!("{:.1} s on {} cores", b.seconds, self.machine.cores),
                met: Some(b.seconds < 60.0),
            },
            Some(_) => TargetCheck {
                target: "release build of loadgen from clean".into(),
                wanted: "under 60 s".into(),
                measured: "the build failed".into(),
                met: Some(false),
            },
            None => not_run("release build of loadgen from clean", "under 60 s"),
        });
        checks
    }
}

fn not_run(target: &str, wanted: &str) -> TargetCheck {
    TargetCheck {
        target: target.into(),
        wanted: wanted.into(),
        measured: "not measured in this run".into(),
        met: None,
    }
}

fn fmt_rate(rate: f64) -> String {
    crate::render::thousands(rate)
}
