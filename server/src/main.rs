use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use server::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // lapin logs a returned message whole (body included) at `warn`: a
    // publisher's data must not reach the log whatever RUST_LOG says.
    let quiet_returns = "lapin::returned_messages=error".parse()?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,server=info".into())
        .add_directive(quiet_returns);
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let Cli { command, config } = Cli::from_env();
    if let Some(Command::Import(args)) = command {
        let n = server::import::run(&config.amqp_url, &args).await?;
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
        wait_for_signal().await;
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

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
