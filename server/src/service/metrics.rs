//! What `/metrics` reads at scrape time, gathered for [`Metrics::render`].

use app::model::{ApiError, JobState, MessageStatus};

use super::Redrive;
use crate::domain::now_ms;
use crate::metrics::Scraped;

/// Unfinished jobs are few; finished ones are history, not state.
const JOBS_LOOKED_AT: i64 = 200;

impl Redrive {
    /// The exposition: counters as counted, states as they are now.
    pub async fn metrics_text(&self) -> Result<String, ApiError> {
        let started = std::time::Instant::now();
        self.store.ping().await?;
        let database_ping = started.elapsed();
        // Every status, 0 included: a series that vanishes reads as "no data".
        let counted = self.store.count_by_status().await?;
        let messages_by_status = MessageStatus::ALL
            .iter()
            .map(|s| {
                let n = counted
                    .iter()
                    .find(|(c, _)| c == s.as_str())
                    .map_or(0, |(_, n)| *n);
                (s.as_str().to_owned(), n)
            })
            .collect();
        let jobs = self
            .store
            .jobs(JOBS_LOOKED_AT)
            .await?
            .into_iter()
            .filter(|j| matches!(j.state, JobState::Running | JobState::Paused))
            .map(|j| {
                (
                    j.id,
                    j.action.as_str().to_owned(),
                    j.state.as_str().to_owned(),
                    j.done,
                    j.failed,
                    j.remaining,
                )
            })
            .collect();
        let cached = self.monitor.cached();
        let queues = cached
            .snapshot
            .iter()
            .flat_map(|s| s.vhosts.iter())
            .flat_map(|v| {
                v.queues.iter().filter(|q| v.is_watched(&q.name)).map(|q| {
                    (
                        v.name.clone(),
                        q.name.clone(),
                        q.messages_ready,
                        q.messages_unacknowledged,
                    )
                })
            })
            .collect();
        let consumers = self
            .capture
            .consumers()
            .into_iter()
            .map(|c| (c.vhost, c.queue, c.state.as_str().to_owned()))
            .collect();
        let broker_data_age = cached
            .fetched_at
            .map(|at| std::time::Duration::from_millis(u64::try_from(now_ms() - at).unwrap_or(0)));
        Ok(self.metrics.render(Scraped {
            messages_by_status,
            jobs,
            queues,
            consumers,
            database_up: self.capture.database_fault().is_none(),
            database_ping,
            broker_data_age,
        }))
    }
}
