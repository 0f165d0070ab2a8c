//! What `/healthz` and `/readyz` report: the probes ask the service like
//! every other handler, and only the HTTP layer turns the answer into JSON.

use std::collections::BTreeMap;

use app::model::ConsumerHealth;

use super::Redrive;

/// Liveness: the process is up and no background task keeps dying.
pub struct Health {
    /// Each crash-looping task's description; empty when healthy.
    pub problems: Vec<String>,
    /// Restarts per background task since start.
    pub restarts: BTreeMap<&'static str, usize>,
}

/// Readiness: the database, the broker (management API and AMQP) and every
/// capture consumer working.
pub struct Readiness {
    pub problems: Vec<String>,
    pub consumers: Vec<ConsumerHealth>,
}

impl Redrive {
    pub fn health(&self) -> Health {
        let problems = self
            .tasks
            .crash_looping()
            .iter()
            .map(|(task, n)| format!("background task {task} died {n} times in 5 minutes"))
            .collect();
        Health {
            problems,
            restarts: self.tasks.restarts(),
        }
    }

    pub async fn readiness(&self) -> Readiness {
        let mut problems = self.capture.problems();
        if let Err(e) = self.store.ping().await {
            tracing::warn!(error = %e, "readiness: database");
            problems.push("database unreachable".to_owned());
        }
        if let Err(e) = self.management.ping().await {
            problems.push(format!("broker: {e}"));
        }
        if let Err(e) = self.publisher.ping().await {
            problems.push(format!("broker (AMQP): {e}"));
        }
        Readiness {
            problems,
            consumers: self.capture.consumers(),
        }
    }
}
