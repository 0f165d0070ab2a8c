//! Everything that talks to RabbitMQ: AMQP connections and the management API.

pub mod amqp;
pub mod management;
pub mod users;

pub use amqp::AmqpPool;
pub use management::{Management, ManagementError, QueueStats};
