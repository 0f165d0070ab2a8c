mod body_view;
mod error_box;
mod status_badge;

pub use body_view::BodyView;
pub use error_box::ErrorBox;
pub use status_badge::StatusBadge;
