//! The test kit: the plumbing every test of the course needs, in one place.
//!
//! `course-tests` (the end-to-end tests, one file per lesson) and `loadgen`
//! (the benchmark) both use it, so that there is one way to build a lesson
//! binary, start a server and learn its port, wait with a deadline, play a
//! chat client, read a process's memory, make random bytes, and skip a test
//! whose outside tool is missing.
//!
//! Every wait here has a deadline; nothing sleeps and hopes. The one place
//! where time itself is waited for (to show that something does *not*
//! happen) is [`net::within`].

pub mod bins;
pub mod chaos;
pub mod chat;
pub mod frames;
pub mod limits;
pub mod net;
pub mod procs;
pub mod rng;
pub mod sys;
pub mod tools;
#[cfg(unix)]
pub mod unix;

pub use bins::{Profile, bin_path, bin_path_in, workspace_dir};
pub use chat::Chatter;
pub use limits::{Limit, open_to_any_user};
pub use net::{
    PlainServer, assert_no_datagram, assert_silent, connect, exchange, read_exactly, read_to_close,
    read_until_hung_up, reset, still_on_the_line, udp_ask, udp_socket, unused_addr,
    unused_udp_addr,
};
pub use procs::{Finished, PYTHON, Proc, Server, parse_listening, python};
pub use rng::{Rng, env_number};
pub use sys::{Memory, cpu_times, memory, threads};
/// A fresh folder under the system's temporary folder, removed with its
/// contents when dropped (`TempDir::with_prefix("lesson08-roundtrip-")`):
/// for servers that keep files.
pub use tempfile::TempDir;
pub use tools::{Facility, Tool};
#[cfg(unix)]
pub use unix::{UnixServer, connect_unix};

use std::time::Duration;

/// How long any single wait may take before the test fails. Generous, so a
/// loaded CI machine does not make the suite flaky; a passing test never
/// waits this long.
pub const TIMEOUT: Duration = Duration::from_secs(20);
