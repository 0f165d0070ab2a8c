//! SQL for `store::annotations`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::Engine;
use crate::store::annotations::{clean_tag, key, MAX_NOTE};
use crate::store::*;
use crate::store::rows::rfc3339;
use crate::store::{now_ms, StoreError};
use app::model::{AnnotationChange, AnnotationTarget, Annotations, Note};
use async_trait::async_trait;
use std::collections::HashMap;

#[async_trait]
impl AnnotationStore for Engine {
    async fn annotations(&self, target: &AnnotationTarget) -> Result<Annotations, StoreError> {
        let (kind, id) = key(target);
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT kind, text, actor, at FROM annotations WHERE target_kind = $1 AND target_id = $2 ORDER BY id",
        )
        .bind(kind)
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let mut a = Annotations::default();
        for (kind, text, actor, at) in rows {
            match kind.as_str() {
                "tag" => a.tags.push(text),
                _ => a.notes.push(Note {
                    text,
                    actor,
                    at: rfc3339(at),
                }),
            }
        }
        Ok(a)
    }

    async fn group_tags(&self) -> Result<HashMap<String, Vec<String>>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT target_id, text FROM annotations WHERE target_kind = 'group' AND kind = 'tag' ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (group, tag) in rows {
            map.entry(group).or_default().push(tag);
        }
        Ok(map)
    }

    async fn annotate(
        &self,
        target: &AnnotationTarget,
        change: &AnnotationChange,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (kind, id) = key(target);
        let exists: bool = match target {
            AnnotationTarget::Message(m) => {
                sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM messages WHERE id = $1)").bind(m)
            }
            AnnotationTarget::Group(g) => {
                sqlx::query_scalar("SELECT EXISTS(SELECT 1 FROM messages WHERE group_id = $1)")
                    .bind(g.clone())
            }
        }
        .fetch_one(self.pool())
        .await?;
        if !exists {
            return Err(StoreError::Missing(format!("{kind} {id}")));
        }
        let insert = |kind: &'static str, text: String| {
            sqlx::query(
                "INSERT INTO annotations (target_kind, target_id, kind, text, actor, at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(key(target).0)
            .bind(key(target).1)
            .bind(kind)
            .bind(text)
            .bind(actor.to_owned())
            .bind(now_ms())
        };
        let query = match change {
            AnnotationChange::AddNote(n) => {
                let n = n.trim();
                if n.is_empty() || n.chars().count() > MAX_NOTE {
                    return Err(StoreError::Invalid(format!("a note is 1 to {MAX_NOTE} characters")));
                }
                insert("note", n.to_owned())
            }
            AnnotationChange::AddTag(t) => insert("tag", clean_tag(t)?),
            AnnotationChange::RemoveTag(t) => sqlx::query(
                "DELETE FROM annotations WHERE target_kind = $1 AND target_id = $2 AND kind = 'tag' AND text = $3",
            )
            .bind(kind)
            .bind(id.clone())
            .bind(t.trim().to_owned()),
        };
        query.execute(self.pool()).await?;
        Ok(())
    }
}
