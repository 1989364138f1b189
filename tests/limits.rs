//! Every server that serves many callers at once, where the machine, not a
//! peer, runs out: under a small limit of open files (`RLIMIT_NOFILE`) and,
//! where the tests run as root, a small limit of threads (`RLIMIT_NPROC`,
//! for a user of the server's own; see the kit's `limits`).
//!
//! Two checks, each written once and run against every server as a named
//! row of a table:
//!
//! - **Out of open files** (`out_of_files`): a crowd larger than the limit
//!   calls at once. `accept` fails; the server says so once, tries again
//!   every 100 ms (no more tries than the time allows: no spin), and the
//!   callers it cannot pick up wait in the listen queue, answered by
//!   nobody. When the crowd hangs up, the server says that `accept` works
//!   again, and serves the caller who waited and the next one.
//! - **Out of threads** (`out_of_threads`): a crowd larger than the limit
//!   calls at once. The callers for whom no thread can be started are hung
//!   up on, each named once in the log; the others are served. When the
//!   crowd hangs up and its threads end, the server serves the next caller.
//!
//! Both end with nothing printed that contains `panicked`. Lesson 10's
//! server runs on one thread and lessons 11 and 13 start a fixed number of
//! threads at start-up (tokio's workers), so those meet only the limit of
//! files. Lesson 13's proxy needs two sockets per caller, so it meets
//! the limit of files in a way of its own (`out_of_files_relaying`).
//!
//! The Python twins that start a thread per caller themselves (lessons 07,
//! 08, 09 and 12) run both checks, and those of lessons 10 and 11 the check
//! of files. Lesson 06's twins are left out: they leave their threads to
//! Python's `socketserver`, whose listen queue holds 5 callers, so a crowd
//! cannot even call at once; `tests/lesson06.rs` runs them out of files a
//! caller at a time.
//!
//! `cargo test -p course-tests --test limits` runs them all. On systems
//! other than Linux, and without root for the limit of threads, a test says
//! in one line that it skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use course_tests::chaos;
use course_tests::frames::{frame, reply};
use course_tests::headers::{read_json, send_json};
use course_tests::tools::PYTHON3;
use course_tests::{
    Limit, Server, TIMEOUT, TempDir, bin_path, connect, open_to_any_user, python, read_exactly,
    read_until_hung_up,
};

/// How many call at once: more than either limit lets a server serve.
const CROWD: usize = 40;

/// The limit of threads: the server's main thread and 23 more, for the
/// user the server runs as.
const THREADS: u64 = 24;

/// The limit of open files: stdin, stdout, stderr, the listener, whatever
/// the runtime keeps open, and room for about 25 callers.
const FILES: u64 = 32;

/// How long the callers left in the queue are watched, to see that nobody
/// answers them while the server has no file left.
const PRESSURE: Duration = Duration::from_millis(300);

/// What every server logs for a caller it could not start a thread for.
const NO_THREAD: &str = "could not be served";

// ---------------------------------------------------------------- the servers

/// How a server is spoken to: what a caller sends, and what being served
/// looks like.
#[derive(Clone, Copy)]
enum Talk {
    /// Bytes come back in capitals (lessons 06 step 1, 12, and 13's proxy in
    /// front of lesson 06's echo server).
    Echo,
    /// Lesson 06's chat protocol: served means welcomed (`* welcome, you
    /// are ...`), before saying anything.
    Chat,
    /// Lesson 07's frames, answered in capitals.
    Frames,
    /// Lesson 07's exercise: a header frame and a body, answered with a
    /// header frame and the body in capitals.
    HeaderEcho,
    /// Lesson 08's protocol: a `list`, answered with `"ok": true`.
    Files,
    /// Lesson 09: `GET /`, answered with a page.
    Web,
}

/// Which program plays the server.
#[derive(Clone, Copy)]
enum Program {
    /// A lesson binary.
    Bin(&'static str),
    /// A Python twin: the lesson's folder and the file.
    Twin(&'static str, &'static str),
    /// Lesson 13's proxy, in front of lesson 06's echo server (which runs
    /// with no limit).
    Proxy,
}

#[derive(Clone, Copy)]
struct Subject {
    program: Program,
    talk: Talk,
}

const fn bin(name: &'static str, talk: Talk) -> Subject {
    Subject {
        program: Program::Bin(name),
        talk,
    }
}

const fn twin(lesson: &'static str, file: &'static str, talk: Talk) -> Subject {
    Subject {
        program: Program::Twin(lesson, file),
        talk,
    }
}

/// A server under a limit, and what must live as long as it does.
struct Running {
    server: Server,
    talk: Talk,
    /// Lesson 08's folder.
    _dir: Option<TempDir>,
    /// The server behind lesson 13's proxy.
    _upstream: Option<Server>,
}

impl Subject {
    /// Starts the server on port 0 under `limit`, or `None` where that
    /// cannot be done here (one `skipped:` line has been printed).
    fn start(self, limit: Limit) -> Result<Option<Running>> {
        chaos::exempt("a crowd must reach the server itself to run it out of files or threads");
        let mut upstream = None;
        let mut command = match self.program {
            Program::Bin(name) => Command::new(bin_path(name)?),
            Program::Twin(lesson, file) => {
                if !PYTHON3.is_here()? {
                    return Ok(None);
                }
                python(lesson, file)
            }
            Program::Proxy => {
                let echo = Server::start("lesson06-echo-server", &[])?;
                let mut proxy = Command::new(bin_path("lesson13-proxy")?);
                proxy.arg("--to").arg(echo.addr_arg());
                upstream = Some(echo);
                proxy
            }
        };
        command.arg("127.0.0.1:0");
        let mut dir = None;
        if let Talk::Files = self.talk {
            let temp = TempDir::with_prefix("limits-lesson08-")?;
            let store = temp.path().join("store");
            std::fs::create_dir_all(&store)?;
            // Under a limit of threads the server runs as a user of its own.
            open_to_any_user(&store)?;
            command.arg("--dir").arg(&store);
            dir = Some(temp);
        }
        if !limit.apply(&mut command)? {
            return Ok(None);
        }
        Ok(Some(Running {
            server: Server::start_command(command)?,
            talk: self.talk,
            _dir: dir,
            _upstream: upstream,
        }))
    }
}

impl Talk {
    /// Sends what a caller sends to be served (a chat caller sends nothing).
    fn ask(self, conn: &mut TcpStream) -> Result<()> {
        match self {
            Talk::Echo => conn.write_all(b"limits")?,
            Talk::Chat => {}
            Talk::Frames => conn.write_all(&frame(b"limits"))?,
            Talk::HeaderEcho => {
                conn.write_all(&[frame(br#"{"name":"a","size":2}"#), b"hi".to_vec()].concat())?
            }
            Talk::Files => send_json(conn, &serde_json::json!({"cmd": "list"}))?,
            Talk::Web => {
                conn.write_all(b"GET / HTTP/1.1\r\nHost: limits\r\nConnection: close\r\n\r\n")?
            }
        }
        Ok(())
    }

    /// Reads the answer to `ask` and checks it.
    fn answered(self, conn: &mut TcpStream) -> Result<()> {
        match self {
            Talk::Echo => {
                let got = read_exactly(conn, 6)?;
                ensure!(got == b"LIMITS", "got {got:?}");
            }
            Talk::Chat => {
                let line = read_line(conn)?;
                let welcome = format!("* welcome, you are {};", conn.local_addr()?);
                ensure!(line.starts_with(&welcome), "got {line:?}");
            }
            Talk::Frames => {
                let got = reply(conn)?;
                ensure!(got == b"LIMITS", "got {got:?}");
            }
            Talk::HeaderEcho => {
                let header = reply(conn)?;
                ensure!(
                    header == br#"{"name":"a","ok":true,"size":2}"#,
                    "got {:?}",
                    String::from_utf8_lossy(&header)
                );
                ensure!(read_exactly(conn, 2)? == b"HI");
            }
            Talk::Files => {
                let answer = read_json(conn)?;
                ensure!(answer["ok"] == true, "{answer}");
            }
            Talk::Web => {
                let page = read_until_hung_up(conn)?;
                let page = String::from_utf8_lossy(&page);
                ensure!(page.starts_with("HTTP/1.1 200 "), "got {page:?}");
            }
        }
        Ok(())
    }

    /// A new caller is served, start to end.
    fn served(self, server: &Server) -> Result<()> {
        let mut conn = connect(server.addr)?;
        self.ask(&mut conn)?;
        self.answered(&mut conn)
            .context("a new caller, after the pressure had gone")
    }
}

/// One line from a chat server, read a byte at a time so that nothing after
/// it is taken from the socket.
fn read_line(conn: &mut TcpStream) -> Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < 16 * 1024 {
        if conn.read(&mut byte)? == 0 {
            bail!("hung up after {:?}", String::from_utf8_lossy(&line));
        }
        if byte[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte[0]);
    }
    bail!("no newline in 16 KiB")
}

// ---------------------------------------------------------------- out of files

/// See the top of the file.
fn out_of_files(subject: Subject) -> Result<()> {
    let Some(mut running) = subject.start(Limit::OpenFiles(FILES))? else {
        return Ok(());
    };
    let talk = running.talk;
    let mut crowd = (0..CROWD)
        .map(|_| connect(running.server.addr))
        .collect::<Result<Vec<_>>>()?;
    // Rust says "Too many open files (os error 24)", Python "[Errno 24] Too
    // many open files".
    let failed = running.server.wait_for("accept failed: ")?;
    ensure!(
        failed.contains("Too many open files") && failed.ends_with("; trying again every 100 ms"),
        "the failure is logged as {failed:?}"
    );
    let since = Instant::now();
    // The last caller is still in the queue: it asks, and nobody answers
    // while every file is in use, nor hangs up on it.
    let mut waiting = crowd.pop().context("no crowd")?;
    talk.ask(&mut waiting)?;
    course_tests::assert_silent(&mut waiting, PRESSURE)
        .context("the caller in the queue, while the server had no file left")?;
    // The rest of the crowd hangs up: the pressure goes.
    drop(crowd);
    running.server.wait_for("accept works again after ")?;
    talk.answered(&mut waiting)
        .context("the caller who waited in the queue")?;
    talk.served(&running.server)?;
    let elapsed = since.elapsed();
    let done = running.server.kill()?;
    done.assert_no_panic()?;
    // The waiting caller got in: the server kept trying, and (here) no
    // more often than every 100 ms.
    logged_once_per_episode(&done.stdout, elapsed)?;
    Ok(())
}

/// Checks that failed accepts were said once per episode: "accept failed"
/// and "works again" take turns in `log`, and the episodes, which together
/// took at most `elapsed`, had no more tries than a try every 100 ms allows
/// (no spin).
fn logged_once_per_episode(log: &[String], elapsed: Duration) -> Result<()> {
    let mut episodes = Vec::new();
    let mut open = false;
    for line in log {
        if line.starts_with("accept failed") {
            ensure!(!open, "accept failed said twice in one episode: {line:?}");
            open = true;
        } else if let Some(rest) = line.strip_prefix("accept works again after ") {
            ensure!(open, "works again without a failure: {line:?}");
            let tries: u64 = rest
                .strip_suffix(" failures")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("the recovery is logged as {line:?}"))?;
            episodes.push(tries);
            open = false;
        }
    }
    ensure!(!episodes.is_empty(), "no episode logged: {log:?}");
    let tries: u64 = episodes.iter().sum();
    let allowed = elapsed.as_millis() as u64 / 100 + 2 * episodes.len() as u64;
    ensure!(
        tries <= allowed,
        "{tries} tries in {elapsed:?} ({episodes:?}): accept is tried more often than every 100 ms"
    );
    Ok(())
}

/// Lesson 13's proxy needs two sockets per caller: the caller's and its own
/// to the server. So it may pick a caller up with the last file it has, then
/// find none for the server: that caller is reset, named in the log, and the
/// file is free again for the next caller in the queue. Here every caller
/// is relayed or reset, nobody is left hanging, and failed accepts are still
/// said once per episode, without a spin.
fn out_of_files_relaying(subject: Subject) -> Result<()> {
    let Some(mut running) = subject.start(Limit::OpenFiles(FILES))? else {
        return Ok(());
    };
    let talk = running.talk;
    // A caller the proxy resets at once may see the reset before `connect`
    // returns, which then reports it: that caller was reset, unnamed here.
    let mut reset_at_connect = 0;
    let mut crowd = Vec::new();
    for _ in 0..CROWD {
        match connect(running.server.addr) {
            Ok(conn) => crowd.push(conn),
            Err(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .map(std::io::Error::kind)
                    == Some(std::io::ErrorKind::ConnectionReset) =>
            {
                reset_at_connect += 1;
            }
            Err(err) => return Err(err),
        }
    }
    let failed = running.server.wait_for("accept failed: ")?;
    ensure!(
        failed.contains("Too many open files") && failed.ends_with("; trying again every 100 ms"),
        "the failure is logged as {failed:?}"
    );
    let since = Instant::now();
    // Each caller in turn is relayed or reset, and then hangs up, which
    // frees files for the callers still in the queue.
    let mut reset = Vec::new();
    for mut conn in crowd {
        let addr = conn.local_addr()?.to_string();
        if talk
            .ask(&mut conn)
            .and_then(|()| talk.answered(&mut conn))
            .is_err()
        {
            read_until_hung_up(&mut conn)
                .with_context(|| format!("caller {addr}: neither relayed nor reset"))?;
            reset.push(addr);
        }
    }
    ensure!(
        !reset.is_empty() || reset_at_connect > 0,
        "every caller was relayed: the limit did not bite"
    );
    talk.served(&running.server)?;
    let elapsed = since.elapsed();
    let done = running.server.kill()?;
    done.assert_no_panic()?;
    for addr in &reset {
        let times = done
            .stdout
            .iter()
            .filter(|line| line.contains("cannot reach") && line.contains(addr.as_str()))
            .count();
        ensure!(times == 1, "reset caller {addr} named {times} times");
    }
    logged_once_per_episode(&done.stdout, elapsed)?;
    Ok(())
}

// ---------------------------------------------------------------- out of threads

/// See the top of the file.
fn out_of_threads(subject: Subject) -> Result<()> {
    let Some(mut running) = subject.start(Limit::Threads(THREADS))? else {
        return Ok(());
    };
    let talk = running.talk;
    let pid = running.server.pid();
    let base = course_tests::threads(pid)?;
    let crowd = (0..CROWD)
        .map(|_| connect(running.server.addr))
        .collect::<Result<Vec<_>>>()?;
    // Each caller is served, or hung up on: nothing else.
    let mut served = Vec::new();
    let mut hung_up = Vec::new();
    // The caller that marks the end of the crowd in a chat server's log.
    let mut marked = None;
    for mut conn in crowd {
        let addr = conn.local_addr()?;
        let answer = talk.ask(&mut conn).and_then(|()| talk.answered(&mut conn));
        if answer.is_ok() {
            served.push(conn);
            continue;
        }
        read_until_hung_up(&mut conn)
            .with_context(|| format!("caller {addr}: neither served nor hung up on"))?;
        hung_up.push(addr.to_string());
    }
    ensure!(
        !hung_up.is_empty() && !served.is_empty(),
        "{} served and {} hung up on: the limit did not bite",
        served.len(),
        hung_up.len()
    );
    // The log names every caller hung up on, in the order they called.
    for addr in &hung_up {
        loop {
            let line = running.server.proc.next_line()?;
            if line.contains(NO_THREAD) && line.contains(addr.as_str()) {
                break;
            }
        }
    }
    if let Talk::Chat = talk {
        // A chat member whose writer started but not their reader was
        // welcomed, then hung up on, and named. One more caller, picked up
        // after the whole crowd, shows when the log has said all about it.
        let last = connect(running.server.addr)?;
        let marker = last.local_addr()?.to_string();
        running.server.wait_for(&marker)?;
        marked = Some((last, marker));
        let seen = running.server.proc.seen().to_vec();
        let mut still = Vec::new();
        for mut conn in served {
            let addr = conn.local_addr()?.to_string();
            if seen
                .iter()
                .any(|line| line.contains(NO_THREAD) && line.contains(&addr))
            {
                read_until_hung_up(&mut conn)
                    .with_context(|| format!("{addr}, welcomed, then named as not served"))?;
                hung_up.push(addr);
            } else {
                still.push(conn);
            }
        }
        served = still;
        ensure!(!served.is_empty(), "nobody was served");
    }
    let marker = marked.map(|(conn, marker)| {
        drop(conn);
        marker
    });
    // The pressure goes: the crowd hangs up and its threads end. (A thread
    // count has no event to wait on: polled under a deadline.)
    drop(served);
    let deadline = Instant::now() + TIMEOUT;
    while course_tests::threads(pid)? > base {
        ensure!(
            Instant::now() < deadline,
            "threads still running {TIMEOUT:?} after the crowd left"
        );
        thread::sleep(Duration::from_millis(5));
    }
    talk.served(&running.server)?;
    let done = running.server.kill()?;
    done.assert_no_panic()?;
    // One line per caller that got no thread, and none for anybody else
    // (whatever happened to the marker, it is not counted).
    let lines: Vec<&String> = done
        .stdout
        .iter()
        .filter(|line| line.contains(NO_THREAD))
        .filter(|line| {
            marker
                .as_ref()
                .is_none_or(|marker| !line.contains(marker.as_str()))
        })
        .collect();
    for addr in &hung_up {
        let times = lines
            .iter()
            .filter(|line| line.contains(addr.as_str()))
            .count();
        ensure!(times == 1, "{addr} named {times} times: {lines:?}");
    }
    ensure!(
        lines.len() == hung_up.len(),
        "{} lines about {} callers hung up on: {lines:?}",
        lines.len(),
        hung_up.len()
    );
    Ok(())
}

// ---------------------------------------------------------------- the table

const LESSON07: &str = "lesson07-framing";
const LESSON08: &str = "lesson08-file-transfer";
const LESSON09: &str = "lesson09-browser";
const LESSON10: &str = "lesson10-event-loop";
const LESSON11: &str = "lesson11-async";
const LESSON12: &str = "lesson12-families";

const PROXY: Subject = Subject {
    program: Program::Proxy,
    talk: Talk::Echo,
};

course_tests::test_table! {
    #[cfg(target_os = "linux")]
    lesson06_echo_server_survives_running_out_of_threads:
        out_of_threads(bin("lesson06-echo-server", Talk::Echo));
    #[cfg(target_os = "linux")]
    lesson06_echo_server_survives_running_out_of_open_files:
        out_of_files(bin("lesson06-echo-server", Talk::Echo));
    #[cfg(target_os = "linux")]
    lesson06_room_survives_running_out_of_threads:
        out_of_threads(bin("lesson06-room", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson06_room_survives_running_out_of_open_files:
        out_of_files(bin("lesson06-room", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson06_survives_running_out_of_threads:
        out_of_threads(bin("lesson06-server", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson06_survives_running_out_of_open_files:
        out_of_files(bin("lesson06-server", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson07_survives_running_out_of_threads:
        out_of_threads(bin("lesson07-server", Talk::Frames));
    #[cfg(target_os = "linux")]
    lesson07_survives_running_out_of_open_files:
        out_of_files(bin("lesson07-server", Talk::Frames));
    #[cfg(target_os = "linux")]
    lesson07_python_twin_survives_running_out_of_threads:
        out_of_threads(twin(LESSON07, "server.py", Talk::Frames));
    #[cfg(target_os = "linux")]
    lesson07_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON07, "server.py", Talk::Frames));
    #[cfg(target_os = "linux")]
    lesson07_exercise1_survives_running_out_of_threads:
        out_of_threads(bin("lesson07-exercise1", Talk::HeaderEcho));
    #[cfg(target_os = "linux")]
    lesson07_exercise1_survives_running_out_of_open_files:
        out_of_files(bin("lesson07-exercise1", Talk::HeaderEcho));
    #[cfg(target_os = "linux")]
    lesson08_header_server_survives_running_out_of_threads:
        out_of_threads(bin("lesson08-header-server", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_header_server_survives_running_out_of_open_files:
        out_of_files(bin("lesson08-header-server", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_header_server_python_twin_survives_running_out_of_threads:
        out_of_threads(twin(LESSON08, "header_server.py", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_header_server_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON08, "header_server.py", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_survives_running_out_of_threads:
        out_of_threads(bin("lesson08-server", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_survives_running_out_of_open_files:
        out_of_files(bin("lesson08-server", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_python_twin_survives_running_out_of_threads:
        out_of_threads(twin(LESSON08, "server.py", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson08_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON08, "server.py", Talk::Files));
    #[cfg(target_os = "linux")]
    lesson09_survives_running_out_of_threads:
        out_of_threads(bin("lesson09-server", Talk::Web));
    #[cfg(target_os = "linux")]
    lesson09_survives_running_out_of_open_files:
        out_of_files(bin("lesson09-server", Talk::Web));
    #[cfg(target_os = "linux")]
    lesson09_python_twin_survives_running_out_of_threads:
        out_of_threads(twin(LESSON09, "server.py", Talk::Web));
    #[cfg(target_os = "linux")]
    lesson09_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON09, "server.py", Talk::Web));
    #[cfg(target_os = "linux")]
    lesson09_exercise1_survives_running_out_of_threads:
        out_of_threads(bin("lesson09-exercise1", Talk::Web));
    #[cfg(target_os = "linux")]
    lesson09_exercise1_survives_running_out_of_open_files:
        out_of_files(bin("lesson09-exercise1", Talk::Web));
    // One thread, whatever the number of members: only files can run out.
    #[cfg(target_os = "linux")]
    lesson10_survives_running_out_of_open_files:
        out_of_files(bin("lesson10-server", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson10_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON10, "server.py", Talk::Chat));
    // Tokio starts its threads at start-up, one per core, and no more for
    // more members: only files can run out.
    #[cfg(target_os = "linux")]
    lesson11_survives_running_out_of_open_files:
        out_of_files(bin("lesson11-server", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson11_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON11, "server.py", Talk::Chat));
    #[cfg(target_os = "linux")]
    lesson12_survives_running_out_of_threads:
        out_of_threads(bin("lesson12-server", Talk::Echo));
    #[cfg(target_os = "linux")]
    lesson12_survives_running_out_of_open_files:
        out_of_files(bin("lesson12-server", Talk::Echo));
    #[cfg(target_os = "linux")]
    lesson12_python_twin_survives_running_out_of_threads:
        out_of_threads(twin(LESSON12, "server.py", Talk::Echo));
    #[cfg(target_os = "linux")]
    lesson12_python_twin_survives_running_out_of_open_files:
        out_of_files(twin(LESSON12, "server.py", Talk::Echo));
    // Tokio again, and an upstream address that needs no lookup: a fixed
    // number of threads, so only files can run out.
    #[cfg(target_os = "linux")]
    lesson13_proxy_survives_running_out_of_open_files: out_of_files_relaying(PROXY);
}
