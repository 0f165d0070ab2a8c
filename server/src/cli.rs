//! The `redrive` command line: serving is the default, tools are
//! subcommands. It sits above everything it can start, so the
//! configuration below it never needs to know the tools.

use clap::Parser;

use crate::config::Config;
use crate::demo::DemoArgs;
use crate::import::ImportArgs;

/// The `redrive` command line: serving is the default, tools are subcommands.
#[derive(Parser)]
#[command(
    name = "redrive",
    version,
    about = "RabbitMQ dead-letter triage: capture, inspect, replay."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Publish a JSON Lines export back into the broker.
    Import(ImportArgs),
    /// Create a vhost with Spring-style services that fail in every way
    /// Redrive handles, to see it work (`--clean` removes it).
    Demo(DemoArgs),
    /// Exit 0 when the Redrive listening on REDRIVE_LISTEN answers
    /// `/healthz`, 1 otherwise (a container's HEALTHCHECK).
    Healthcheck,
}

impl Cli {
    /// Parses flags and `REDRIVE_*` variables. `--help` shows each variable's
    /// name and default, never its current value (passwords live there).
    pub fn from_env() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Self::command()
            .mut_args(|a| a.hide_env_values(true))
            .mut_subcommands(|c| c.mut_args(|a| a.hide_env_values(true)));
        Self::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
    }
}
