//! The smoke run CI keeps alive: the load generator, its baselines and the
//! whole `report` pipeline, in a setting so small that it takes a second or
//! two. These tests check that every reply is checked and every file is
//! written; they never assert a figure (figures depend on the machine).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use course_kit::{Finished, Proc, Server};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// The longest any one step may take. The report step may have to build the
/// lesson servers first, hence the generous limit.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Starts loadgen's own server `args` (a baseline on `127.0.0.1:0`).
fn start(args: &[&str]) -> Result<Server> {
    let mut command = Command::new(LOADGEN);
    command.args(args);
    Server::start_command(command)
}

/// Runs loadgen with `args` to the end (or kills it after [`TIMEOUT`]).
fn run(args: &[&str]) -> Result<Finished> {
    let mut command = Command::new(LOADGEN);
    command.args(args);
    Proc::spawn_command(command)?.wait_exit_within(TIMEOUT)
}

/// A fresh, empty folder for one test's files.
fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("loadgen-smoke-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn json(path: &PathBuf) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

#[test]
fn checks_every_reply_of_the_tokio_baseline() -> Result<()> {
    let server = start(&["serve-tokio", "127.0.0.1:0"])?;
    let dir = scratch("tokio")?;
    let file = dir.join("run.json");
    let addr = server.addr.to_string();
    let output = run(&[
        "run",
        &addr,
        "--clients",
        "4",
        "--duration",
        "1s",
        "--json",
        file.to_str().context("path")?,
    ])?;
    ensure!(
        output.status.success(),
        "loadgen run failed: {}",
        output.stderr
    );
    let stats = json(&file)?;
    ensure!(stats["messages"].as_u64() > Some(0), "no replies: {stats}");
    ensure!(stats["wrong"] == 0 && stats["broken"] == 0, "{stats}");
    ensure!(stats["served"] == 4, "not every client was served: {stats}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn checks_every_reply_of_the_thread_baseline_with_a_message_count() -> Result<()> {
    let server = start(&["serve-threads", "127.0.0.1:0"])?;
    let addr = server.addr.to_string();
    let output = run(&[
        "run", &addr, "-c", "3", "-n", "50", "-s", "1000", "-d", "30s",
    ])?;
    ensure!(
        output.status.success(),
        "loadgen run failed: {}",
        output.stderr
    );
    let summary = output.stdout.join("\n");
    ensure!(summary.contains("3 of 3 clients served"), "{summary}");
    Ok(())
}

#[test]
fn fails_on_a_server_that_does_not_upper_case() -> Result<()> {
    // A plain echo: sends the bytes back unchanged, which is wrong here.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let Ok(mut conn) = conn else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let output = run(&["run", &addr, "-c", "2", "-d", "1s"])?;
    let stderr = output.stderr;
    ensure!(!output.status.success(), "a wrong echo passed: {stderr}");
    ensure!(stderr.contains("wrong repl"), "{stderr}");
    Ok(())
}

/// The web load checks every answer: a server that answers 404 fails it.
#[test]
fn web_load_fails_on_a_server_that_does_not_serve_the_page() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let output = run(&["run", &addr, "--http", "-c", "2", "-d", "1s"])?;
    ensure!(!output.status.success(), "a 404 passed as the page");
    ensure!(output.stderr.contains("not a 200"), "{}", output.stderr);
    Ok(())
}

#[test]
fn refuses_to_load_another_machine() -> Result<()> {
    let output = run(&["run", "192.0.2.1:9003", "-d", "1s"])?;
    ensure!(output.status.code() == Some(2), "{output:?}");
    ensure!(output.stderr.contains("loopback"));
    Ok(())
}

#[test]
fn report_smoke_runs_every_scenario_and_draws_the_plots() -> Result<()> {
    let dir = scratch("report")?;
    let output = run(&["report", "--smoke", "--out", dir.to_str().context("path")?])?;
    ensure!(
        output.status.success(),
        "loadgen report --smoke failed: {}",
        output.stderr
    );
    let results = json(&dir.join("results.json"))?;
    // The Rust servers are always there; a Python twin may be missing, and
    // then it must say why.
    for section in ["echo", "udp", "framed", "web", "sessions", "hop"] {
        for entry in results[section].as_array().context("no section")? {
            let key = entry["key"].as_str().unwrap_or("?");
            if entry["kind"] == "python" && entry["missing"].is_string() {
                continue;
            }
            ensure!(
                entry["missing"].is_null(),
                "{section}/{key} was not measured: {}",
                entry["missing"]
            );
            let summary = &entry["summary"];
            ensure!(
                summary["wrong"] == 0 && summary["broken"] == 0,
                "{section}/{key}: {summary}"
            );
        }
    }
    // Like with like: every lesson and twin that logs is measured as a
    // reader runs it (its log into a pipe, line by line) and again with its
    // log to /dev/null.
    for section in ["echo", "udp", "framed", "web"] {
        let entries = results[section].as_array().context("no section")?;
        let log = |key: &str| {
            entries
                .iter()
                .find(|e| e["key"] == key)
                .map(|e| e["log"].clone())
        };
        for key in ["lesson03", "py-sequential", "lesson05", "py-udp"]
            .iter()
            .chain(&["lesson07", "py-framed", "lesson09", "py-http"])
        {
            let Some(lines) = log(key) else { continue };
            ensure!(lines == "lines", "{section}/{key} logged to {lines}");
            let quiet = log(&format!("{key}-silent"));
            ensure!(
                quiet.as_ref().is_some_and(|q| q == "dev-null"),
                "{section}/{key} has no run with its log to /dev/null: {quiet:?}"
            );
        }
    }
    let hop = results["hop"].as_array().context("no hop section")?;
    ensure!(
        hop.len() == 4,
        "the hop scenario has {} paths, not 4: {hop:?}",
        hop.len()
    );
    let fanout = &results["fanout"][0];
    ensure!(fanout["missing"].is_null(), "fan-out failed: {fanout}");
    ensure!(fanout["summary"]["missing"] == 0, "{fanout}");
    for table in [
        "machine.md",
        "echo.md",
        "framed.md",
        "web.md",
        "hop.md",
        "sessions.md",
        "fanout.md",
        "targets.md",
        "notes-sequential.md",
        "notes-threads.md",
        "notes-python.md",
        "notes-log.md",
        "notes-framed.md",
        "notes-web.md",
        "notes-udp.md",
    ] {
        let text = std::fs::read_to_string(dir.join(table))?;
        ensure!(text.contains("generated by"), "{table}: {text}");
    }
    for plot in [
        "throughput.svg",
        "waiting.svg",
        "fanout.svg",
        "throughput-narrow.svg",
        "waiting-narrow.svg",
        "fanout-narrow.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(plot))?;
        ensure!(svg.starts_with("<svg") && svg.contains("</svg>"), "{plot}");
    }
    // `plot` redraws the same files from the JSON alone.
    let redraw = run(&["plot", dir.join("results.json").to_str().context("path")?])?;
    ensure!(redraw.status.success(), "{}", redraw.stderr);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn moves_a_small_file_up_and_down_and_writes_its_table() -> Result<()> {
    let dir = scratch("files")?;
    let table = dir.join("files.md");
    let out = dir.to_str().context("path")?;
    let done = run(&["files", "--size-mib", "2", "--out", out])?;
    ensure!(done.status.success(), "{}", done.stderr);
    let text = std::fs::read_to_string(&table)?;
    ensure!(text.contains("generated by"), "{text}");
    ensure!(text.contains("| lesson08-server |"), "{text}");
    ensure!(text.contains("| raw loopback"), "{text}");
    ensure!(text.contains("From one run of"), "{text}");
    // --redraw writes the same table again from files.json alone.
    std::fs::remove_file(&table)?;
    let redraw = run(&["files", "--redraw", "--out", out])?;
    ensure!(redraw.status.success(), "{}", redraw.stderr);
    ensure!(std::fs::read_to_string(&table)? == text);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

/// Lesson 12's echo over a Unix socket and over TCP loopback, in one run:
/// every reply checked, both tables and their sentences written.
#[cfg(unix)]
#[test]
fn unix_smoke_measures_the_unix_socket_beside_tcp_and_writes_its_table() -> Result<()> {
    let dir = scratch("unix")?;
    let table = dir.join("unix.md");
    let out = dir.to_str().context("path")?;
    let done = run(&["unix", "--runs", "1", "--duration", "200ms", "--out", out])?;
    ensure!(done.status.success(), "{}", done.stderr);
    let text = std::fs::read_to_string(&table)?;
    ensure!(text.contains("generated by"), "{text}");
    ensure!(
        text.matches("| Unix domain socket |").count() == 2,
        "{text}"
    );
    ensure!(
        text.matches("| TCP over 127.0.0.1 |").count() == 2,
        "{text}"
    );
    ensure!(
        text.matches("the Unix domain socket carried").count() == 2,
        "{text}"
    );
    // --redraw writes the same tables again from unix.json alone.
    std::fs::remove_file(&table)?;
    let redraw = run(&["unix", "--redraw", "--out", out])?;
    ensure!(redraw.status.success(), "{}", redraw.stderr);
    ensure!(std::fs::read_to_string(&table)? == text);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn c10k_smoke_grows_every_room_and_draws_the_plot() -> Result<()> {
    let dir = scratch("c10k")?;
    let out = dir.to_str().context("path")?;
    let output = run(&[
        "c10k",
        "--rooms",
        "3,8",
        "--messages",
        "2",
        "--deliveries",
        "10",
        "--budget",
        "60s",
        "--out",
        out,
    ])?;
    ensure!(
        output.status.success(),
        "loadgen c10k failed: {}",
        output.stderr
    );
    let results = json(&dir.join("c10k.json"))?;
    let subjects = results["subjects"].as_array().context("no subjects")?;
    ensure!(subjects.len() == 5, "{results}");
    for subject in subjects {
        let key = subject["key"].as_str().unwrap_or("?");
        if key.starts_with("python") && subject["missing"].is_string() {
            continue; // no Python here: it says so
        }
        ensure!(
            subject["missing"].is_null(),
            "{key}: {}",
            subject["missing"]
        );
        let stages = subject["stages"].as_array().context("no stages")?;
        ensure!(stages.len() == 2, "{key}: {stages:?}");
        for (stage, members) in stages.iter().zip([3u64, 8]) {
            ensure!(stage["reached"] == members, "{key}: {stage}");
            ensure!(stage["broke"].is_null(), "{key}: {stage}");
            ensure!(stage["missing"] == 0, "{key}: {stage}");
            // 2 lines, or 5 in the room of 3 to make 10 deliveries.
            let lines = if members == 3 { 5 } else { 2 };
            ensure!(
                stage["deliveries"] == lines * (members - 1),
                "{key}: {stage}"
            );
        }
    }
    let table = std::fs::read_to_string(dir.join("c10k.md"))?;
    ensure!(
        table.contains("generated by") && table.contains("| target |"),
        "{table}"
    );
    let ladder = std::fs::read_to_string(dir.join("c10k-ladder.md"))?;
    ensure!(ladder.matches("| 8 |").count() == 3, "{ladder}");
    for plot in ["c10k-memory.svg", "c10k-memory-narrow.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot))?;
        ensure!(svg.starts_with("<svg") && svg.contains("</svg>"), "{plot}");
    }
    // `--redraw` writes the same table from the JSON alone.
    std::fs::remove_file(dir.join("c10k.md"))?;
    let redraw = run(&["c10k", "--redraw", "--out", out])?;
    ensure!(redraw.status.success(), "{}", redraw.stderr);
    ensure!(std::fs::read_to_string(dir.join("c10k.md"))? == table);
    Ok(())
}
