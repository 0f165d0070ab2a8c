use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use secrecy::ExposeSecret;
use server::cli::{Cli, Command};
use server::config::LogFormat;

fn main() -> anyhow::Result<()> {
    // Before the runtime: arenas are made by threads as they first allocate.
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// glibc gives each thread that meets a locked arena a new one, up to eight
/// per core, and each keeps the memory freed into it. Redrive runs a thread
/// per SQLite connection beside the runtime's, so through a
/// million-message ingest its peak RSS was 167 MB with the default and
/// 117 MB with two arenas, at the same ingest rate (`bench_browse
/// 1000000`, back to back). `MALLOC_ARENA_MAX` in the environment still
/// wins: glibc reads it at start-up and this leaves it alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a tuning parameter of the allocator;
        // it is called before any other thread of this process exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn run() -> anyhow::Result<()> {
    // lapin logs a returned message whole (body included) at `warn`: a
    // publisher's data must not reach the log whatever RUST_LOG says.
    let quiet_returns = "lapin::returned_messages=error".parse()?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,server=info".into())
        .add_directive(quiet_returns);
    let Cli { command, config } = Cli::from_env();
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        // Span fields (the batch's queue, the job's id) go with every line.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    if let Some(Command::Healthcheck) = command {
        // No log line on success: a health check runs every 30 s.
        return server::healthcheck::probe(config.web.listen).await;
    }
    if let Some(Command::Demo(args)) = command {
        return server::demo::run(&config, &args).await;
    }
    if let Some(Command::Import(args)) = command {
        let n = server::import::run(config.broker.amqp_url.expose_secret(), &args).await?;
        println!(
            "imported {n} message(s) into {} / {}",
            args.exchange, args.routing_key
        );
        return Ok(());
    }
    tracing::info!(?config, "starting redrive");
    let config_grace = config.shutdown_grace;

    let shutdown = CancellationToken::new();
    let running = server::start(config, shutdown.clone()).await?;
    tracing::info!("listening on http://{}", running.addr);

    let grace = config_grace;
    let signal = shutdown.clone();
    tokio::spawn(async move {
        server::supervise::shutdown_signal().await;
        tracing::info!("shutting down: committing and acking what is in hand");
        signal.cancel();
    });
    let waiting = running.wait();
    tokio::pin!(waiting);
    tokio::select! {
        done = &mut waiting => return done,
        _ = shutdown.cancelled() => {}
    }
    // Stopping is bounded: a stuck webhook, a slow export download or a
    // broker that never answers must not keep the process alive. Whatever
    // is not committed by then is unacked and goes back to its queue.
    match tokio::time::timeout(grace, waiting).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "shutdown took longer than the grace period; exiting"
            );
            Ok(())
        }
    }
}
