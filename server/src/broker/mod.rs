//! Everything that talks to RabbitMQ: AMQP connections and the management API.

pub mod amqp;
pub mod management;
pub mod users;

pub use amqp::AmqpPool;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The order in which to try the nodes of a cluster: the one that answered
/// last first, then the others in the configured order. Shared by the AMQP
/// connections and the management client.
#[derive(Clone, Default)]
pub(crate) struct NodeOrder {
    preferred: Arc<AtomicUsize>,
}

impl NodeOrder {
    /// Indexes of `nodes` nodes, in the order to try them.
    pub fn tries(&self, nodes: usize) -> impl Iterator<Item = usize> {
        let first = self.preferred.load(Ordering::Relaxed);
        (0..nodes).map(move |step| (first + step) % nodes)
    }

    /// Records that node `i` answered; `true` when that is a failover
    /// (another node than the one that answered last).
    pub fn answered(&self, i: usize) -> bool {
        self.preferred.swap(i, Ordering::Relaxed) != i
    }
}
pub use management::{Management, ManagementError, QueueStats};

#[cfg(test)]
mod tests {
    use super::NodeOrder;

    #[test]
    fn the_node_that_answered_last_is_tried_first() {
        let order = NodeOrder::default();
        assert_eq!(order.tries(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(!order.answered(0), "the first node answering is no failover");
        assert!(order.answered(2));
        assert_eq!(order.tries(3).collect::<Vec<_>>(), [2, 0, 1]);
        assert!(!order.answered(2));
    }
}
