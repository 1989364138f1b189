//! Which names a client may store a file under.
//!
//! The name arrives from the network, so it is hostile until checked. A name
//! that is allowed here can only ever mean one file directly inside the
//! storage folder: no folder part, nothing that climbs out (`..`), nothing
//! the operating system would read as something else.

// ANCHOR: check-name
/// The longest name, in bytes: what Linux, macOS and Windows allow for one
/// file name.
pub const MAX_NAME: usize = 255;

/// Checks that `name` is one plain file name, or says why it is not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "the name is {} bytes long, over the limit of {MAX_NAME}",
            name.len()
        ));
    }
    // `/` and `\` separate folders (`\` on Windows), so `../../etc/passwd` and
    // `a\b` are paths, not names. NUL ends a string for the system, and control
    // characters (a newline, an escape) would garble every log and listing.
    if let Some(bad) = name
        .chars()
        .find(|&c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(format!("the name contains {bad:?}, which is not allowed"));
    }
    // `.` and `..` are the folder itself and its parent. Every other name that
    // starts with a dot is kept for the server's own use (`.partial/`, the
    // interrupted uploads), so no client can reach into it.
    if name.starts_with('.') {
        return Err("a name may not start with '.'".to_string());
    }
    Ok(())
}
// ANCHOR_END: check-name
