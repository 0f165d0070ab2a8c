//! Redrive server: captures failed RabbitMQ messages, stores them durably and
//! serves the API and UI to inspect, replay or discard them.

pub mod api;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod export;
pub mod fields;
pub mod healthcheck;
pub mod http;
pub mod import;
pub mod ingest;
pub mod instance;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod monitor;
pub mod policy;
pub mod replay;
pub mod retention;
pub mod retry;
pub mod service;
pub mod state;
pub mod store;
pub mod supervise;
pub mod topology;

#[cfg(test)]
mod layers;

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use broker::{AmqpPool, Management};
use config::Config;
use ingest::{CaptureStatus, Ingest};
use monitor::Monitor;
use replay::Publisher;
use service::Redrive;
use supervise::TaskHealth;

/// A started Redrive: the bound address and the tasks to wait for.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    http: JoinHandle<std::io::Result<()>>,
    ingest: JoinHandle<()>,
    jobs: JoinHandle<()>,
    purge: JoinHandle<()>,
    monitor: JoinHandle<()>,
    alerts: JoinHandle<()>,
    indexer: JoinHandle<()>,
    /// Released once every task above has ended.
    _instance: instance::InstanceLock,
}

impl Running {
    /// Waits until `shutdown` fires and both HTTP and ingest have stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        let http = self.http.await.context("http task panicked")?;
        self.ingest.await.context("ingest task panicked")?;
        self.jobs.await.context("job runner panicked")?;
        self.purge.await.context("purge task panicked")?;
        self.monitor.await.context("monitor panicked")?;
        self.alerts.await.context("alert delivery panicked")?;
        self.indexer.await.context("the search indexer panicked")?;
        http.context("http server failed")
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Opens the database, starts ingest and the HTTP server; both stop when
/// `shutdown` is cancelled.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let instance = instance::InstanceLock::acquire(config.store.database_url.expose_secret())?;
    let store = store::connect(config.store.database_url.expose_secret()).await?;
    if store
        .mask_index(config.mask.mask.clone())
        .await
        .context("applying REDRIVE_MASK to the search index")?
    {
        tracing::info!("the masking rules changed: the search index is being built again");
    }
    // This instance's name on its leases and replay claims.
    let holder: Arc<str> = format!(
        "{}-{}",
        config.store.instance_name,
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
    .into();
    // SQLite is one instance's (the lock above, or a private in-memory
    // database): the holders of any leases left are processes that died,
    // and their work resumes now rather than when the leases expire. On
    // PostgreSQL other holders may be alive; their leases run out instead.
    if store::Backend::of(config.store.database_url.expose_secret()) == Some(store::Backend::Sqlite) {
        let ended = store.clear_leases_except(&holder).await?;
        if ended > 0 {
            tracing::info!(ended, "leases of a previous run ended; its jobs resume");
        }
    }
    let leases = lease::Leases::new(store.clone(), holder.clone());
    let grouped = store.backfill_groups().await?;
    if grouped > 0 {
        tracing::info!(
            grouped,
            "fingerprinted messages stored before failure groups existed"
        );
    }
    let released = store
        .sweep_abandoned_replays(domain::now_ms() - jobs::replay_lease(&config).as_millis() as i64)
        .await?;
    if released > 0 {
        tracing::warn!(
            released,
            "replays interrupted by the last stop are flagged: outcome unknown"
        );
    }
    let metrics = metrics::Metrics::default();
    let management = Management::new(
        &config.broker.management_url,
        &config.broker.management_user,
        config.broker.management_password.expose_secret(),
    )
    .with_metrics(metrics.clone());
    let publisher = Publisher::new(
        AmqpPool::new(config.broker.amqp_url.expose_secret(), "replay")?.with_metrics(metrics.clone()),
        config.replay.confirm_timeout,
    );
    let capture = CaptureStatus::default();
    let indexer = ingest::indexer::IndexerWake::default();
    let ingest = Ingest {
        config: config.clone(),
        store: store.clone(),
        management: management.clone(),
        amqp: AmqpPool::new(config.broker.amqp_url.expose_secret(), "ingest")?.with_metrics(metrics.clone()),
        status: capture.clone(),
        indexer: indexer.clone(),
        metrics: metrics.clone(),
        leases: leases.clone(),
        rediscover: Default::default(),
    };
    let monitor = Monitor::new(config.clone(), store.clone(), management.clone(), capture.clone())
        .with_leases(leases.clone());
    let tasks = TaskHealth::default();
    let redrive = Redrive {
        config: config.clone(),
        store,
        management,
        publisher,
        monitor,
        capture,
        tasks: tasks.clone(),
        instance: holder,
        leases: leases.clone(),
        indexer: indexer.clone(),
        metrics,
    };

    let listener = tokio::net::TcpListener::bind(config.web.listen)
        .await
        .with_context(|| format!("binding {}", config.web.listen))?;
    let addr = listener.local_addr()?;
    let runner = jobs::Jobs {
        config: config.clone(),
        store: redrive.store.clone(),
        publisher: redrive.publisher.clone(),
        management: redrive.management.clone(),
        instance: redrive.instance.clone(),
        leases: leases.clone(),
        indexer: indexer.clone(),
        metrics: redrive.metrics.clone(),
    };
    let stop = shutdown.clone();
    let jobs = supervise::spawn("jobs", tasks.clone(), shutdown.clone(), move || {
        jobs::run(runner.clone(), stop.clone())
    });
    let (st, c, stop) = (redrive.store.clone(), config.clone(), shutdown.clone());
    let l = leases.clone();
    let purge = supervise::spawn("retention", tasks.clone(), shutdown.clone(), move || {
        retention::run(st.clone(), c.clone(), l.clone(), stop.clone())
    });
    let (m, stop) = (redrive.monitor.clone(), shutdown.clone());
    let monitor = supervise::spawn("monitor", tasks.clone(), shutdown.clone(), move || {
        m.clone().run(stop.clone())
    });
    let (st, stop) = (redrive.store.clone(), shutdown.clone());
    let l = leases.clone();
    let notifier = monitor::notify::Notifier::new(&config.notify, addr)?;
    let alerts = supervise::spawn("alerts", tasks.clone(), shutdown.clone(), move || {
        monitor::alerts::deliver(st.clone(), l.clone(), notifier.clone(), stop.clone())
    });
    let (st, stop) = (redrive.store.clone(), shutdown.clone());
    let index = supervise::spawn("indexer", tasks.clone(), shutdown.clone(), move || {
        ingest::indexer::run(st.clone(), indexer.clone(), stop.clone())
    });
    let auth = auth::Auth {
        directory: auth::Directory::new(redrive.management.clone(), config.web.auth_cache),
        throttle: auth::Throttle::default(),
        store: redrive.store.clone(),
        idle: config.web.session_idle,
    };
    let state = state::AppState {
        leptos_options: http::leptos_options(&config.web.site_root),
        redrive,
        auth,
        surface: auth::web::Surface::new(&config.web.allowed_hosts, &config.web.allowed_origins, addr),
    };
    let router = http::router(state, &config.web.site_root);
    // The peer address feeds sign-in throttling and the audit log.
    let serve = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let http = tokio::spawn(async move { serve.await });
    let stop = shutdown.clone();
    let ingest = supervise::spawn("ingest", tasks.clone(), shutdown.clone(), move || {
        ingest.clone().run(stop.clone())
    });
    Ok(Running {
        addr,
        shutdown,
        http,
        ingest,
        jobs,
        purge,
        monitor,
        alerts,
        indexer: index,
        _instance: instance,
    })
}
