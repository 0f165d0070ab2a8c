//! Redrive server: captures failed RabbitMQ messages, stores them durably and
//! serves the API and UI to inspect, replay or discard them.

pub mod api;
pub mod broker;
pub mod config;
pub mod export;
pub mod fields;
pub mod http;
pub mod import;
pub mod ingest;
pub mod jobs;
pub mod monitor;
pub mod policy;
pub mod replay;
pub mod retention;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use broker::{AmqpPool, Management};
use config::Config;
use ingest::Ingest;
use monitor::Monitor;
use replay::Publisher;
use service::Redrive;
use store::Store;

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
    let store = Store::connect(&config.database_url).await?;
    let grouped = store.backfill_groups().await?;
    if grouped > 0 {
        tracing::info!(
            grouped,
            "fingerprinted messages stored before failure groups existed"
        );
    }
    let released = store.release_interrupted_replays().await?;
    if released > 0 {
        tracing::warn!(
            released,
            "replays interrupted by the last stop were set back to failed"
        );
    }
    let management = Management::new(
        &config.management_url,
        &config.management_user,
        &config.management_password,
    );
    let publisher = Publisher::new(AmqpPool::new(&config.amqp_url, "replay")?, config.confirm_timeout);
    let ingest = Ingest {
        config: config.clone(),
        store: store.clone(),
        management: management.clone(),
        amqp: AmqpPool::new(&config.amqp_url, "ingest")?,
    };
    let monitor = Monitor::new(config.clone(), store.clone(), management.clone());
    let redrive = Redrive {
        config: config.clone(),
        store,
        management,
        publisher,
        monitor,
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let jobs = tokio::spawn(jobs::run(redrive.clone(), shutdown.clone()));
    let purge = tokio::spawn(retention::run(
        redrive.store.clone(),
        config.clone(),
        shutdown.clone(),
    ));
    let monitor = tokio::spawn(redrive.monitor.clone().run(shutdown.clone()));
    let alerts = tokio::spawn(monitor::alerts::deliver(redrive.store.clone(), shutdown.clone()));
    let router = http::router(redrive, &config.site_root);
    let serve = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let http = tokio::spawn(async move { serve.await });
    let ingest = tokio::spawn(ingest.run(shutdown.clone()));
    Ok(Running {
        addr,
        shutdown,
        http,
        ingest,
        jobs,
        purge,
        monitor,
        alerts,
    })
}
