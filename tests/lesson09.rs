//! Lesson 09: answering a real web browser, by hand.
//!
//! Step 1, the Python tutorials' first web server (`lesson09-seed-server`,
//! and its Python original, `seed.py`), with each of its problems shown;
//! then step 2, the correct server, checked with raw requests, with Python's `urllib` and
//! `http.client`, with curl, and in headless Chromium; then the client and
//! the keep-alive exercise.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::thread;

use anyhow::{Context, Result, bail, ensure};
use course_tests::chaos;
use course_tests::contract;
use course_tests::tools::{CHROMIUM, CURL, PYTHON3};
use course_tests::transcript::Transcript;
use course_tests::{
    PYTHON, Server, TempDir, cmd, connect, python, read_to_close, read_until_hung_up,
    run_with_stdin, still_on_the_line,
};
use predicates::prelude::*;

const SERVER: &str = "lesson09-server";
const SEED: &str = "lesson09-seed-server";
const CLIENT: &str = "lesson09-client";
const EXERCISE: &str = "lesson09-exercise1";
const LESSON: &str = "lesson09-browser";
const DEFAULT_ADDR: &str = "127.0.0.1:9009";

/// The seed's words, as the browser should show them.
const WORDS: &str = "不要回答！！！不要回答！！！不要回答！！！";

/// A simple GET request, as a browser sends it (shortened).
fn get(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\
         Accept: text/html\r\n\r\n"
    )
}

/// An answer, taken apart.
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// Checks what every answer of the correct server has.
    fn well_formed(&self) -> Result<()> {
        ensure!(
            self.status_line.starts_with("HTTP/1.1 "),
            "{}",
            self.status_line
        );
        ensure!(
            self.header("Connection") == Some("close"),
            "{:?}",
            self.headers
        );
        ensure!(self.header("Content-Type").is_some(), "{:?}", self.headers);
        Ok(())
    }
}

/// Sends `request` in one write and reads the answer until the server hangs
/// up.
fn ask(addr: SocketAddr, request: &[u8]) -> Result<Answer> {
    // A reset fails: the correct server drains before it closes, so that no
    // answer is lost to one.
    let mut conn = connect(addr)?;
    conn.write_all(request)?;
    parse(&read_to_close(&mut conn)?)
}

fn parse(raw: &[u8]) -> Result<Answer> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("no end of head in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status_line,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// Checks a status, a Content-Length that is the body's length, and the
/// headers every answer has.
fn expect(answer: &Answer, status: u16) -> Result<()> {
    answer.well_formed()?;
    ensure!(answer.status() == status, "{}", answer.status_line);
    let length: usize = answer
        .header("Content-Length")
        .context("no Content-Length")?
        .parse()?;
    ensure!(
        length == answer.body.len(),
        "Content-Length {length}, body {}",
        answer.body.len()
    );
    Ok(())
}

/// A folder of files to serve (`ROOT/site`), with a secret beside it and a
/// link inside it pointing out. The whole root is removed when the
/// returned `TempDir` is dropped, whether the test passes or not.
fn site(name: &str) -> Result<(TempDir, PathBuf)> {
    let root = TempDir::with_prefix(format!("lesson09-{name}-"))?;
    let dir = root.path().join("site");
    std::fs::create_dir_all(dir.join("sub"))?;
    std::fs::write(dir.join("hello.txt"), "hello, 你好\n")?;
    std::fs::write(dir.join("index.html"), "<h1>hi</h1>\n")?;
    std::fs::write(dir.join("sub").join("style.css"), "h1 { color: red }\n")?;
    std::fs::write(dir.join("报告.txt"), "report\n")?;
    std::fs::write(root.path().join("secret.txt"), "the secret\n")?;
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.path().join("secret.txt"), dir.join("link.txt"))?;
    Ok((root, dir))
}

// ---------------------------------------------------------------- the command line

course_tests::test_table! {
    server_prints_help: contract::help_works(SERVER, DEFAULT_ADDR);
    client_prints_help: contract::help_works(CLIENT, DEFAULT_ADDR);
    exercise1_prints_help: contract::help_works(EXERCISE, DEFAULT_ADDR);
    server_dies_on_bad_address: contract::bad_address_is_refused(SERVER);
    client_dies_on_bad_address: contract::bad_address_is_refused(CLIENT);
    client_explains_when_no_server_listens: contract::client_explains_no_server(CLIENT, SERVER);
    seed_server_prints_help: contract::help_works(SEED, DEFAULT_ADDR);
    seed_server_dies_on_bad_address: contract::bad_address_is_refused(SEED);
}

#[test]
fn server_refuses_a_folder_that_does_not_exist() -> Result<()> {
    cmd(SERVER)?
        .args(["--dir", "/no/such/folder"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: cannot serve /no/such/folder (is it an existing folder?): ",
        ))
        .stderr(predicate::function(|e: &str| e.lines().count() == 1))
        .stderr(predicate::str::contains("panicked").not());
    Ok(())
}

// ---------------------------------------------------------------- the seed's server

/// Why the seed's tests reach it directly in chaos mode.
const SEED_READS_ONCE: &str =
    "the seed takes one read for the whole request, the very mistake the lesson shows";

/// The seed's server, reached directly even in chaos mode: behind the
/// proxy its one read would get a piece of the request.
fn seed_server() -> Result<Server> {
    chaos::exempt(SEED_READS_ONCE);
    Server::start(SEED, &[])
}

/// The seed's status line has a Chinese comma after the reason, and no
/// header follows: no Content-Type, no charset, no Content-Length.
#[test]
fn seed_answers_with_a_bare_status_line_and_gb2312_bytes() -> Result<()> {
    let server = seed_server()?;
    let mut conn = connect(server.addr)?;
    conn.write_all(get("/").as_bytes())?;
    let raw = read_until_hung_up(&mut conn)?;
    let answer = parse(&raw)?;
    ensure!(
        answer.status_line == "HTTP/1.1 200 OK 、",
        "{}",
        answer.status_line
    );
    ensure!(answer.headers.is_empty(), "{:?}", answer.headers);
    ensure!(
        std::str::from_utf8(&answer.body).is_err(),
        "the body is UTF-8"
    );
    let (text, _, bad) = encoding_rs::GBK.decode(&answer.body);
    ensure!(!bad && text.contains(WORDS), "{text}");
    server.kill()?.assert_no_panic()
}

/// One read is not one request: the seed answers whatever part arrived
/// first, here a request line without its headers.
#[test]
fn seed_answers_after_one_read_even_if_the_request_is_not_all_there() -> Result<()> {
    let mut server = seed_server()?;
    let mut conn = connect(server.addr)?;
    conn.write_all(b"GET / HTTP/1.1\r\n")?;
    // Nothing more has been sent, and the answer already comes.
    let raw = read_until_hung_up(&mut conn)?;
    ensure!(raw.starts_with("HTTP/1.1 200 OK 、".as_bytes()));
    server.wait_for("(16 bytes read)")?;
    server.kill()?.assert_no_panic()
}

/// A request longer than the seed's one `recv(1024)` is still partly
/// unread when it closes, so its kernel sends a reset, not a FIN: the
/// browser's "connection reset" page.
#[cfg(target_os = "linux")]
#[test]
fn seed_resets_a_request_longer_than_its_one_read() -> Result<()> {
    let server = seed_server()?;
    let mut conn = connect(server.addr)?;
    let cookie = "c".repeat(3000);
    conn.write_all(format!("GET / HTTP/1.1\r\nCookie: {cookie}\r\n\r\n").as_bytes())?;
    let mut got = Vec::new();
    let ended = loop {
        let mut buf = [0u8; 4096];
        match conn.read(&mut buf) {
            Ok(0) => break "a polite end",
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break "a reset",
            Err(err) => return Err(err.into()),
        }
    };
    ensure!(ended == "a reset", "the seed ended with {ended}");
    server.kill()?.assert_no_panic()
}

/// A browser asks for `/favicon.ico` too; the seed, which never looks at
/// the path, answers it with the same page.
#[test]
fn seed_answers_the_favicon_request_with_the_same_page() -> Result<()> {
    let server = seed_server()?;
    let fetch = |path: &str| -> Result<Answer> {
        let mut conn = connect(server.addr)?;
        conn.write_all(get(path).as_bytes())?;
        parse(&read_until_hung_up(&mut conn)?)
    };
    let page = fetch("/")?;
    let icon = fetch("/favicon.ico")?;
    ensure!(icon.status_line == page.status_line && icon.body == page.body);
    server.kill()?.assert_no_panic()
}

/// The seed serves one caller at a time, and its one `recv` has no
/// timeout: while a caller stays silent, the next one waits, unanswered,
/// for as long as the silent one likes.
#[test]
fn seed_keeps_everyone_waiting_while_one_caller_is_silent() -> Result<()> {
    let mut server = seed_server()?;
    let silent = connect(server.addr)?;
    let mut next = connect(server.addr)?;
    next.write_all(get("/").as_bytes())?;
    // A second of silence: no answer while the first caller says nothing.
    course_tests::assert_silent(&mut next, std::time::Duration::from_secs(1))?;
    let gone = silent.local_addr()?;
    drop(silent);
    server.wait_for(&format!(r#"client {gone}: "" (0 bytes read)"#))?;
    let answer = parse(&read_until_hung_up(&mut next)?)?;
    ensure!(
        answer.status_line == "HTTP/1.1 200 OK 、",
        "{}",
        answer.status_line
    );
    server.kill()?.assert_no_panic()
}

/// The correct server reads the whole request, however long, and drains
/// what comes after its answer: the same long request gets its page.
#[test]
fn server_answers_a_long_request_in_full_without_a_reset() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let cookie = "c".repeat(3000);
    let answer = ask(
        server.addr,
        format!("GET / HTTP/1.1\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )?;
    expect(&answer, 200)?;
    server.kill()?.assert_no_panic()
}

/// A client that sends a body the server did not ask for (a POST) still
/// gets its whole answer: the server shuts down its side, then drains.
#[test]
fn server_answers_before_the_client_has_finished_sending() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut conn = connect(server.addr)?;
    let body = vec![b'x'; 200_000];
    let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes())?;
    let mut out = conn.try_clone()?;
    let sender = thread::spawn(move || {
        let _ = out.write_all(&body);
        let _ = out.shutdown(Shutdown::Write);
    });
    let answer = parse(&read_to_close(&mut conn)?)?;
    let _ = sender.join();
    expect(&answer, 405)?;
    server.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the correct server

#[test]
fn server_answers_the_root_with_the_words_in_utf8() -> Result<()> {
    let mut server = Server::start(SERVER, &[])?;
    let answer = ask(server.addr, get("/").as_bytes())?;
    expect(&answer, 200)?;
    ensure!(answer.header("Content-Type") == Some("text/html; charset=utf-8"));
    let text = String::from_utf8(answer.body)?;
    ensure!(
        text.contains(WORDS) && text.contains(r#"<meta charset="utf-8">"#),
        "{text}"
    );
    let line = server.wait_for("GET /")?;
    ensure!(
        line.ends_with(&format!(r#": "GET /" -> 200 ({} bytes)"#, text.len())),
        "{line}"
    );
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_gb2312_with_its_charset() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let answer = ask(server.addr, get("/gb2312").as_bytes())?;
    expect(&answer, 200)?;
    ensure!(answer.header("Content-Type") == Some("text/html; charset=gb2312"));
    ensure!(
        std::str::from_utf8(&answer.body).is_err(),
        "the body is UTF-8"
    );
    let (text, _, bad) = encoding_rs::GBK.decode(&answer.body);
    ensure!(!bad && text.contains(WORDS), "{text}");
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_head_with_the_headers_of_get_and_no_body() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let full = ask(server.addr, get("/").as_bytes())?;
    let head = ask(server.addr, get("/").replacen("GET", "HEAD", 1).as_bytes())?;
    ensure!(
        head.status() == 200 && head.body.is_empty(),
        "{:?}",
        head.body
    );
    ensure!(
        head.header("Content-Length") == Some(full.body.len().to_string().as_str()),
        "{:?}",
        head.headers
    );
    server.kill()?.assert_no_panic()
}

/// What follows `?` is a query, not part of the path: `/?lang=zh` is `/`.
#[test]
fn server_ignores_the_query_when_it_picks_the_page() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    expect(&ask(server.addr, get("/?lang=zh").as_bytes())?, 200)?;
    let gb = ask(server.addr, get("/gb2312?x=1#top").as_bytes())?;
    expect(&gb, 200)?;
    ensure!(gb.header("Content-Type") == Some("text/html; charset=gb2312"));
    server.kill()?.assert_no_panic()
}

/// An answer to HEAD has no body, whatever its status.
#[test]
fn server_sends_no_body_to_head_even_for_an_error() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    for request in ["HEAD / HTTP/2.0\r\n\r\n", "HEAD /nothing HTTP/1.1\r\n\r\n"] {
        let answer = ask(server.addr, request.as_bytes())?;
        ensure!(answer.body.is_empty(), "{request:?}: {:?}", answer.body);
        ensure!(answer.header("Content-Length").is_some_and(|n| n != "0"));
    }
    server.kill()?.assert_no_panic()
}

/// A request that dribbles in, a byte every fifth of a second, never
/// silent for a whole second, is still cut off: the whole head must arrive
/// within the idle timeout.
#[test]
fn server_cuts_off_a_request_that_dribbles_in_past_the_idle_timeout() -> Result<()> {
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut loris = connect(server.addr)?;
    loris.write_all(b"GET / HTTP/1.1\r\n")?;
    let mut bytes = 0;
    // Each pause is a window of a fifth of a second in which nothing may
    // arrive; the loop ends when the server hangs up.
    while still_on_the_line(&mut loris, std::time::Duration::from_millis(200))? {
        ensure!(bytes < 50, "still connected after {bytes} bytes (10 s)");
        if loris.write_all(b"x").is_err() {
            break;
        }
        bytes += 1;
    }
    server.wait_for(": no request within 1s, closing")?; // the one caller
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_http_1_0_too() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let answer = ask(server.addr, b"GET / HTTP/1.0\r\n\r\n")?;
    expect(&answer, 200)?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_gives_every_error_its_status() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let cases: [(&[u8], u16); 7] = [
        (b"GET /nothing HTTP/1.1\r\n\r\n", 404),
        (b"GET /favicon.ico HTTP/1.1\r\n\r\n", 404),
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
    ];
    for (request, status) in cases {
        let answer = ask(server.addr, request)
            .with_context(|| String::from_utf8_lossy(request).into_owned())?;
        expect(&answer, status).with_context(|| String::from_utf8_lossy(request).into_owned())?;
    }
    let refused = ask(server.addr, b"DELETE / HTTP/1.1\r\n\r\n")?;
    ensure!(
        refused.header("Allow") == Some("GET, HEAD"),
        "{:?}",
        refused.headers
    );
    server.kill()?.assert_no_panic()
}

#[test]
fn server_refuses_a_request_head_over_8_kib_with_431() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(9000));
    let answer = ask(server.addr, big.as_bytes())?;
    expect(&answer, 431)?;
    let fits = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(8000));
    expect(&ask(server.addr, fits.as_bytes())?, 200)?;
    server.kill()?.assert_no_panic()
}

#[test]
fn server_reads_a_request_that_arrives_one_byte_at_a_time() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let mut conn = connect(server.addr)?;
    conn.set_nodelay(true)?;
    for byte in get("/gb2312").bytes() {
        conn.write_all(&[byte])?;
    }
    let answer = parse(&read_until_hung_up(&mut conn)?)?;
    expect(&answer, 200)?;
    ensure!(answer.header("Content-Type") == Some("text/html; charset=gb2312"));
    server.kill()?.assert_no_panic()
}

#[test]
fn server_reads_a_request_split_at_every_byte() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let request = get("/");
    for at in 1..request.len() {
        let mut conn = connect(server.addr)?;
        conn.set_nodelay(true)?;
        conn.write_all(&request.as_bytes()[..at])?;
        conn.write_all(&request.as_bytes()[at..])?;
        let answer = parse(&read_until_hung_up(&mut conn)?)?;
        expect(&answer, 200).with_context(|| format!("split at {at}"))?;
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn server_serves_files_from_its_folder_with_their_types() -> Result<()> {
    let (_root, dir) = site("files")?;
    let server = Server::start(SERVER, &["--dir", dir.to_str().context("path")?])?;
    for (path, kind, body) in [
        ("/hello.txt", "text/plain; charset=utf-8", "hello, 你好\n"),
        ("/index.html", "text/html; charset=utf-8", "<h1>hi</h1>\n"),
        (
            "/sub/style.css",
            "text/css; charset=utf-8",
            "h1 { color: red }\n",
        ),
        (
            "/%E6%8A%A5%E5%91%8A.txt",
            "text/plain; charset=utf-8",
            "report\n",
        ),
        (
            "/hello.txt?version=2",
            "text/plain; charset=utf-8",
            "hello, 你好\n",
        ),
    ] {
        let answer = ask(server.addr, get(path).as_bytes())?;
        expect(&answer, 200).with_context(|| path.to_string())?;
        ensure!(
            answer.header("Content-Type") == Some(kind),
            "{path}: {:?}",
            answer.headers
        );
        ensure!(answer.body == body.as_bytes(), "{path}");
    }
    server.kill()?.assert_no_panic()?;
    Ok(())
}

/// However a path is spelled, nothing outside the folder is served.
#[test]
fn server_never_serves_a_file_outside_its_folder() -> Result<()> {
    let (_root, dir) = site("traversal")?;
    let server = Server::start(SERVER, &["--dir", dir.to_str().context("path")?])?;
    let attempts = [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "//secret.txt",
        "/sub//../../secret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "/./hello.txt",
        "/hello.txt%00.html",
        "/%zz",
        "/sub",
    ];
    for path in attempts {
        let answer = ask(server.addr, get(path).as_bytes())?;
        ensure!(
            matches!(answer.status(), 400 | 403 | 404),
            "{path}: {}",
            answer.status_line
        );
        ensure!(
            !String::from_utf8_lossy(&answer.body).contains("the secret"),
            "{path} served the secret"
        );
    }
    #[cfg(unix)]
    {
        let link = ask(server.addr, get("/link.txt").as_bytes())?;
        ensure!(
            link.status() == 403,
            "a link out of the folder: {}",
            link.status_line
        );
    }
    server.kill()?.assert_no_panic()?;
    Ok(())
}

#[test]
fn server_closes_a_silent_connection_after_the_idle_timeout() -> Result<()> {
    let mut server = Server::start(SERVER, &["--idle-timeout", "1"])?;
    let mut silent = connect(server.addr)?;
    ensure!(read_until_hung_up(&mut silent)?.is_empty());
    server.wait_for(": no request within 1s, closing")?; // the one caller
    server.kill()?.assert_no_panic()
}

/// A hundred silent connections hold a hundred threads, and the next
/// caller is still answered at once (with a seat left for it).
#[test]
fn server_answers_while_100_silent_connections_are_open() -> Result<()> {
    let server = Server::start(SERVER, &["--max-clients", "101"])?;
    let silent: Vec<TcpStream> = (0..100)
        .map(|_| connect(server.addr))
        .collect::<Result<_>>()?;
    expect(&ask(server.addr, get("/").as_bytes())?, 200)?;
    drop(silent);
    server.kill()?.assert_no_panic()
}

/// What the server says when it is full, as `--max-clients 2` says it.
const FULL: &str = "server full: 2 clients are being served, try again later\n";

/// Two silent callers hold both seats of `server` (started with
/// `--max-clients 2`; they are accepted in the order they connected). The
/// third gets `503` with `body` and is hung up on; once a seat is free
/// again (the server logs `freed` for the caller who left), a caller gets
/// the page.
fn answers_503_past_max_clients(mut server: Server, body: &str, freed: &str) -> Result<()> {
    // The seats are taken directly (in chaos mode too, where a proxy's own
    // connections might reach the server in another order); the third
    // caller goes the way every caller goes.
    let first = connect(server.direct)?;
    let _second = connect(server.direct)?;
    let mut third = connect(server.addr)?;
    third.write_all(get("/").as_bytes())?;
    // A reset may follow the answer if the request came after the server
    // had read what there was; the answer is there all the same.
    let answer = parse(&read_until_hung_up(&mut third)?)?;
    expect(&answer, 503)?;
    ensure!(
        answer.status_line == "HTTP/1.1 503 Service Unavailable",
        "{}",
        answer.status_line
    );
    ensure!(answer.body == body.as_bytes(), "{:?}", answer.body);
    server.wait_for(": turned away, the server is full -> 503")?; // the one turned away
    let gone = first.local_addr()?;
    drop(first);
    server.wait_for(&format!("client {gone}: {freed}"))?;
    // The seat is given back just after that line: call until it is.
    let deadline = std::time::Instant::now() + course_tests::TIMEOUT;
    loop {
        let mut conn = connect(server.addr)?;
        conn.write_all(get("/").as_bytes())?;
        let answer = parse(&read_until_hung_up(&mut conn)?)?;
        if answer.status() == 503 && std::time::Instant::now() < deadline {
            continue;
        }
        ensure!(answer.status() == 200, "{}", answer.status_line);
        break;
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn server_answers_503_to_the_caller_past_max_clients() -> Result<()> {
    let server = Server::start(SERVER, &["--max-clients", "2"])?;
    answers_503_past_max_clients(server, FULL, "hung up before a whole request")
}

#[test]
fn server_serves_100_connections_at_once_by_default() -> Result<()> {
    cmd(SERVER)?
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("--max-clients <N>"))
        .stdout(predicate::str::contains("[default: 100]"));
    cmd(SERVER)?
        .args(["--max-clients", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'0'"));
    Ok(())
}

// ---------------------------------------------------------------- other clients

/// Python's urllib (what most Python code uses) and http.client (what it is
/// built on), against the correct server and against the seed.
const PYTHON_CLIENTS: &str = r#"import http.client, sys, urllib.request
port = int(sys.argv[1])
for path in ["/", "/gb2312"]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
        charset = r.headers.get_content_charset()
        print(path, r.status, r.headers["Content-Type"], r.headers["Content-Length"])
        print(r.read().decode(charset))
c = http.client.HTTPConnection("127.0.0.1", port)
c.request("HEAD", "/")
r = c.getresponse()
print("HEAD", r.status, r.reason, r.getheader("Content-Length"), repr(r.read()))
"#;

#[test]
fn interop_urllib_and_http_client_are_happy_with_the_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let mut py = Command::new(PYTHON);
    py.env("PYTHONUTF8", "1")
        .args(["-c", PYTHON_CLIENTS])
        .arg(server.addr.port().to_string());
    let out = run_with_stdin(py, "")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    ensure!(text.contains("/ 200 text/html; charset=utf-8"), "{text}");
    ensure!(
        text.contains("/gb2312 200 text/html; charset=gb2312"),
        "{text}"
    );
    ensure!(text.matches(WORDS).count() == 2, "{text}");
    ensure!(text.contains("HEAD 200 OK"), "{text}");
    server.kill()?.assert_no_panic()
}

/// The seed's answer, read by Python: http.client takes the odd status line,
/// has no charset to decode with, and reads until the server hangs up.
const PYTHON_SEED_CLIENT: &str = r#"import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
c.request("GET", "/")
r = c.getresponse()
print(r.status, repr(r.reason), r.getheader("Content-Type"), r.getheader("Content-Length"))
body = r.read()
print(len(body), "bytes; as UTF-8:", body.decode("utf-8", "replace"))
print("as GB2312:", body.decode("gb2312"))
"#;

fn run_python_seed_client(server: &Server) -> Result<String> {
    let mut py = Command::new(PYTHON);
    py.env("PYTHONUTF8", "1")
        .args(["-c", PYTHON_SEED_CLIENT])
        .arg(server.addr.port().to_string());
    let out = run_with_stdin(py, "")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn interop_http_client_reads_the_seed_until_it_hangs_up() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = seed_server()?;
    let text = run_python_seed_client(&server)?;
    ensure!(text.starts_with("200 "), "{text}");
    ensure!(
        text.contains("None None"),
        "no type, no length expected: {text}"
    );
    ensure!(
        text.contains(&format!("as GB2312: <h1> {WORDS}</h1>")),
        "{text}"
    );
    ensure!(!text.contains(&format!("as UTF-8: <h1> {WORDS}")), "{text}");
    server.kill()?.assert_no_panic()
}

#[test]
fn interop_curl_is_happy_with_the_server() -> Result<()> {
    if !CURL.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let out = run_with_stdin(curl(&server, "/", &["-sS", "-i"]), "")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    ensure!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    ensure!(text.contains(WORDS), "{text}");
    // --fail: curl exits 22 on a 404.
    let missing = run_with_stdin(curl(&server, "/nothing", &["-sS", "--fail"]), "")?;
    ensure!(missing.status.code() == Some(22), "{missing:?}");
    server.kill()?.assert_no_panic()
}

fn curl(server: &Server, path: &str, flags: &[&str]) -> Command {
    let mut curl = Command::new("curl");
    curl.args(flags)
        .arg("--max-time")
        .arg("10")
        .arg(format!("http://{}{path}", server.addr));
    curl
}

/// The Python twin of the correct server, on port 0 (with `extra`).
fn python_server(extra: &[&str]) -> Result<Server> {
    let mut twin = python(LESSON, "server.py");
    twin.arg("127.0.0.1:0").args(extra);
    Server::start_command(twin)
}

#[test]
fn interop_rust_client_with_python_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = python_server(&[])?;
    for path in ["/", "/gb2312"] {
        cmd(CLIENT)?
            .arg(server.addr_arg())
            .arg(path)
            .assert()
            .success()
            .stdout(predicate::str::starts_with("HTTP/1.1 200 OK\n"))
            .stdout(predicate::str::contains(WORDS));
    }
    let answer = ask(server.addr, b"DELETE / HTTP/1.1\r\n\r\n")?;
    expect(&answer, 405)?;
    expect(&ask(server.addr, b"GET / HTTP/2.0\r\n\r\n")?, 505)?;
    server.kill()?;
    Ok(())
}

#[test]
fn interop_python_server_never_serves_a_file_outside_its_folder_either() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let (_root, dir) = site("python-traversal")?;
    let server = python_server(&["--dir", dir.to_str().context("path")?])?;
    expect(
        &ask(server.addr, get("/%E6%8A%A5%E5%91%8A.txt").as_bytes())?,
        200,
    )?;
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "//secret.txt",
        "/..%5csecret.txt",
        "/link.txt",
    ] {
        let answer = ask(server.addr, get(path).as_bytes())?;
        ensure!(
            matches!(answer.status(), 400 | 403 | 404),
            "{path}: {}",
            answer.status_line
        );
        ensure!(
            !String::from_utf8_lossy(&answer.body).contains("the secret"),
            "{path}"
        );
    }
    server.kill()?;
    Ok(())
}

#[test]
fn interop_python_server_answers_503_to_the_caller_past_max_clients() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = python_server(&["--max-clients", "2"])?;
    answers_503_past_max_clients(server, FULL, "hung up before a whole request")
}

#[test]
fn interop_seed_py_answers_like_the_rust_seed_server() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    chaos::exempt(SEED_READS_ONCE);
    let mut seed = python(LESSON, "seed.py");
    seed.arg("127.0.0.1:0");
    let python_seed = Server::start_command(seed)?;
    let rust_seed = seed_server()?;
    let from_python = ask(python_seed.addr, get("/").as_bytes())?;
    let from_rust = ask(rust_seed.addr, get("/").as_bytes())?;
    ensure!(
        from_python.status_line == from_rust.status_line,
        "{}",
        from_python.status_line
    );
    ensure!(from_python.body == from_rust.body, "the bodies differ");
    python_seed.kill()?;
    rust_seed.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- a real browser

/// Headless Chromium, as the course's machines run it (as root, no GPU, no
/// network but loopback), with a profile of its own that is removed after.
fn chromium(args: &[&str]) -> Result<std::process::Output> {
    let profile = std::env::temp_dir().join(format!(
        "lesson09-chromium-{}-{:?}",
        std::process::id(),
        thread::current().id()
    ));
    let mut browser = Command::new("chromium");
    browser
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args);
    let out = run_with_stdin(browser, "");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

/// The page as Chromium read it: its DOM after loading.
fn rendered_text(url: &str) -> Result<String> {
    let out = chromium(&["--dump-dom", url])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn chromium_shows_the_words_on_both_pages() -> Result<()> {
    if !CHROMIUM.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(SERVER, &[])?;
    for path in ["/", "/gb2312"] {
        let dom = rendered_text(&format!("http://{}{path}", server.addr))?;
        ensure!(dom.contains(&format!("<h1> {WORDS}</h1>")), "{path}: {dom}");
        server.wait_for(&format!(r#""GET {path}" -> 200"#))?;
    }
    server.kill()?.assert_no_panic()
}

/// What Chromium makes of the seed's answer, for the chapter: it takes the
/// status line, sniffs HTML without a Content-Type, and has to guess the
/// encoding. The test records what it showed and checks that it rendered
/// the `<h1>`; whether the guess is right is the browser's luck.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_chromium_and_the_seed() -> Result<()> {
    if !CHROMIUM.is_here()? {
        return Ok(());
    }
    let server = seed_server()?;
    let url = format!("http://{}/", server.addr);
    let dom = rendered_text(&url)?;
    ensure!(dom.contains("<h1>"), "{dom}");
    let h1 = dom
        .split("<h1>")
        .nth(1)
        .and_then(|rest| rest.split("</h1>").next())
        .unwrap_or_default()
        .to_string();
    let log = server.kill()?;
    let mut t = Transcript::new();
    t.show_addr_as(
        log.stdout[0].trim_start_matches("listening on "),
        DEFAULT_ADDR,
    )
    .command("chromium --headless --dump-dom http://127.0.0.1:9009/ | grep -o '<h1>.*</h1>'")
    .lines(&[format!("<h1>{h1}</h1>")]);
    t.check("lesson09-seed-chromium")?;
    let mut t2 = Transcript::new();
    // Chromium may open a second connection, for /favicon.ico or just in
    // case; what it sends there varies, so the book shows the page's line.
    let page: Vec<&String> = log
        .stdout
        .iter()
        .filter(|line| line.starts_with("listening") || line.contains("\"GET / "))
        .collect();
    t2.show_addr_as(
        log.stdout[0].trim_start_matches("listening on "),
        DEFAULT_ADDR,
    )
    .command("cargo run -p lesson09-seed-server")
    .lines(&page);
    t2.check("lesson09-seed-server")
}

/// The chapter's screenshot, taken by Chromium of the correct server's
/// page. Written into the book with `UPDATE_TRANSCRIPTS=1`; otherwise the
/// screenshot is taken and checked to be a picture, then thrown away.
#[test]
fn chromium_takes_the_books_screenshot_of_the_page() -> Result<()> {
    if !CHROMIUM.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let update = std::env::var_os("UPDATE_TRANSCRIPTS").is_some_and(|v| v == "1");
    let file = if update {
        course_tests::workspace_dir().join("book/src/img/lesson09-chromium.png")
    } else {
        std::env::temp_dir().join(format!("lesson09-shot-{}.png", std::process::id()))
    };
    std::fs::create_dir_all(file.parent().context("folder")?)?;
    let out = chromium(&[
        &format!("--screenshot={}", file.display()),
        "--window-size=760,220",
        "--hide-scrollbars",
        &format!("http://{}/", server.addr),
    ])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&file)?;
    ensure!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "not a picture"
    );
    if !update {
        std::fs::remove_file(&file)?;
    }
    server.kill()?.assert_no_panic()
}

// ---------------------------------------------------------------- the client

#[test]
fn client_prints_the_head_and_the_body_decoded_with_its_charset() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    for path in ["/", "/gb2312"] {
        let out = cmd(CLIENT)?
            .arg(server.addr_arg())
            .arg(path)
            .assert()
            .success();
        let stdout = String::from_utf8(out.get_output().stdout.clone())?;
        ensure!(stdout.starts_with("HTTP/1.1 200 OK\n"), "{stdout}");
        ensure!(stdout.contains("Connection: close\n\n"), "{stdout}");
        ensure!(stdout.contains(WORDS), "{path}: {stdout}");
        let stderr = String::from_utf8(out.get_output().stderr.clone())?;
        ensure!(stderr.contains("as Content-Length said"), "{stderr}");
    }
    server.kill()?.assert_no_panic()
}

#[test]
fn client_reads_the_seed_until_it_hangs_up() -> Result<()> {
    let server = seed_server()?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .assert()
        .success()
        .stdout(predicate::str::starts_with("HTTP/1.1 200 OK 、\n\n"))
        .stderr(predicate::str::contains(
            "until the server hung up (no Content-Length)",
        ));
    server.kill()?.assert_no_panic()
}

#[test]
fn client_prints_the_503_of_a_full_server() -> Result<()> {
    let server = Server::start(SERVER, &["--max-clients", "1"])?;
    let _seated = connect(server.addr)?;
    cmd(CLIENT)?
        .arg(server.addr_arg())
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "HTTP/1.1 503 Service Unavailable\n",
        ))
        .stdout(predicate::str::ends_with(
            "\n\nserver full: 1 clients are being served, try again later\n",
        ));
    server.kill()?.assert_no_panic()
}

/// A server of the test's own that reads the request head and sends
/// `answer` (on a thread of its own: the client may stop reading first).
fn answering(answer: Vec<u8>) -> Result<course_tests::PlainServer> {
    course_tests::PlainServer::start(move |mut stream| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte)?;
            head.push(byte[0]);
        }
        let _ = stream.write_all(&answer);
        Ok(head)
    })
}

/// Runs the client against `answer` and checks its one line of error.
fn client_refuses(answer: Vec<u8>, error: &str) -> Result<()> {
    let plain = answering(answer)?;
    let out = cmd(CLIENT)?.arg(plain.addr.to_string()).assert().code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    ensure!(stderr == format!("error: {error}\n"), "{stderr:?}");
    plain.join()?;
    Ok(())
}

#[test]
fn client_refuses_an_answer_head_over_64_kib() -> Result<()> {
    let mut answer = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
    answer.extend(std::iter::repeat_n(b'x', 100 * 1024));
    client_refuses(
        answer,
        "the answer's head goes on past our limit of 65536 bytes",
    )
}

#[test]
fn client_refuses_a_body_announced_over_16_mib() -> Result<()> {
    client_refuses(
        b"HTTP/1.1 200 OK\r\nContent-Length: 4294967296\r\n\r\nhi".to_vec(),
        "the server announced a body of 4294967296 bytes, over our limit of 16777216",
    )
}

#[test]
fn client_stops_a_body_without_a_length_past_16_mib() -> Result<()> {
    let mut answer = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
    answer.extend(std::iter::repeat_n(b'x', 16 * 1024 * 1024 + 10));
    client_refuses(answer, "the body goes on past our limit of 16777216 bytes")
}

#[test]
fn client_refuses_a_content_length_that_is_not_a_number() -> Result<()> {
    client_refuses(
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nhi".to_vec(),
        "a bad Content-Length: lots",
    )
}

#[test]
fn client_refuses_a_path_without_a_slash() -> Result<()> {
    cmd(CLIENT)?
        .args([DEFAULT_ADDR, "index.html"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("must start with /"));
    Ok(())
}

// ---------------------------------------------------------------- exercise 1: keep-alive

/// Python's http.client sends all its requests on one connection while the
/// server keeps it open: three requests, one connection.
const KEEP_ALIVE_CLIENT: &str = r#"import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for path in ["/", "/missing", "/"]:
    c.request("GET", path)
    r = c.getresponse()
    print(path, r.status, len(r.read()), r.getheader("Connection"))
c.close()
"#;

#[test]
fn exercise1_answers_several_requests_on_one_connection() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let mut server = Server::start(EXERCISE, &[])?;
    let mut py = Command::new(PYTHON);
    py.args(["-c", KEEP_ALIVE_CLIENT])
        .arg(server.addr.port().to_string());
    let out = run_with_stdin(py, "")?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    ensure!(
        text.lines().count() == 3 && text.contains("/missing 404"),
        "{text}"
    );
    let done = server.wait_for("done after")?;
    ensure!(done.ends_with("done after 3 requests"), "{done}");
    let connected: Vec<&String> = server
        .proc
        .seen()
        .iter()
        .filter(|line| line.contains("request 1:"))
        .collect();
    ensure!(connected.len() == 1, "{connected:?}");
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_counts_one_request_in_the_singular() -> Result<()> {
    let mut server = Server::start(EXERCISE, &[])?;
    let mut conn = connect(server.addr)?;
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    // The browser's way of leaving a kept-alive connection: no more requests.
    conn.shutdown(Shutdown::Write)?;
    let text = String::from_utf8(read_until_hung_up(&mut conn)?)?;
    ensure!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let done = server.wait_for("done after")?;
    ensure!(done.ends_with("done after 1 request"), "{done}");
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_takes_two_requests_in_one_write_and_closes_when_asked() -> Result<()> {
    let server = Server::start(EXERCISE, &[])?;
    let mut conn = connect(server.addr)?;
    conn.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )?;
    let raw = read_until_hung_up(&mut conn)?;
    let text = String::from_utf8(raw)?;
    ensure!(text.matches("HTTP/1.1 200 OK").count() == 2, "{text}");
    ensure!(
        text.contains("Connection: keep-alive") && text.ends_with("</html>\n"),
        "{text}"
    );
    server.kill()?.assert_no_panic()
}

#[test]
fn exercise1_answers_503_to_the_caller_past_max_clients() -> Result<()> {
    let server = Server::start(EXERCISE, &["--max-clients", "2"])?;
    answers_503_past_max_clients(
        server,
        "server full, try again later\n",
        "done after 0 requests",
    )
}

// ---------------------------------------------------------------- the book's output

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_first_run() -> Result<()> {
    let server = Server::start(SERVER, &[])?;
    let addr = server.addr;
    let mut shown = Transcript::new();
    shown.show_addr_as(addr, DEFAULT_ADDR);
    for path in ["/", "/gb2312"] {
        let out = cmd(CLIENT)?
            .arg(server.addr_arg())
            .arg(path)
            .assert()
            .success();
        let output = out.get_output();
        let command = if path == "/" {
            "cargo run -q -p lesson09-client".to_string()
        } else {
            format!("cargo run -q -p lesson09-client -- 127.0.0.1:9009 {path}")
        };
        shown
            .command(&command)
            .output(&String::from_utf8_lossy(&output.stdout))
            .output(&String::from_utf8_lossy(&output.stderr));
    }
    shown.check("lesson09-client")?;
    let log = server.kill()?;
    let mut t = Transcript::new();
    t.show_addr_as(addr, DEFAULT_ADDR)
        .command("cargo run -p lesson09-server")
        .lines(&log.stdout);
    t.check("lesson09-server")
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_python_and_the_seed() -> Result<()> {
    if !PYTHON3.is_here()? {
        return Ok(());
    }
    let server = seed_server()?;
    let text = run_python_seed_client(&server)?;
    server.kill()?;
    let mut t = Transcript::new();
    t.command(&format!("python3 - 9009 <<'EOF'\n{PYTHON_SEED_CLIENT}EOF"))
        .output(&text);
    t.check("lesson09-seed-python")
}

/// "A folder of your own": a page from `--dir`, fetched with the client,
/// and a folder that does not exist.
#[cfg(target_os = "linux")]
#[test]
fn book_output_of_a_folder() -> Result<()> {
    let root = TempDir::with_prefix("lesson09-book-site-")?;
    std::fs::write(root.path().join("hello.html"), "<h1>hello, 你好</h1>\n")?;
    let server = Server::start(SERVER, &["--dir", root.path().to_str().context("path")?])?;
    let out = cmd(CLIENT)?
        .arg(server.addr_arg())
        .arg("/hello.html")
        .assert()
        .success();
    let output = out.get_output();
    let mut t = Transcript::new();
    t.show_addr_as(server.addr, DEFAULT_ADDR)
        .command("cargo run -q -p lesson09-client -- 127.0.0.1:9009 /hello.html")
        .output(&String::from_utf8_lossy(&output.stdout))
        .output(&String::from_utf8_lossy(&output.stderr));
    t.check("lesson09-folder")?;
    server.kill()?.assert_no_panic()?;
    let refused = cmd(SERVER)?
        .args(["--dir", "../no-such-site"])
        .assert()
        .code(1);
    let mut t = Transcript::new();
    t.command("cargo run -q -p lesson09-server -- --dir ../no-such-site")
        .output(&String::from_utf8_lossy(&refused.get_output().stderr));
    t.check("lesson09-no-folder")
}

#[cfg(target_os = "linux")]
#[test]
fn book_output_of_curl() -> Result<()> {
    if !CURL.is_here()? {
        return Ok(());
    }
    let server = Server::start(SERVER, &[])?;
    let out = run_with_stdin(curl(&server, "/", &["-sS", "-i"]), "")?;
    ensure!(out.status.success());
    server.kill()?;
    let mut t = Transcript::new();
    t.command("curl -i http://127.0.0.1:9009/")
        .output(&String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"));
    t.check("lesson09-curl")
}

/// Checks the test's own helpers read answers the way the tests assume.
#[test]
fn parse_takes_an_answer_apart() -> Result<()> {
    let answer = parse(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX: y\r\n\r\nhi")?;
    ensure!(answer.status() == 404 && answer.header("content-length") == Some("2"));
    ensure!(answer.body == b"hi");
    if parse(b"HTTP/1.1 200 OK\r\n").is_ok() {
        bail!("a head without its end was taken");
    }
    Ok(())
}
