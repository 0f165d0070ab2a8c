mod groups;
mod message;
mod messages;
mod queues;

pub use groups::GroupsPage;
pub use message::MessagePage;
pub use messages::MessagesPage;
pub use queues::QueuesPage;
