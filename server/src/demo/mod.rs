//! `redrive demo`: real failures within a minute, on the broker Redrive is
//! pointed at. It creates a vhost of its own with the topology Spring
//! services use, and runs simulated services in it that fail in every way
//! Redrive handles: recoverer failures in error queues, dead letters that
//! were rejected, expired, overflowed or hit a delivery limit, and the
//! habits the advisor warns about. `--clean` removes what it created.

pub mod failures;
mod services;
pub mod topology;

use secrecy::ExposeSecret;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::broker::{AmqpPool, Management};
use crate::config::Config;

/// Left on a vhost the demo creates, so `--clean` knows it may delete it.
const MARK_TAG: &str = "redrive-demo";
const DESCRIPTION: &str = "Created by `redrive demo`; remove it with `redrive demo --clean`.";

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Vhost to run in; created (and marked as the demo's) when missing.
    #[arg(long, default_value = "redrive-demo")]
    pub vhost: String,
    /// Seconds the simulated services run; without it, until Ctrl-C.
    #[arg(long, value_parser = crate::config::secs)]
    pub duration: Option<Duration>,
    /// Remove everything the demo created (the vhost too, if it created
    /// it) instead of running.
    #[arg(long)]
    pub clean: bool,
    /// Run, or clean, in a vhost that holds objects the demo did not create
    /// (cleaning then removes only the demo's objects).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(config: &Config, args: &DemoArgs) -> anyhow::Result<()> {
    let management = Management::new(
        &config.broker.management_url,
        &config.broker.management_user,
        config.broker.management_password.expose_secret(),
    );
    if args.clean {
        return clean(config, &management, args).await;
    }
    let created = prepare_vhost(&management, args).await?;
    if created {
        let amqp_user = amqp_user(config.broker.amqp_url.expose_secret())?;
        let mut users = vec![config.broker.management_user.as_str(), amqp_user.as_str()];
        users.dedup();
        for user in users {
            management
                .grant_all(&args.vhost, user)
                .await
                .with_context(|| format!("allowing {user} into vhost {}", args.vhost))?;
        }
    }
    let pool = AmqpPool::new(config.broker.amqp_url.expose_secret(), "demo")?;
    let channel = pool
        .channel(&args.vhost)
        .await
        .with_context(|| format!("connecting to vhost {}", args.vhost))?;
    topology::declare(&channel).await?;
    for (name, pattern, definition) in topology::POLICIES {
        let policy = app::model::PolicyRequest {
            pattern: (*pattern).into(),
            apply_to: "queues".into(),
            priority: 0,
            definition: serde_json::from_str(definition).expect("the demo's policies are JSON"),
        };
        management.put_policy(&args.vhost, name, &policy).await?;
    }
    println!(
        "redrive demo: {} vhost {:?}; simulated services running {}.\n\
         Open Redrive (http://{}/ by default) and filter by this vhost; \
         `redrive demo --clean{}` removes it all.",
        if created { "created" } else { "using" },
        args.vhost,
        match args.duration {
            Some(d) => format!("for {} s", d.as_secs()),
            None => "until Ctrl-C".into(),
        },
        config.web.listen,
        vhost_flag(args),
    );
    let stop = CancellationToken::new();
    let deadline = stop.clone();
    let duration = args.duration;
    tokio::spawn(async move {
        let ends = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ends => {}
            _ = crate::supervise::shutdown_signal() => {}
        }
        deadline.cancel();
    });
    let outcome = services::run(&pool, &args.vhost, stop).await;
    pool.close_all().await;
    outcome?;
    println!("redrive demo: services stopped; the failures stay for you to triage.");
    Ok(())
}

fn vhost_flag(args: &DemoArgs) -> String {
    if args.vhost == "redrive-demo" {
        String::new()
    } else {
        format!(" --vhost {}", args.vhost)
    }
}

/// Creates the vhost when missing (marked as the demo's, with the
/// management and AMQP users allowed in it); otherwise checks that it holds
/// nothing the demo did not create. Whether it created it.
async fn prepare_vhost(management: &Management, args: &DemoArgs) -> anyhow::Result<bool> {
    if management.vhost(&args.vhost).await?.is_some() {
        refuse_foreign(management, args).await?;
        return Ok(false);
    }
    management
        .create_vhost(&args.vhost, DESCRIPTION, &[MARK_TAG])
        .await
        .with_context(|| format!("creating vhost {}", args.vhost))?;
    Ok(true)
}

/// The user of the first AMQP URL: the one the simulated services connect as.
fn amqp_user(urls: &str) -> anyhow::Result<String> {
    let first = urls.split(',').next().unwrap_or_default().trim();
    let uri: lapin::uri::AMQPUri = first
        .parse()
        .map_err(|e| anyhow::anyhow!("REDRIVE_AMQP_URL is invalid: {e}"))?;
    Ok(uri.authority.userinfo.username)
}

/// Objects in the vhost the demo does not declare, by kind and name.
async fn foreign_objects(management: &Management, vhost: &str) -> anyhow::Result<Vec<String>> {
    let (queues, exchanges, policies) = tokio::try_join!(
        management.queues(vhost),
        management.exchanges(vhost),
        management.policies(vhost),
    )?;
    let queues = queues
        .into_iter()
        .filter(|q| !topology::owns_queue(&q.name))
        .map(|q| format!("queue {}", q.name));
    let exchanges = exchanges
        .into_iter()
        .filter(|e| !topology::owns_exchange(&e.name))
        .map(|e| format!("exchange {}", e.name));
    let policies = policies
        .into_iter()
        .filter(|p| !topology::owns_policy(&p.name))
        .map(|p| format!("policy {}", p.name));
    Ok(queues.chain(exchanges).chain(policies).collect())
}

async fn refuse_foreign(management: &Management, args: &DemoArgs) -> anyhow::Result<Vec<String>> {
    let foreign = foreign_objects(management, &args.vhost).await?;
    if !foreign.is_empty() && !args.force {
        let shown: Vec<&str> = foreign.iter().take(5).map(String::as_str).collect();
        bail!(
            "vhost {} holds {} object(s) the demo did not create ({}{}); choose another with --vhost, \
             or pass --force",
            args.vhost,
            foreign.len(),
            shown.join(", "),
            if foreign.len() > shown.len() { ", …" } else { "" },
        );
    }
    Ok(foreign)
}

/// Removes the demo's objects: the whole vhost when the demo created it
/// and nothing else lives there, else only the demo's own objects.
async fn clean(config: &Config, management: &Management, args: &DemoArgs) -> anyhow::Result<()> {
    let Some(vhost) = management.vhost(&args.vhost).await? else {
        println!(
            "redrive demo --clean: there is no vhost {:?}; nothing to remove",
            args.vhost
        );
        return Ok(());
    };
    let foreign = refuse_foreign(management, args).await?;
    if foreign.is_empty() && vhost.tags.iter().any(|t| t == MARK_TAG) {
        management.delete_vhost(&args.vhost).await?;
        println!("redrive demo --clean: deleted vhost {:?}", args.vhost);
        return Ok(());
    }
    let pool = AmqpPool::new(config.broker.amqp_url.expose_secret(), "demo")?;
    let channel = pool.channel(&args.vhost).await?;
    topology::delete(&channel).await?;
    pool.close_all().await;
    for (name, ..) in topology::POLICIES {
        match management.delete_policy(&args.vhost, name).await {
            Ok(()) | Err(crate::broker::ManagementError::Status { status: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    println!(
        "redrive demo --clean: removed the demo's queues, exchanges and policies from vhost {:?} (kept: it {})",
        args.vhost,
        if foreign.is_empty() { "was not created by the demo" } else { "holds other objects" }
    );
    Ok(())
}
