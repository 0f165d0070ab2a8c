use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use server::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,server=info".into()))
        .init();
    let Cli { command, config } = Cli::parse();
    if let Some(Command::Import(args)) = command {
        let n = server::import::run(&config.amqp_url, &args).await?;
        println!(
            "imported {n} message(s) into {} / {}",
            args.exchange, args.routing_key
        );
        return Ok(());
    }
    tracing::info!(?config, "starting redrive");

    let shutdown = CancellationToken::new();
    let running = server::start(config, shutdown.clone()).await?;
    tracing::info!("listening on http://{}", running.addr);

    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing the current batches");
        shutdown.cancel();
    });
    running.wait().await
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
