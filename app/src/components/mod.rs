mod annotations;
mod body_view;
mod error_box;
mod list_view;
mod progress;
mod sparkline;
mod status_badge;

pub use annotations::AnnotationsPanel;
pub use body_view::BodyView;
pub use error_box::ErrorBox;
pub use list_view::ListView;
pub use progress::{percent, ProgressBar};
pub use sparkline::Sparkline;
pub use status_badge::StatusBadge;
