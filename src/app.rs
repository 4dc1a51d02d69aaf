//! Wiring and lifecycle: builds the shared components from a `Config`, binds the listeners,
//! runs until shutdown, and swaps in a new configuration snapshot on reload.

use crate::admin::{self, Admin};
use crate::auth::TokenCache;
use crate::auth::introspect::Introspector;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::proxy::Forwarder;
use crate::server;
use arc_swap::ArcSwap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the introspection client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("cannot build the upstream client: {0}")]
    Upstream(String),
}

/// One data-plane worker: a current-thread runtime serving `listener` until `drain` flips.
fn run_worker(
    worker: usize,
    listener: std::net::TcpListener,
    gateway: Arc<ArcSwap<Gateway>>,
    mut drain: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker, error = %e, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(worker, error = %e, "cannot register the listener");
                return;
            }
        };
        server::serve(listener, gateway, worker, async move {
            let _ = drain.wait_for(|d| *d).await;
        })
        .await;
    });
}

/// A bound, not yet running gateway.
pub struct App {
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    gateway: Arc<ArcSwap<Gateway>>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Lets another task reload the configuration of a running `App`.
#[derive(Clone)]
pub struct ReloadHandle {
    gateway: Arc<ArcSwap<Gateway>>,
    metrics: Arc<Metrics>,
}

impl ReloadHandle {
    /// Swaps in a new configuration. Listener addresses cannot change without a restart.
    pub fn reload(&self, config: Config) -> Result<(), StartError> {
        let current = self.gateway.load_full();
        if config.listen != current.config().listen
            || config.admin_listen != current.config().admin_listen
        {
            tracing::warn!(
                "listen addresses changed in the new configuration; they apply after a restart"
            );
        }
        let next = build_gateway(config, Some(&current), &self.metrics)?;
        self.gateway.store(Arc::new(next));
        Ok(())
    }

    pub fn current(&self) -> Arc<Gateway> {
        self.gateway.load_full()
    }
}

/// Builds a gateway snapshot, reusing the previous one's cache and introspection client when
/// the backend and cache settings are unchanged (so a reload does not cold-start the cache),
/// and starting fresh otherwise (a cached verdict belongs to the backend that gave it).
fn build_gateway(
    config: Config,
    previous: Option<&Gateway>,
    metrics: &Arc<Metrics>,
) -> Result<Gateway, StartError> {
    let reusable = previous.filter(|p| {
        let (a, b) = (&p.config().introspection, &config.introspection);
        a.backend.identity() == b.backend.identity()
            && a.timeout == b.timeout
            && format!("{:?}", a.cache) == format!("{:?}", b.cache)
    });
    let (cache, introspector) = match reusable {
        Some(p) => (p.cache().clone(), p.introspector().clone()),
        None => (
            Arc::new(TokenCache::new(&config.introspection.cache)),
            Arc::new(Introspector::new(
                config.introspection.backend.clone(),
                config.introspection.timeout,
                metrics.clone(),
            )?),
        ),
    };
    // Upstreams may change with the file, so each snapshot has its own connection pools.
    let forwarder = Arc::new(
        Forwarder::new(&config.upstreams, config.workers, metrics.clone())
            .map_err(StartError::Upstream)?,
    );
    Ok(Gateway::new(
        config,
        cache,
        introspector,
        forwarder,
        metrics.clone(),
    ))
}

impl App {
    /// Binds the data-plane and admin listeners from the configuration.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let listen = config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen,
                source,
            })?;
        let admin_listener = match config.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        Self::with_listeners(config, listener, admin_listener)
    }

    /// Uses listeners bound by the caller (the demo and tests pick their own ports).
    pub fn with_listeners(
        config: Config,
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
    ) -> Result<Self, StartError> {
        let metrics = Arc::new(Metrics::new());
        let gateway = build_gateway(config, None, &metrics)?;
        Ok(Self {
            listener,
            admin_listener,
            gateway: Arc::new(ArcSwap::from_pointee(gateway)),
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.gateway.load().config().listen)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            gateway: self.gateway.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Runs until `shutdown` resolves, then stops accepting and drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let admin_task = self.admin_listener.map(|listener| {
            let admin = Arc::new(Admin {
                metrics: self.metrics.clone(),
                gateway: self.gateway.clone(),
                ready: self.ready.clone(),
            });
            tokio::spawn(admin::serve(listener, admin, stopped(stop_rx.clone())))
        });
        self.ready.store(true, Ordering::Release);
        tracing::info!(addr = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "tokengate listening");
        // The data plane: one OS thread per worker, each with its own single-threaded event
        // loop accepting from the shared listening socket, as nginx workers do. A request then
        // lives on one thread from accept to upstream response, with no work-stealing hand-offs.
        let workers = self.gateway.load().config().workers.max(1);
        let (drain_tx, drain_rx) = watch::channel(false);
        let mut threads = Vec::with_capacity(workers);
        match self.listener.into_std() {
            Ok(listener) => {
                for worker in 0..workers {
                    let (gateway, drain) = (self.gateway.clone(), drain_rx.clone());
                    let listener = match listener.try_clone() {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot share the listening socket");
                            break;
                        }
                    };
                    let spawned = std::thread::Builder::new()
                        .name(format!("tokengate-worker-{worker}"))
                        .spawn(move || run_worker(worker, listener, gateway, drain));
                    match spawned {
                        Ok(handle) => threads.push(handle),
                        Err(e) => tracing::error!(error = %e, "cannot start a worker thread"),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot hand the listening socket to the workers")
            }
        }
        shutdown.await;
        let _ = drain_tx.send(true);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        self.ready.store(false, Ordering::Release);
        let _ = stop_tx.send(true);
        if let Some(task) = admin_task {
            let _ = task.await;
        }
    }
}
