mod message;
mod messages;
mod queues;

pub use message::MessagePage;
pub use messages::MessagesPage;
pub use queues::QueuesPage;
