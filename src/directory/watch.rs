//! Keeping the directory in use current while the node runs: [`watch`] reloads the directory
//! file on `SIGHUP` and whenever the file changes (polled), through
//! [`DirectoryHandle::reload_from`], so every rule of a reload holds (authority signature,
//! expiry, validation, no rollback; on error the current directory stays). It logs with
//! `tracing` and never panics.

use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::signal::unix::{signal, Signal, SignalKind};

use super::{DirectoryHandle, ReloadOutcome};
use crate::crypto::PublicKey;

/// Shortest poll period used, whatever is asked (a zero period would spin, and
/// `tokio::time::interval` refuses it).
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Reloads the directory at `path` into `handle` when the process receives `SIGHUP` and when
/// the file's modification time (or size, or inode, as when a new file is renamed over it)
/// changes, checked every `interval`. Stops when `shutdown` resolves.
///
/// The file is checked once at start (a change made between start-up loading and the watch
/// is not missed). A reload that fails is logged (at `warn` once per distinct error) and
/// retried at each poll until the file yields a directory, so a file caught half-written is
/// picked up once complete. When the directory in use has expired, an `error` is logged once
/// per serial: peers are refused until a newer directory is installed.
///
/// If `SIGHUP` cannot be subscribed to, this logs a warning and keeps polling.
pub async fn watch(
    handle: DirectoryHandle,
    path: PathBuf,
    authority: PublicKey,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot subscribe to SIGHUP; the directory file is only polled");
            None
        }
    };
    let mut ticker = tokio::time::interval(interval.max(MIN_INTERVAL));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = WatchState::default();
    tokio::pin!(shutdown);
    tracing::info!(path = %path.display(), ?interval, "watching the directory file");

    loop {
        // Biased: shutdown first; and the first tick (ready at once) runs the start-up check
        // before anything else.
        tokio::select! {
            biased;
            () = &mut shutdown => {
                tracing::info!(path = %path.display(), "directory watch stopped");
                return;
            }
            _ = ticker.tick() => {
                state.poll(&handle, &path, &authority).await;
            }
            received = next_hangup(&mut hangup) => {
                if received {
                    tracing::info!(path = %path.display(), "SIGHUP: reloading the directory");
                    state.reload(&handle, &path, &authority, file_stamp(&path).await.ok()).await;
                } else {
                    tracing::warn!("the SIGHUP stream ended; the directory file is only polled");
                    hangup = None;
                }
            }
        }
    }
}

/// The next `SIGHUP`: `true` when one arrived, `false` when the stream ended; never resolves
/// without a stream.
async fn next_hangup(hangup: &mut Option<Signal>) -> bool {
    match hangup {
        Some(s) => s.recv().await.is_some(),
        None => std::future::pending().await,
    }
}

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

#[derive(Debug, Default)]
struct WatchState {
    /// Stamp of the file as last loaded successfully (`Replaced` or `Unchanged`); `None` before
    /// the first success. While it matches the file, polls do nothing.
    loaded: Option<FileStamp>,
    /// Message of the last failure, to log a repeated failure at `debug` rather than `warn`.
    last_error: Option<String>,
    /// Serial of the expired directory last reported, to report each once.
    expired_reported: Option<u64>,
}

impl WatchState {
    async fn poll(&mut self, handle: &DirectoryHandle, path: &Path, authority: &PublicKey) {
        match file_stamp(path).await {
            Ok(stamp) if self.loaded == Some(stamp) => {}
            Ok(stamp) => self.reload(handle, path, authority, Some(stamp)).await,
            Err(e) => self.failed(path, format!("cannot inspect the directory file: {e}")),
        }
        self.report_expiry(handle);
    }

    /// Reloads now; `stamp` is the file's stamp taken before reading it (so a change during
    /// the read shows as a new stamp at the next poll).
    async fn reload(
        &mut self,
        handle: &DirectoryHandle,
        path: &Path,
        authority: &PublicKey,
        stamp: Option<FileStamp>,
    ) {
        let (h, p, a) = (handle.clone(), path.to_path_buf(), *authority);
        let result = tokio::task::spawn_blocking(move || h.reload_from(&p, &a, Utc::now())).await;
        match result {
            Ok(Ok(outcome)) => {
                self.loaded = stamp;
                self.last_error = None;
                match outcome {
                    ReloadOutcome::Unchanged => {
                        tracing::debug!(path = %path.display(), "directory file unchanged");
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
                    }
                }
            }
            Ok(Err(e)) => self.failed(
                path,
                format!("directory reload refused; keeping the current directory: {e}"),
            ),
            Err(e) => self.failed(path, format!("directory reload task failed: {e}")),
        }
    }

    fn failed(&mut self, path: &Path, message: String) {
        if self.last_error.as_deref() == Some(message.as_str()) {
            tracing::debug!(path = %path.display(), "{message}");
        } else {
            tracing::warn!(path = %path.display(), "{message}");
            self.last_error = Some(message);
        }
    }

    fn report_expiry(&mut self, handle: &DirectoryHandle) {
        let current = handle.current();
        if current.is_expired(Utc::now()) && self.expired_reported != Some(current.serial()) {
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

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Instant;

    use super::super::testutil::{now, sample_doc};
    use super::super::{sign, write_signed, Directory};
    use super::*;
    use crate::crypto::SigningKey;

    /// Waits (polling every few milliseconds, at most 20 s) until the handle's serial is
    /// `serial`; `nudge` runs before each check.
    async fn await_serial(handle: &DirectoryHandle, serial: u64, mut nudge: impl FnMut()) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            nudge();
            if handle.current().serial() == serial {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "serial {serial} not installed; still {}",
                handle.current().serial()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        key: SigningKey,
        handle: DirectoryHandle,
    }

    impl Fixture {
        fn new() -> Fixture {
            let key = SigningKey::generate().unwrap().0;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("directory.json");
            write_signed(&path, &sign(&sample_doc(1), &key).unwrap()).unwrap();
            // The sample expires in December 2026; load it at the tests' fixed "now". The watch
            // uses the real clock, so `write` makes documents valid for that.
            let d = Directory::load(&path, &key.public_key(), now()).unwrap();
            Fixture {
                _dir: dir,
                path,
                key,
                handle: DirectoryHandle::new(d),
            }
        }

        fn write(&self, serial: u64) {
            let mut doc = sample_doc(serial);
            // Valid for the real clock too, so the watch (which uses it) accepts it.
            doc.issued_at = Utc::now() - chrono::Duration::hours(1);
            doc.expires_at = Utc::now() + chrono::Duration::days(30);
            write_signed(&self.path, &sign(&doc, &self.key).unwrap()).unwrap();
        }
    }

    #[tokio::test]
    async fn rewritten_file_is_picked_up_and_shutdown_stops() {
        let fx = Fixture::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch(
            fx.handle.clone(),
            fx.path.clone(),
            fx.key.public_key(),
            Duration::from_millis(10),
            async {
                let _ = stopped.await;
            },
        ));

        fx.write(2);
        await_serial(&fx.handle, 2, || {}).await;
        fx.write(5);
        await_serial(&fx.handle, 5, || {}).await;

        // A broken file and a rollback leave serial 5 in place; a fixed file is picked up.
        std::fs::write(&fx.path, b"{ half a direct").unwrap();
        fx.write(3);
        fx.write(6);
        await_serial(&fx.handle, 6, || {}).await;

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("watch stops on shutdown")
            .expect("watch does not panic");
    }

    #[tokio::test]
    async fn sighup_reloads() {
        // Subscribe first: once tokio's handler is installed, a SIGHUP no longer terminates the
        // test process, whether or not the watch has subscribed yet.
        let _guard = signal(SignalKind::hangup()).unwrap();
        let fx = Fixture::new();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let hour = Duration::from_secs(3600);
        let task = tokio::spawn(watch(
            fx.handle.clone(),
            fx.path.clone(),
            fx.key.public_key(),
            hour,
            async {
                let _ = stopped.await;
            },
        ));
        let hup = || {
            let status = Command::new("kill")
                .args(["-HUP", &std::process::id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        };

        // Serial 2 may come from the start-up check or a SIGHUP; either way the start-up check
        // is done once it is seen, and with an hour's poll period only SIGHUP remains.
        fx.write(2);
        await_serial(&fx.handle, 2, hup).await;
        fx.write(3);
        await_serial(&fx.handle, 3, hup).await;

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("watch stops on shutdown")
            .expect("watch does not panic");
    }

    #[tokio::test]
    async fn zero_interval_does_not_panic() {
        let fx = Fixture::new();
        fx.write(4);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watch(
            fx.handle.clone(),
            fx.path.clone(),
            fx.key.public_key(),
            Duration::ZERO,
            async {
                let _ = stopped.await;
            },
        ));
        await_serial(&fx.handle, 4, || {}).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .unwrap()
            .unwrap();
    }
}
