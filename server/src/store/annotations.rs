//! Notes and tags on messages and failure groups.

use app::model::AnnotationChange;
use app::model::Annotations;
use async_trait::async_trait;
use std::collections::HashMap;

use app::model::AnnotationTarget;

use super::StoreError;

pub(super) const MAX_TAG: usize = 64;
pub(super) const MAX_NOTE: usize = 4_000;

pub(super) fn key(target: &AnnotationTarget) -> (&'static str, String) {
    match target {
        AnnotationTarget::Message(id) => ("message", id.to_string()),
        AnnotationTarget::Group(id) => ("group", id.clone()),
    }
}

/// Tags are short labels: trimmed, no control characters, at most 64 chars.
pub fn clean_tag(tag: &str) -> Result<String, StoreError> {
    let t = tag.trim();
    if t.is_empty() || t.chars().count() > MAX_TAG || t.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "a tag is 1 to {MAX_TAG} printable characters"
        )));
    }
    Ok(t.to_owned())
}

/// Notes and tags on messages and groups.
#[async_trait]
pub trait AnnotationStore: Send + Sync {
    async fn annotations(&self, target: &AnnotationTarget) -> Result<Annotations, StoreError>;

    /// Tags of many groups at once (for the groups list).
    async fn group_tags(&self) -> Result<HashMap<String, Vec<String>>, StoreError>;

    async fn annotate(
        &self,
        target: &AnnotationTarget,
        change: &AnnotationChange,
        actor: &str,
    ) -> Result<(), StoreError>;
}
