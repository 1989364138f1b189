//! Finding fresh lesson binaries.
//!
//! `cargo test` builds only the binaries of the package under test, and a
//! binary left in `target/` by an earlier build may be stale. So we ask cargo
//! itself: `escargot` runs `cargo build` for exactly one package and binary
//! and reports where the fresh file is. Each binary is built once per process
//! and profile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};

/// Which cargo profile to build a binary with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `cargo build`: what the tests run.
    Debug,
    /// `cargo build --release`: what the benchmark measures.
    Release,
}

impl Profile {
    /// The profile the calling crate was itself built with, so that a
    /// release benchmark measures release servers.
    pub fn of_this_build() -> Profile {
        if cfg!(debug_assertions) {
            Profile::Debug
        } else {
            Profile::Release
        }
    }
}

/// Builds (if needed) the debug binary `name` of the package of the same name
/// and returns its path.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    bin_path_in(name, Profile::Debug)
}

/// Builds (if needed) binary `name` of the package of the same name in
/// `profile` and returns its path.
pub fn bin_path_in(name: &str, profile: Profile) -> Result<PathBuf> {
    type Built = HashMap<(String, Profile), PathBuf>;
    static PATHS: OnceLock<Mutex<Built>> = OnceLock::new();
    let paths = PATHS.get_or_init(Default::default);
    // Holding the lock while cargo runs means concurrent tests wait for one
    // build instead of starting several cargo processes that would only queue
    // on cargo's own lock.
    let mut paths = paths
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let key = (name.to_string(), profile);
    if let Some(path) = paths.get(&key) {
        return Ok(path.clone());
    }
    let mut build = escargot::CargoBuild::new()
        .package(name)
        .bin(name)
        .manifest_path(workspace_dir().join("Cargo.toml"));
    if profile == Profile::Release {
        build = build.release();
    }
    let run = build
        .run()
        .with_context(|| format!("building {name} ({profile:?}) failed"))?;
    let path = run.path().to_path_buf();
    paths.insert(key, path.clone());
    Ok(path)
}

/// The workspace's top directory. This crate lives at `tests/kit/`.
/// `LOADGEN_WORKSPACE` overrides it, for a benchmark of another checkout.
pub fn workspace_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LOADGEN_WORKSPACE") {
        return PathBuf::from(dir);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}
