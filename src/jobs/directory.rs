//! Keeps the directory in use current while the node runs: reloads the directory file on
//! `SIGHUP` and whenever the file changes (polled), with a `directory::Watcher`; audits each
//! install (`directory.install`) and each refused file (`directory.refuse`).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};

use std::sync::Arc;

use crate::audit::{Actor, Event, Outcome};
use crate::crypto::PublicKey;
use crate::directory::{DirectoryHandle, WatchEvent, Watcher};
use crate::storage::Store;
use crate::sync::LocalNode;

/// Where the watch records what it did: the node's store and its clock.
pub type AuditTo = Option<(Store, Arc<LocalNode>)>;

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
pub async fn run(
    handle: DirectoryHandle,
    path: PathBuf,
    authority: PublicKey,
    interval: Duration,
    audit: AuditTo,
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
    let mut state = Watcher::default();
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
                if let Some(e) = state.poll(&handle, &path, &authority).await {
                    record(&audit, &path, e).await;
                }
            }
            received = next_hangup(&mut hangup) => {
                if received {
                    tracing::info!(path = %path.display(), "SIGHUP: reloading the directory");
                    if let Some(e) = state.reload_now(&handle, &path, &authority).await {
                        record(&audit, &path, e).await;
                    }
                } else {
                    tracing::warn!("the SIGHUP stream ended; the directory file is only polled");
                    hangup = None;
                }
            }
        }
    }
}

/// Audits an install or a refused file; a failure to record it is logged.
async fn record(audit: &AuditTo, path: &std::path::Path, event: WatchEvent) {
    let Some((store, node)) = audit else {
        return;
    };
    let file = path.display().to_string();
    let event = match event {
        WatchEvent::Installed {
            old_serial,
            new_serial,
        } => Event::new(Actor::job("directory"), "directory.install", Outcome::Ok).details(
            serde_json::json!({"file": file, "old_serial": old_serial, "new_serial": new_serial}),
        ),
        WatchEvent::Refused { message } => Event::new(
            Actor::job("directory"),
            "directory.refuse",
            Outcome::Rejected,
        )
        .details(serde_json::json!({"file": file, "reason": message})),
    };
    let node = node.clone();
    let r = store
        .run(move |c| {
            crate::storage::transaction(c, |c| {
                crate::audit::append(c, node.clock.now(), chrono::Utc::now(), &event)
            })
        })
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not audit a directory reload");
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

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Instant;

    use chrono::Utc;

    use super::*;
    use crate::crypto::SigningKey;
    use crate::directory::testutil::{now, sample_doc};
    use crate::directory::{sign, write_signed, Directory};

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
        let task = tokio::spawn(run(
            fx.handle.clone(),
            fx.path.clone(),
            fx.key.public_key(),
            Duration::from_millis(10),
            None,
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
        let task = tokio::spawn(run(
            fx.handle.clone(),
            fx.path.clone(),
            fx.key.public_key(),
            hour,
            None,
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
        let task = tokio::spawn(run(
            fx.handle.clone(),
            fx.path.clone(),
            fx.key.public_key(),
            Duration::ZERO,
            None,
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
