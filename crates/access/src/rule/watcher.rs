//! Hot reload of `file://` rule repositories, as Oathkeeper's fsnotify watcher does it.
//!
//! Uses the `notify` crate without default features (on Linux: inotify only, no polling
//! thread, no macOS backends): a change is seen within milliseconds and costs nothing while
//! idle, where an mtime poll would trade latency against wake-ups. The *directory* of each
//! file is watched, not the file: editors save by writing a temporary file and renaming it
//! over the original, and Kubernetes swaps a ConfigMap by re-pointing the `..data` symlink —
//! both replace the inode a file watch would be attached to.
//!
//! Events are debounced (a save is several events) and then every watched file is re-read;
//! only files whose text changed are re-parsed, so unrelated activity in the directory costs a
//! read and nothing else. What happens to a bad edit is decided by
//! [`crate::Access::reload_files`]: the last good rules stay in force.
//!
//! The config file (`oathkeeper.yml`) is watched the same way, by its own watcher; a change
//! goes to [`crate::Access::reload_config_file`].

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::repository;
use crate::{Access, AccessConfig, Inner};

/// How long the directory must be quiet before the files are re-read.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// What a change leads to.
enum Target {
    /// Re-read the `file://` rule repositories.
    Rules,
    /// Re-load the config file at this path.
    Config(PathBuf),
}

/// Starts watching `config`'s `file://` repositories; `None` when there are none. The
/// returned watcher must be kept alive (it is stored in [`Inner`]); dropping it ends the
/// reload task.
pub(crate) fn start(
    access: &Access,
    config: &AccessConfig,
) -> Result<Option<RecommendedWatcher>, notify::Error> {
    let files: Vec<PathBuf> = config
        .repositories
        .iter()
        .filter_map(|l| repository::file_path(l))
        .collect();
    if files.is_empty() {
        return Ok(None);
    }
    watch(access, &files, Target::Rules).map(Some)
}

/// Starts watching the config file at `path`.
pub(crate) fn start_config(
    access: &Access,
    path: PathBuf,
) -> Result<RecommendedWatcher, notify::Error> {
    watch(
        access,
        std::slice::from_ref(&path),
        Target::Config(path.clone()),
    )
}

fn watch(
    access: &Access,
    files: &[PathBuf],
    target: Target,
) -> Result<RecommendedWatcher, notify::Error> {
    let names: HashSet<OsString> = files
        .iter()
        .filter_map(|p| p.file_name().map(ToOwned::to_owned))
        .collect();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => {
                let reads = matches!(e.kind, EventKind::Access(kind)
                    if kind != AccessKind::Close(AccessMode::Write));
                !reads
                    && e.paths.iter().any(|p| {
                        p.file_name().is_some_and(|n| {
                            // `..data` and friends: a Kubernetes ConfigMap update.
                            names.contains(n) || n.to_string_lossy().starts_with("..")
                        })
                    })
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching access files; re-reading them");
                true
            }
        };
        if relevant {
            // The receiver is gone only when the access proxy itself is.
            let _ = tx.send(());
        }
    })?;
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    match &target {
        Target::Rules => {
            tracing::info!(directories = ?dirs, "watching access rule files for changes");
        }
        Target::Config(path) => {
            tracing::info!(config = %path.display(), "watching the access config file for changes");
        }
    }
    tokio::spawn(run(Arc::downgrade(&access.inner), rx, target));
    Ok(watcher)
}

/// Waits for changes and reloads; ends when the watcher (and with it the channel's sender)
/// is dropped, or the access proxy is.
async fn run(access: Weak<Inner>, mut changes: mpsc::UnboundedReceiver<()>, target: Target) {
    while changes.recv().await.is_some() {
        loop {
            match tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                Ok(Some(())) => {}
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let Some(inner) = access.upgrade() else {
            return;
        };
        let access = Access { inner };
        match &target {
            Target::Rules => access.reload_files().await,
            Target::Config(path) => access.reload_config_file(path).await,
        }
    }
}
