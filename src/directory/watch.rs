//! Keeping the directory in use current: a [`Watcher`] reloads the directory file when it has
//! changed (or when asked, as on `SIGHUP`), through [`DirectoryHandle::reload_from`], so every
//! rule of a reload holds (authority signature, expiry, validation, no rollback; on error the
//! current directory stays). It logs with `tracing` (each install at `info`, each refused file
//! at `warn`), never panics, and returns what it did ([`WatchEvent`]) so the loop that polls it
//! and listens for `SIGHUP` — a job (`jobs::directory`) — can audit it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use chrono::Utc;

use super::{DirectoryHandle, ReloadOutcome};
use crate::crypto::PublicKey;

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    dev: u64,
    ino: u64,
}

async fn file_stamp(path: &Path) -> std::io::Result<FileStamp> {
    let meta = tokio::fs::metadata(path).await?;
    Ok(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// What a reload did, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A new directory is in use.
    Installed { old_serial: u64, new_serial: u64 },
    /// The file was refused; the current directory stays.
    Refused { message: String },
}

/// What a watch remembers between checks of the directory file.
#[derive(Debug, Default)]
pub struct Watcher {
    /// Stamp of the file as last loaded successfully (`Replaced` or `Unchanged`); `None` before
    /// the first success. While it matches the file, polls do nothing.
    loaded: Option<FileStamp>,
    /// Message of the last failure and the stamp of the file that failed: a poll that finds
    /// the same file failing the same way again logs at `debug` and reports nothing (a changed
    /// file, or a reload asked for by `SIGHUP`, is always reported).
    last_error: Option<(String, Option<FileStamp>)>,
    /// Serial of the expired directory last reported, to report each once.
    expired_reported: Option<u64>,
    /// Serial of the directory last warned about as expiring soon, to warn once per serial.
    expiry_warned: Option<u64>,
}

/// A directory expiring within this many days is warned about (once per serial; the metric
/// `hukou_sync_directory_expires_in_seconds` shows the time left all along).
pub const EXPIRY_WARNING_DAYS: i64 = 14;

impl Watcher {
    /// Reloads the file if it changed since it was last loaded (a failed reload is retried at
    /// every poll), and reports once per serial that the directory in use has expired.
    pub async fn poll(
        &mut self,
        handle: &DirectoryHandle,
        path: &Path,
        authority: &PublicKey,
    ) -> Option<WatchEvent> {
        let event = match file_stamp(path).await {
            Ok(stamp) if self.loaded == Some(stamp) => None,
            Ok(stamp) => {
                self.reload(handle, path, authority, Some(stamp), false)
                    .await
            }
            Err(e) => self.failed(
                path,
                format!("cannot inspect the directory file: {e}"),
                None,
                false,
            ),
        };
        self.report_expiry(handle);
        event
    }

    /// Reloads the file now, changed or not.
    pub async fn reload_now(
        &mut self,
        handle: &DirectoryHandle,
        path: &Path,
        authority: &PublicKey,
    ) -> Option<WatchEvent> {
        let stamp = file_stamp(path).await.ok();
        self.reload(handle, path, authority, stamp, true).await
    }

    /// Reloads now; `stamp` is the file's stamp taken before reading it (so a change during
    /// the read shows as a new stamp at the next poll).
    async fn reload(
        &mut self,
        handle: &DirectoryHandle,
        path: &Path,
        authority: &PublicKey,
        stamp: Option<FileStamp>,
        asked: bool,
    ) -> Option<WatchEvent> {
        let (h, p, a) = (handle.clone(), path.to_path_buf(), *authority);
        let result = tokio::task::spawn_blocking(move || h.reload_from(&p, &a, Utc::now())).await;
        match result {
            Ok(Ok(outcome)) => {
                self.loaded = stamp;
                self.last_error = None;
                match outcome {
                    ReloadOutcome::Unchanged => {
                        tracing::debug!(path = %path.display(), "directory file unchanged");
                        None
                    }
                    ReloadOutcome::Replaced {
                        old_serial,
                        new_serial,
                    } => {
                        tracing::info!(
                            path = %path.display(),
                            old_serial,
                            new_serial,
                            "installed a new directory"
                        );
                        Some(WatchEvent::Installed {
                            old_serial,
                            new_serial,
                        })
                    }
                }
            }
            Ok(Err(e)) => self.failed(
                path,
                format!("directory reload refused; keeping the current directory: {e}"),
                stamp,
                asked,
            ),
            Err(e) => self.failed(
                path,
                format!("directory reload task failed: {e}"),
                stamp,
                asked,
            ),
        }
    }

    /// Logs a failed reload at `warn` and reports it — unless it is a poll finding the same
    /// file failing the same way as last time (then `debug`, nothing reported).
    fn failed(
        &mut self,
        path: &Path,
        message: String,
        stamp: Option<FileStamp>,
        asked: bool,
    ) -> Option<WatchEvent> {
        let repeated = !asked
            && self
                .last_error
                .as_ref()
                .is_some_and(|(m, s)| *m == message && *s == stamp);
        if repeated {
            tracing::debug!(path = %path.display(), "{message}");
            return None;
        }
        tracing::warn!(path = %path.display(), "{message}");
        self.last_error = Some((message.clone(), stamp));
        Some(WatchEvent::Refused { message })
    }

    fn report_expiry(&mut self, handle: &DirectoryHandle) {
        let current = handle.current();
        let now = Utc::now();
        let left = current.expires_at() - now;
        if !current.is_expired(now)
            && left <= chrono::Duration::days(EXPIRY_WARNING_DAYS)
            && self.expiry_warned != Some(current.serial())
        {
            tracing::warn!(
                serial = current.serial(),
                expires_at = %current.expires_at(),
                days_left = left.num_days(),
                "the directory in use expires soon; publish a newer serial before it does (every                  peer is refused after that)"
            );
            self.expiry_warned = Some(current.serial());
        }
        if current.is_expired(now) && self.expired_reported != Some(current.serial()) {
            tracing::error!(
                serial = current.serial(),
                expires_at = %current.expires_at(),
                "the directory in use has expired; every peer is refused until a newer directory \
                 is installed"
            );
            self.expired_reported = Some(current.serial());
        }
    }
}
