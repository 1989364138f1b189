//! Lesson 06's chat protocol, written once.
//!
//! Three chat servers in this course speak it: lesson 06's with threads,
//! lesson 10's with an event loop, lesson 11's with async tasks. They differ
//! in how they read, queue and write lines; what a line *means* is the same
//! for all of them, and it lives here: the limits, the notices the server
//! sends, how a line from one member is cleaned before the others see it,
//! and the commands `/nick`, `/who` and `/quit`.
//!
//! This library never touches a socket. A server reads a line, hands it to
//! [`handle_line`] together with a [`Roster`] (its own way of looking up and
//! changing names), and gets back an [`Answer`]: which lines to send to whom,
//! and whether the member leaves. Sending them is the server's job.

// ANCHOR: imports
use std::net::SocketAddr;
use std::time::Duration;
// ANCHOR_END: imports

// ANCHOR: limits
/// The longest line a member may send, in bytes, not counting its `\n`.
/// A longer one gets [`too_long`] and the server hangs up.
pub const MAX_LINE: usize = 8192;

/// How many members may be in the room at once, unless `--max-clients`
/// says otherwise. The next caller gets [`SERVER_FULL`] and is hung up on.
pub const MAX_CLIENTS: usize = 100;

/// How many lines may wait for one member (in their queue, beyond what the
/// system's socket buffers already hold).
pub const QUEUE_LINES: usize = 256;

/// How long a line may wait for a member, from the moment it is queued for
/// them until their socket has taken all of it. A member who takes longer
/// is too slow for the room, and the server hangs up on them. The same
/// deadline bounds a member's last lines when they leave, and the goodbye
/// at Ctrl-C.
pub const SEND_DEADLINE: Duration = Duration::from_secs(5);

/// The longest line a *client* accepts from the server. A chat line is at
/// most a name and [`MAX_LINE`] bytes in which every byte may have become
/// the three bytes of `�`; `/who` in a big room is longer. A client that
/// bounds its reads by this cannot be made to grow without limit by a
/// broken or hostile server.
pub const MAX_SERVER_LINE: usize = 1024 * 1024;
// ANCHOR_END: limits

// ANCHOR: notices
/// The first line a new member gets: who they are, and the commands.
pub fn welcome(name: &str) -> String {
    format!("* welcome, you are {name}; commands: /nick NAME, /who, /quit")
}

/// To everybody else, when somebody comes in or goes.
pub fn joined(name: &str) -> String {
    format!("* {name} joined")
}

pub fn left(name: &str) -> String {
    format!("* {name} left")
}

/// What a member who sent a line over [`MAX_LINE`] gets, before the hang-up.
pub fn too_long() -> String {
    format!("* line too long (max {MAX_LINE} bytes), disconnecting")
}

/// The one line a caller gets when the room is full.
pub const SERVER_FULL: &str = "* server full";

/// The last line everybody gets when the server stops (Ctrl-C).
pub const SHUTTING_DOWN: &str = "* server shutting down";
// ANCHOR_END: notices

// ANCHOR: clean
/// Turns the bytes of one line from a member into the text the others see.
///
/// Bytes that are not UTF-8 become `�`, and so does every control character
/// but tab: the others' terminals would obey an Escape sequence (`\x1b[2J`
/// clears the screen), so one member could erase or repaint everybody's
/// screen.
pub fn clean(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}
// ANCHOR_END: clean

// ANCHOR: roster
/// The names in the room, as the server keeps them: what the commands need
/// to ask or change. Each server implements it for "the room, seen by the
/// member whose line we handle"; lesson 06 locks its map inside each call.
pub trait Roster {
    /// The name of the member whose line this is.
    fn my_name(&self) -> String;
    /// The names of everybody in the room, that member included.
    fn names(&self) -> Vec<String>;
    /// Gives that member the name `wanted` unless somebody else has it, in
    /// one step, so that two members can never take the same name. Returns
    /// whether it did.
    fn take_name(&mut self, wanted: &str) -> bool;
}

/// Who a line of an [`Answer`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    /// The member whose line it was.
    Me,
    /// Everybody in the room but them.
    Others,
}

/// What the server must do about one line: send these lines, in this
/// order, and then, if `leave` says why, take the member out of the room.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub lines: Vec<(To, String)>,
    pub leave: Option<&'static str>,
}

impl Answer {
    fn to(&mut self, to: To, line: String) {
        self.lines.push((to, line));
    }
}
// ANCHOR_END: roster

// ANCHOR: handle-line
/// Acts on one line from the member at `peer` (without its `\n`): logs it,
/// and answers it. Everything that is not a command goes to the others,
/// as `NAME: text`; nobody hears their own lines back.
pub fn handle_line(roster: &mut impl Roster, peer: SocketAddr, line: &[u8]) -> Answer {
    // One `\r` before the `\n`: the line was typed on Windows, or in telnet.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    println!("client {peer} said {}", shared::show(line));
    let text = clean(line);
    let mut answer = Answer::default();
    // The first word decides. Only an empty *line* says nothing: " hi" has
    // an empty first word, and is a line like any other.
    let (command, rest) = text.split_once(' ').unwrap_or((&*text, ""));
    match command {
        "/quit" => {
            answer.to(To::Me, "* bye".to_string());
            answer.leave = Some("left with /quit");
        }
        "/who" => {
            let mut names = roster.names();
            names.sort();
            let list = format!("* {} in the room: {}", names.len(), names.join(", "));
            answer.to(To::Me, list);
        }
        "/nick" => nick(roster, peer, rest.trim(), &mut answer),
        _ if command.starts_with('/') => {
            let help = format!("* unknown command {command}; try /nick NAME, /who or /quit");
            answer.to(To::Me, help);
        }
        _ if text.is_empty() => {}
        _ => answer.to(To::Others, format!("{}: {text}", roster.my_name())),
    }
    answer
}
// ANCHOR_END: handle-line

// ANCHOR: nick
/// `/nick NAME`: a name is 1 to 20 letters (Chinese letters are letters),
/// digits, `_` or `-`. So it never contains `:` or `.`, and can never be
/// mistaken for a member still named by their address.
pub fn is_a_name(wanted: &str) -> bool {
    (1..=20).contains(&wanted.chars().count())
        && wanted
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

fn nick(roster: &mut impl Roster, peer: SocketAddr, wanted: &str, answer: &mut Answer) {
    if !is_a_name(wanted) {
        let rule = "* a name is 1 to 20 letters, digits, _ or -";
        answer.to(To::Me, rule.to_string());
        return;
    }
    let old = roster.my_name();
    if !roster.take_name(wanted) {
        answer.to(To::Me, format!("* the name {wanted} is taken"));
        return;
    }
    // The others first: once the member reads "you are now", everybody
    // else already has the news in their queue.
    println!("client {peer} is now {wanted}");
    answer.to(To::Others, format!("* {old} is now {wanted}"));
    answer.to(To::Me, format!("* you are now {wanted}"));
}
// ANCHOR_END: nick
