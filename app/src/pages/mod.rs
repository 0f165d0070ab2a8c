mod bulk;
mod groups;
mod jobs;
mod keys;
mod message;
mod messages;
mod queues;

pub use groups::GroupsPage;
pub use jobs::{JobPage, JobsPage};
pub use message::MessagePage;
pub use messages::MessagesPage;
pub use queues::QueuesPage;
