//! The sentences the appendix's prose needs, written from a results file.
//!
//! The appendix explains *why* the servers behave as they do; every figure
//! and every comparison that depends on a run ("faster", "served one of
//! fifty") is written here, into a small `notes-*.md` file of
//! `book/src/perf/`, so that the text and the tables always come from the
//! same run. Each sentence is left out when the figures it needs are
//! missing from the run.

use std::fmt::Write as _;

use crate::render::{micros, rss, thousands};
use crate::results::{Entry, Log, Results, Summary};

/// The notes, as (file name, text without the "generated" line).
pub fn all(r: &Results) -> Vec<(&'static str, String)> {
    vec![
        ("notes-sequential.md", sequential(r)),
        ("notes-threads.md", threads(r)),
        ("notes-python.md", python(r)),
        ("notes-log.md", log(r)),
        ("notes-framed.md", framed(r)),
        ("notes-web.md", web(r)),
        ("notes-udp.md", udp(r)),
    ]
}

fn find<'a>(group: &'a [Entry], key: &str) -> Option<&'a Summary> {
    group
        .iter()
        .find(|e| e.key == key)
        .and_then(|e| e.summary.as_ref())
}

fn label<'a>(group: &'a [Entry], key: &str) -> &'a str {
    group
        .iter()
        .find(|e| e.key == key)
        .map_or("?", |e| e.label.as_str())
}

fn rate(s: &Summary) -> String {
    thousands(s.msgs_per_s)
}

fn times(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// "2.3 + 14.3 µs" (in the program + in the kernel).
fn cpu(s: &Summary) -> String {
    match (s.server_user_us_per_msg, s.server_system_us_per_msg) {
        (Some(u), Some(k)) => format!("{u:.1} + {k:.1} µs"),
        _ => "an unmeasured amount".into(),
    }
}

fn total_cpu(s: &Summary) -> Option<f64> {
    Some(s.server_user_us_per_msg? + s.server_system_us_per_msg?)
}

fn or_nothing(text: String) -> String {
    if text.trim().is_empty() {
        "Not measured in this run.\n".into()
    } else {
        text
    }
}

fn sequential(r: &Results) -> String {
    let mut text = String::new();
    let c = r.settings.clients;
    if let Some(seq) = find(&r.echo, "lesson03") {
        let _ = write!(
            text,
            "In each {} s run with {c} clients, lesson 03 served {} of them, at {} messages/s",
            r.settings.duration_s,
            seq.served,
            rate(seq)
        );
        if let Some(py) = find(&r.echo, "py-sequential") {
            let _ = write!(text, "; its Python twin served {}", py.served);
        }
        text.push_str(". ");
        if let Some(e) = r.echo.iter().find(|e| e.key == "lesson03") {
            let rates: Vec<f64> = e.runs.iter().map(|run| run.msgs_per_s).collect();
            let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let high = rates.iter().copied().fold(0.0, f64::max);
            if rates.len() > 1 {
                let _ = write!(
                    text,
                    "Over its {} runs, that figure went from {} to {} messages/s. ",
                    rates.len(),
                    thousands(low),
                    thousands(high)
                );
            }
        }
        text.push('\n');
    }
    let session = |key: &str| find(&r.sessions, key);
    if let Some(seq) = session("lesson03") {
        let done = |s: &Summary| {
            s.all_done_ms.map_or_else(
                || format!("not within {} s", r.settings.session_deadline_s),
                |ms| micros(Some((ms * 1000.0).round() as u64)),
            )
        };
        let ms = |v: Option<f64>| micros(v.map(|ms| (ms * 1000.0).round() as u64));
        let _ = write!(
            text,
            "\nWith {c} callers of {} messages each, all dialling at once, lesson 03's median caller \
             waited {} for its first reply and its last caller {}; all were done after {}.",
            r.settings.session_messages,
            ms(seq.first_reply_median_ms),
            ms(seq.first_reply_last_ms),
            done(seq),
        );
        if let Some(py) = session("py-sequential") {
            let _ = write!(
                text,
                " Its Python twin: {} and {}, all done after {}.",
                ms(py.first_reply_median_ms),
                ms(py.first_reply_last_ms),
                done(py)
            );
        }
        if let Some(threads) = session("threads") {
            let _ = write!(
                text,
                " The thread-per-connection server had all {c} done after {}.",
                done(threads)
            );
        }
        text.push('\n');
    }
    or_nothing(text)
}

fn threads(r: &Results) -> String {
    let mut text = String::new();
    let (Some(threads), Some(tokio)) = (find(&r.echo, "threads"), find(&r.echo, "tokio")) else {
        return or_nothing(text);
    };
    let _ = writeln!(
        text,
        "- **Memory.** The thread-per-connection server ran {} threads in {}; tokio ran {} in {}.",
        threads.server_threads.map_or("?".into(), |t| t.to_string()),
        rss(threads.server_rss_kb),
        tokio.server_threads.map_or("?".into(), |t| t.to_string()),
        rss(tokio.server_rss_kb),
    );
    let _ = writeln!(
        text,
        "- **CPU per message** (in the program + in the kernel): {} for the threads, {} for tokio.",
        cpu(threads),
        cpu(tokio)
    );
    let _ = writeln!(
        text,
        "- **Latency** p50 / p99: {} / {} for the threads, {} / {} for tokio.",
        micros(threads.p50_us),
        micros(threads.p99_us),
        micros(tokio.p50_us),
        micros(tokio.p99_us)
    );
    let _ = write!(
        text,
        "- **Speed.** tokio answered {} messages/s, {} the threads' {}",
        rate(tokio),
        times(tokio.msgs_per_s, threads.msgs_per_s),
        rate(threads)
    );
    if let Some(raw) = find(&r.echo, "raw") {
        let _ = write!(
            text,
            "; raw loopback, with nobody replying, moved {} messages/s one way, {} tokio's",
            rate(raw),
            times(raw.msgs_per_s, tokio.msgs_per_s)
        );
    }
    text.push_str(".\n");
    if let Some(fastest) = r
        .echo
        .iter()
        .filter(|e| e.kind != "ceiling")
        .filter_map(|e| e.summary.as_ref().map(|s| (e, s)))
        .max_by(|a, b| a.1.msgs_per_s.total_cmp(&b.1.msgs_per_s))
    {
        let _ = write!(
            text,
            "- **The fastest echo server** of the run was {} ({} messages/s)",
            fastest.0.label,
            rate(fastest.1)
        );
        if let Some(cores) = tokio.loadgen_cores {
            let _ = write!(
                text,
                "; while it drove tokio, loadgen itself used {cores:.2} of a core"
            );
        }
        text.push_str(".\n");
    }
    if let Some((k, s)) = r
        .fanout
        .iter()
        .filter_map(|f| f.summary.as_ref().map(|s| (f.clients, s)))
        .max_by_key(|(k, _)| *k)
    {
        let _ = writeln!(
            text,
            "- **Lesson 06's room with {k} people.** A line reached all {} others with a median \
             delay of {} and a p99 of {}; the server ran {} threads in {}.",
            k - 1,
            micros(s.p50_us),
            micros(s.p99_us),
            s.server_threads.map_or("?".into(), |t| t.to_string()),
            rss(s.server_rss_kb)
        );
    }
    or_nothing(text)
}

fn python(r: &Results) -> String {
    let mut text = String::new();
    if let (Some(t), Some(p)) = (find(&r.echo, "threads"), find(&r.echo, "py-threading")) {
        let _ = writeln!(
            text,
            "Both a thread per caller, neither printing a line per message: Rust answered {} \
             messages/s, Python's ThreadingTCPServer {}; Rust did {} as many. Per message, the \
             Python server spent {} (in the interpreter + in the kernel), the Rust one {}.",
            rate(t),
            rate(p),
            times(t.msgs_per_s, p.msgs_per_s),
            cpu(p),
            cpu(t)
        );
        if let (Some(pu), Some(tu)) = (p.server_user_us_per_msg, t.server_user_us_per_msg)
            && tu > 0.0
        {
            let _ = writeln!(
                text,
                "Counted in the program alone, Python's server spent {} Rust's time per message.",
                times(pu, tu)
            );
        }
    }
    or_nothing(text)
}

/// Each lesson beside its twin, both as a reader runs them (the log into a
/// pipe, line by line) and both with the log to /dev/null.
fn log(r: &Results) -> String {
    let mut text = String::new();
    let pairs: [(&[Entry], &str, &str); 4] = [
        (&r.echo, "lesson03", "py-sequential"),
        (&r.udp, "lesson05", "py-udp"),
        (&r.framed, "lesson07", "py-framed"),
        (&r.web, "lesson09", "py-http"),
    ];
    for (group, rust, python) in pairs {
        for key in [rust, python] {
            let (Some(loud), Some(quiet)) =
                (find(group, key), find(group, &format!("{key}-silent")))
            else {
                continue;
            };
            let unit = if group.as_ptr() == r.web.as_ptr() {
                "requests/s"
            } else {
                "messages/s"
            };
            let _ = write!(
                text,
                "- **{}:** {} {unit} with its log read from a pipe, {} with it sent to \
                 `/dev/null` ({})",
                label(group, key),
                rate(loud),
                rate(quiet),
                times(quiet.msgs_per_s, loud.msgs_per_s)
            );
            if let (Some(a), Some(b)) = (total_cpu(loud), total_cpu(quiet)) {
                let _ = write!(
                    text,
                    "; the server's CPU per message {a:.1} µs against {b:.1} µs"
                );
            }
            text.push_str(".\n");
        }
    }
    let blocks: Vec<&str> = [&r.echo, &r.udp, &r.framed, &r.web]
        .iter()
        .flat_map(|g| g.iter())
        .filter(|e| e.log() == Log::Blocks)
        .map(|e| e.label.as_str())
        .collect();
    if !blocks.is_empty() {
        let names =
            crate::provenance::list(&blocks.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let _ = writeln!(
            text,
            "\nIn this run, each of these wrote its log into the pipe in blocks, not line by \
             line, and none has a run with its log to `/dev/null`: {names}."
        );
    }
    or_nothing(text)
}

fn framed(r: &Results) -> String {
    let mut text = String::new();
    if let (Some(framed), Some(plain)) =
        (find(&r.framed, "lesson07"), find(&r.echo, "lesson06-echo"))
    {
        let _ = writeln!(
            text,
            "Lesson 07 answered {} messages/s, {} lesson 06's first step ({}); per message it \
             spent {} (in the program + in the kernel), against {}.",
            rate(framed),
            times(framed.msgs_per_s, plain.msgs_per_s),
            rate(plain),
            cpu(framed),
            cpu(plain)
        );
    }
    if let (Some(framed), Some(plain)) =
        (find(&r.framed, "py-framed"), find(&r.echo, "py-threading"))
    {
        let _ = writeln!(
            text,
            "Its Python twin answered {} messages/s, {} Python's plain ThreadingTCPServer ({}); \
             per message it spent {}, against {}.",
            rate(framed),
            times(framed.msgs_per_s, plain.msgs_per_s),
            rate(plain),
            cpu(framed),
            cpu(plain)
        );
    }
    or_nothing(text)
}

fn web(r: &Results) -> String {
    let mut text = String::new();
    let (Some(lesson), Some(hyper)) = (find(&r.web, "lesson09"), find(&r.web, "hyper")) else {
        return or_nothing(text);
    };
    let _ = write!(
        text,
        "hyper answered {} requests/s, {} lesson 09's {}",
        rate(hyper),
        times(hyper.msgs_per_s, lesson.msgs_per_s),
        rate(lesson)
    );
    if let Some(py) = find(&r.web, "py-http") {
        let _ = write!(
            text,
            "; Python's http.server {}, lesson 09 {} as many",
            rate(py),
            times(lesson.msgs_per_s, py.msgs_per_s)
        );
    }
    text.push_str(".\n");
    or_nothing(text)
}

fn udp(r: &Results) -> String {
    let mut text = String::new();
    let (Some(rust), Some(py)) = (find(&r.udp, "lesson05"), find(&r.udp, "py-udp")) else {
        return or_nothing(text);
    };
    let (ahead, behind) = if rust.msgs_per_s >= py.msgs_per_s {
        ("lesson 05", "its Python twin")
    } else {
        ("the Python twin", "lesson 05")
    };
    let logs = match (
        r.udp.iter().find(|e| e.key == "lesson05"),
        r.udp.iter().find(|e| e.key == "py-udp"),
    ) {
        (Some(a), Some(b)) if a.log() == b.log() => format!("both logs: {}", a.log().short()),
        (Some(a), Some(b)) => format!(
            "not like with like: lesson 05's log {}, the twin's {}",
            a.log().short(),
            b.log().short()
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        text,
        "Lesson 05 served {} of {} clients at {} messages/s, its Python twin {} at {}: {ahead} \
         came out ahead of {behind} ({logs}). Per message, lesson 05 \
         spent {} (in the program + in the kernel), the twin {}. Datagrams lost in the median \
         run: {} and {}.",
        rust.served,
        rust.clients,
        rate(rust),
        py.served,
        rate(py),
        cpu(rust),
        cpu(py),
        rust.lost,
        py.lost,
    );
    if let Some(threads) = find(&r.echo, "threads") {
        let _ = writeln!(
            text,
            "With its one thread, lesson 05 answered {} the messages/s of the TCP \
             thread-per-connection server with its {}.",
            times(rust.msgs_per_s, threads.msgs_per_s),
            threads
                .server_threads
                .map_or("threads".into(), |t| format!("{t} threads")),
        );
    }
    or_nothing(text)
}
