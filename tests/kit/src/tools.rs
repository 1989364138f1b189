//! Tests that need a tool from outside Rust: nc, ss, curl, Chromium, Python;
//! and tests that need something of the machine itself: IPv6 loopback.
//!
//! On a reader's machine a missing tool skips the test with one line that
//! says what to install, and the suite still passes. With the environment
//! variable `CI` set (as `.ci/run` runs), a missing tool fails the test, so
//! that CI always runs everything. A test asks at its very start:
//!
//! ```text
//! if !NC.is_here()? { return Ok(()); }
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{Result, bail};

/// A program some tests run, and how to get it.
#[derive(Debug)]
pub struct Tool {
    /// The command, as the tests run it.
    pub name: &'static str,
    /// Arguments that make it print its usage or version and exit.
    pub probe: &'static [&'static str],
    /// Text that the probe's output must contain (the right flavour of the
    /// tool), if any.
    pub must_say: Option<&'static str>,
    /// How to install it on Debian or Ubuntu.
    pub install: &'static str,
}

/// netcat, the OpenBSD flavour: the book uses its `-N` (shut down the
/// sending side at the end of input).
pub const NC: Tool = Tool {
    name: "nc",
    probe: &["-h"],
    must_say: Some("-N"),
    install: "sudo apt-get install netcat-openbsd",
};

/// `ss` from iproute2: shows the kernel's queues of a listening socket.
pub const SS: Tool = Tool {
    name: "ss",
    probe: &["-V"],
    must_say: None,
    install: "sudo apt-get install iproute2",
};

/// curl, the command-line HTTP client.
pub const CURL: Tool = Tool {
    name: "curl",
    probe: &["--version"],
    must_say: None,
    install: "sudo apt-get install curl",
};

/// Debian's Chromium, run headless.
pub const CHROMIUM: Tool = Tool {
    name: "chromium",
    probe: &["--version"],
    must_say: None,
    install: "sudo apt-get install chromium",
};

/// Python 3, for the Python twins and the one-liners the book shows.
pub const PYTHON3: Tool = Tool {
    name: crate::PYTHON,
    probe: &["--version"],
    must_say: Some("Python 3"),
    install: "sudo apt-get install python3",
};

impl Tool {
    /// Whether the tool is here. If it is not: with `CI` set, an error that
    /// fails the test; otherwise `false`, after one line on stderr:
    /// `skipped: FILE::TEST needs TOOL (HOW TO INSTALL)`. The calling test then
    /// returns at once and passes.
    pub fn is_here(&self) -> Result<bool> {
        if self.found() {
            return Ok(true);
        }
        missing(self.name, self.install)
    }

    /// Runs the probe once per process and remembers the answer.
    fn found(&self) -> bool {
        static FOUND: OnceLock<Mutex<HashMap<&'static str, bool>>> = OnceLock::new();
        let found = FOUND.get_or_init(Default::default);
        let mut found = found.lock().unwrap_or_else(|p| p.into_inner());
        *found.entry(self.name).or_insert_with(|| {
            let Ok(output) = Command::new(self.name)
                .args(self.probe)
                .stdin(Stdio::null())
                .output()
            else {
                return false; // not installed: the command cannot start
            };
            match self.must_say {
                None => true,
                Some(text) => {
                    let said = [output.stdout, output.stderr].concat();
                    String::from_utf8_lossy(&said).contains(text)
                }
            }
        })
    }
}

/// The test's answer when what it needs (`what`, got as `hint` says) is
/// missing: with `CI` set, an error that fails it; otherwise `false`, after
/// one line on stderr, `skipped: FILE::TEST needs WHAT (HINT)`.
fn missing(what: &str, hint: &str) -> Result<bool> {
    let test = this_test();
    if ci() {
        bail!(
            "{test} needs {what} ({hint}), and CI is set: on CI nothing a test needs may be missing"
        );
    }
    // Straight to the stderr stream, past the test harness's capture, so
    // that the reader sees what did not run.
    let _ = writeln!(std::io::stderr(), "skipped: {test} needs {what} ({hint})");
    Ok(false)
}

/// Prints `skipped: FILE::TEST needs WHAT` on stderr, past the test
/// harness's capture, for a test that cannot run here for a reason other
/// than a missing tool (see [`crate::limits`]); the test then returns.
pub fn skip(what: &str) {
    let _ = writeln!(std::io::stderr(), "skipped: {} needs {what}", this_test());
}

/// `FILE::TEST`, the test that runs on this thread, for `skipped:` lines.
fn this_test() -> String {
    let name = std::thread::current()
        .name()
        .map(|name| name.rsplit("::").next().unwrap_or(name).to_string())
        .unwrap_or_else(|| "a test".to_string());
    // The test binary is `target/.../deps/lesson03-0123abcd`: its name
    // says which file the test is in.
    let file = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem()?.to_str().map(str::to_string))
        .and_then(|stem| stem.split('-').next().map(str::to_string));
    match file {
        Some(file) => format!("{file}::{name}"),
        None => name,
    }
}

/// Something of the machine itself that some tests need, rather than a
/// program: today only IPv6 loopback. Asked for like a tool, with the same
/// skip-or-fail rule.
#[derive(Debug)]
pub struct Facility {
    /// What the tests need, as the skip line names it.
    pub name: &'static str,
    /// Tries it once; `true` when it works.
    pub probe: fn() -> bool,
    /// An environment variable that, set to `1`, makes the probe say no,
    /// so that the skip and the failure can be seen on any machine.
    pub pretend_missing: &'static str,
    /// How to get it.
    pub install: &'static str,
}

/// IPv6 loopback: the address `::1`, which some machines (containers
/// started with IPv6 off, say) do not have. `COURSE_NO_IPV6=1` pretends it
/// is missing.
pub const IPV6: Facility = Facility {
    name: "IPv6 loopback [::1]",
    probe: ipv6_loopback_works,
    pretend_missing: "COURSE_NO_IPV6",
    install: "turn IPv6 on for loopback: sudo sysctl -w net.ipv6.conf.lo.disable_ipv6=0",
};

/// Whether a socket can be bound to `[::1]`: then `::1` exists.
fn ipv6_loopback_works() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

impl Facility {
    /// Whether it is here; if not, the same as [`Tool::is_here`]: with `CI`
    /// set an error, otherwise `false` after one `skipped: ...` line.
    pub fn is_here(&self) -> Result<bool> {
        let pretend = std::env::var(self.pretend_missing).is_ok_and(|v| v.trim() == "1");
        if !pretend && (self.probe)() {
            return Ok(true);
        }
        missing(self.name, self.install)
    }
}

/// Whether we run on CI: the environment variable `CI` is set (to anything
/// but an empty string, `0` or `false`).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}
