//! What capture is doing right now, for `/readyz`, the UI and the logs.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use app::model::{ConsumerHealth, ConsumerState};

use crate::domain::now_ms;

type QueueKey = (String, String);

/// Shared by every consumer supervisor and read by the HTTP side.
#[derive(Clone, Default)]
pub struct CaptureStatus(Arc<RwLock<Inner>>);

#[derive(Default)]
struct Inner {
    consumers: BTreeMap<QueueKey, ConsumerHealth>,
    /// Set while commits fail: since when, and the last error.
    database: Option<(i64, String)>,
}

impl CaptureStatus {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.write().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn set(&self, vhost: &str, queue: &str, state: ConsumerState, error: Option<String>) {
        self.with(|i| {
            let key = (vhost.to_owned(), queue.to_owned());
            let entry = i.consumers.entry(key).or_insert_with(|| ConsumerHealth {
                vhost: vhost.to_owned(),
                queue: queue.to_owned(),
                state,
                since: now_ms(),
                last_error: None,
            });
            if entry.state != state {
                entry.state = state;
                entry.since = now_ms();
            }
            if error.is_some() || state == ConsumerState::Connected {
                entry.last_error = error;
            }
        });
    }

    pub fn remove(&self, vhost: &str, queue: &str) {
        self.with(|i| i.consumers.remove(&(vhost.to_owned(), queue.to_owned())));
    }

    pub fn consumer(&self, vhost: &str, queue: &str) -> Option<ConsumerHealth> {
        self.with(|i| i.consumers.get(&(vhost.to_owned(), queue.to_owned())).cloned())
    }

    pub fn consumers(&self) -> Vec<ConsumerHealth> {
        self.with(|i| i.consumers.values().cloned().collect())
    }

    /// Records a failed commit; returns whether this starts an outage.
    pub fn database_failed(&self, error: String) -> bool {
        self.with(|i| {
            let started = i.database.is_none();
            let since = i.database.as_ref().map_or_else(now_ms, |d| d.0);
            i.database = Some((since, error));
            started
        })
    }

    /// Records a successful commit; returns how long an outage lasted, if one ended.
    pub fn database_ok(&self) -> Option<i64> {
        self.with(|i| i.database.take().map(|(since, _)| now_ms() - since))
    }

    /// `(since, last error)` while commits fail.
    pub fn database_fault(&self) -> Option<(i64, String)> {
        self.with(|i| i.database.clone())
    }

    /// One line per problem, for `/readyz`.
    pub fn problems(&self) -> Vec<String> {
        self.with(|i| {
            let mut out: Vec<String> = i
                .consumers
                .values()
                .filter(|c| c.state == ConsumerState::Reconnecting)
                .map(|c| {
                    format!(
                        "capture of {} / {} reconnecting for {} s: {}",
                        c.vhost,
                        c.queue,
                        (now_ms() - c.since) / 1000,
                        c.last_error.as_deref().unwrap_or("unknown error")
                    )
                })
                .collect();
            if let Some((since, e)) = &i.database {
                out.push(format!(
                    "database commits failing for {} s (deliveries held unacked): {e}",
                    (now_ms() - since) / 1000
                ));
            }
            out
        })
    }
}
