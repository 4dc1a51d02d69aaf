//! Process signals (DESIGN.md section 6): SIGTERM and SIGINT stop accepting and drain;
//! SIGHUP reloads the configuration, keeping the old one if the new one is invalid.

use crate::app::ReloadHandle;
use crate::config::Config;
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown() {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; waiting for Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Spawns a task that reloads `path` on every SIGHUP.
pub fn reload_on_sighup(handle: ReloadHandle, path: PathBuf) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; configuration reload is disabled");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match Config::load(&path) {
                Ok(config) => match handle.reload(config) {
                    Ok(()) => tracing::info!(file = %path.display(), "configuration reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "reload failed; keeping the previous configuration")
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "invalid configuration; keeping the previous one")
                }
            }
        }
    });
}
