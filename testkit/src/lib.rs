//! What Redrive's integration tests (`server/tests/it`), benchmarks
//! (`server/examples/bench_*`) and fault scenarios (`server/examples/faults`)
//! share, written once: a vhost of their own on the local broker, a scratch
//! PostgreSQL database, the Spring-format failures Redrive exists for,
//! Redrive as a child process, and polling.
//!
//! Every call answers with `anyhow::Result`: the fault harness reports a
//! failed step, a test unwraps it.

pub mod mgmt;
pub mod postgres;
pub mod process;
pub mod spring;
mod vhost;
mod wait;

pub use mgmt::{enc, Mgmt, MGMT};
pub use vhost::{depth, publish_all, Vhost};
pub use wait::until;

/// `prefix-` and 12 random hex digits: a name no other run uses.
pub fn random_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The broker's AMQP URL for `vhost`, as the default user.
pub fn amqp_url(vhost: &str) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/{}", enc(vhost))
}
