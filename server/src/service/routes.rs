//! A dry run's destinations with the queues each reaches, read from the
//! broker's bindings, so an operator sees before confirming when a replay
//! to the original route would also reach services that already succeeded.

use std::collections::HashMap;

use app::model::{Destination, JobRequest};

use super::Redrive;
use crate::topology::{RouteMap, VhostState};

impl Redrive {
    /// Sets each destination's route as the job would send it, and the
    /// queues that route reaches now.
    pub(super) async fn route_destinations(&self, req: &JobRequest, destinations: &mut [Destination]) {
        let mut maps: HashMap<String, Option<RouteMap>> = HashMap::new();
        for d in destinations.iter_mut() {
            if let Some(queue) = &req.plan.to_queue {
                d.exchange = Some(String::new());
                d.routing_key = Some(queue.clone());
                d.queues = vec![queue.clone()];
                continue;
            }
            if req.plan.to_original_queue {
                d.exchange = Some(String::new());
                d.routing_key = None;
                d.route_note = Some(
                    "each message goes to the queue it was dead-lettered from (its first x-death entry); \
                     a message without one is not sent"
                        .into(),
                );
                continue;
            }
            d.exchange = req.exchange.clone().or(d.exchange.take());
            d.routing_key = req.routing_key.clone().or(d.routing_key.take());
            let Some(exchange) = d.exchange.clone() else {
                d.route_note =
                    Some("the original exchange is unknown: these messages are not sent unless an exchange is given".into());
                continue;
            };
            if !maps.contains_key(&d.vhost) {
                let map = match VhostState::routes(&self.management, &d.vhost).await {
                    Ok(map) => Some(map),
                    Err(e) => {
                        tracing::warn!(vhost = %d.vhost, error = %e, "reading bindings for a dry run failed");
                        None
                    }
                };
                maps.insert(d.vhost.clone(), map);
            }
            match &maps[&d.vhost] {
                Some(map) => {
                    let reach = map.reach(&exchange, d.routing_key.as_deref().unwrap_or_default());
                    d.fans_out = reach.queues.len() > 1;
                    d.queues = reach.queues.into_iter().collect();
                    d.route_note = reach.note;
                }
                None => {
                    d.route_note =
                        Some("the management API did not answer: the queues reached are unknown".into())
                }
            }
        }
    }
}
