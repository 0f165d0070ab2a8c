//! The SQL of a [`Filter`], shared by listing (`browse`), exports and
//! bulk-job selection, so "what a job will touch" is exactly "what the list
//! shows".
//! Compiled once per backend; the backend supplies its search and its way
//! of passing a list of ids.

use crate::store::backend::{FullText, SqlBackend};
use sqlx::QueryBuilder;

use super::{Db, Engine, Search};
use crate::store::Filter;

/// A [`Filter`] as SQL on this backend.
pub(super) trait FilterSql {
    /// Appends ` WHERE ...` for this filter, for statements over `messages`
    /// alone (counts, exports, job selections).
    fn push_where(&self, b: &mut QueryBuilder<'_, Db>);
}

impl FilterSql for Filter {
    fn push_where(&self, b: &mut QueryBuilder<'_, Db>) {
        b.push(" WHERE 1 = 1");
        if let Some(text) = &self.text {
            Search::push_match(b, text);
        }
        push_conditions(self, b);
    }
}

/// ` AND …` for every condition of the filter but its search text.
pub(super) fn push_conditions(f: &Filter, b: &mut QueryBuilder<'_, Db>) {
    if let Some(s) = f.status {
        b.push(" AND status = ").push_bind(s.as_str());
    }
    for (column, value) in [
        ("vhost", &f.vhost),
        ("queue", &f.queue),
        ("service", &f.service),
        ("group_id", &f.group),
    ] {
        if let Some(v) = value {
            b.push(format_args!(" AND {column} = ")).push_bind(v.clone());
        }
    }
    if let Some(tag) = &f.tag {
        // Tagged directly, or through the message's failure group.
        b.push(
            " AND (CAST(messages.id AS TEXT) IN (SELECT target_id FROM annotations
                WHERE target_kind = 'message' AND kind = 'tag' AND text = ",
        )
        .push_bind(tag.clone())
        .push(
            ") OR group_id IN (SELECT target_id FROM annotations
                WHERE target_kind = 'group' AND kind = 'tag' AND text = ",
        )
        .push_bind(tag.clone())
        .push("))");
    }
    if let Some(t) = f.from_ms {
        b.push(" AND received_at >= ").push_bind(t);
    }
    if let Some(t) = f.to_ms {
        b.push(" AND received_at < ").push_bind(t);
    }
    if let Some(ids) = &f.ids {
        Engine::push_id_set(b, "messages.id", ids);
    }
    if let Some(vhosts) = &f.visible {
        push_in(b, Engine::VISIBLE_VHOST, vhosts);
    }
}

/// ` AND vhost IN (…)`; an empty list matches nothing.
pub(super) fn push_vhosts(b: &mut QueryBuilder<'_, Db>, vhosts: &[String]) {
    push_in(b, "vhost", vhosts);
}

/// ` AND {column} IN (…)`; an empty list matches nothing.
pub(super) fn push_in(b: &mut QueryBuilder<'_, Db>, column: &str, values: &[String]) {
    b.push(format_args!(" AND {column} IN ("));
    let mut list = b.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    if values.is_empty() {
        list.push("NULL");
    }
    b.push(")");
}
