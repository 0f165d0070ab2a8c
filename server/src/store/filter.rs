//! The message filter shared by listing, counting and bulk-job selection, so
//! "what a job will touch" is exactly "what the list shows".

use std::str::FromStr;

use app::model::{MessageQuery, MessageStatus};
use sqlx::{QueryBuilder, Sqlite};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::StoreError;

/// A validated [`MessageQuery`] (without paging).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<MessageStatus>,
    pub vhost: Option<String>,
    pub queue: Option<String>,
    pub service: Option<String>,
    pub group: Option<String>,
    pub tag: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub text: Option<String>,
    /// Explicit message ids (bulk selection).
    pub ids: Option<Vec<i64>>,
    /// The vhosts the user may see; `None` is no restriction (Redrive's own work).
    pub visible: Option<Vec<String>>,
}

pub(super) fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A page's cursor (the last id of the page before); empty is the first page.
pub(super) fn cursor(value: Option<&str>) -> Result<Option<i64>, StoreError> {
    value
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| StoreError::Invalid(format!("invalid cursor `{c}`")))
        })
        .transpose()
}

/// A page's size: `default` when not given, never more than `MAX_PAGE`.
pub(super) fn page_limit(value: Option<u32>, default: u32) -> Result<u32, StoreError> {
    let limit = value.unwrap_or(default);
    if limit == 0 || limit > super::MAX_PAGE {
        return Err(StoreError::Invalid(format!(
            "limit must be between 1 and {}",
            super::MAX_PAGE
        )));
    }
    Ok(limit)
}

/// An optional status filter; empty is none.
pub(super) fn status(value: Option<&str>) -> Result<Option<MessageStatus>, StoreError> {
    value
        .filter(|s| !s.is_empty())
        .map(|s| MessageStatus::from_str(s).map_err(|e| StoreError::Invalid(e.to_string())))
        .transpose()
}

/// An optional RFC 3339 bound as unix milliseconds.
pub(super) fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>, StoreError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
        StoreError::Invalid(format!(
            "`{name}` must be an RFC 3339 time such as 2026-11-23T18:00:00Z"
        ))
    })?;
    Ok(Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

impl TryFrom<&MessageQuery> for Filter {
    type Error = StoreError;

    fn try_from(q: &MessageQuery) -> Result<Self, StoreError> {
        Ok(Filter {
            status: status(q.status.as_deref())?,
            vhost: non_empty(&q.vhost),
            queue: non_empty(&q.queue),
            service: non_empty(&q.service),
            group: non_empty(&q.group),
            tag: non_empty(&q.tag),
            from_ms: parse_time("from", q.from.as_deref())?,
            to_ms: parse_time("to", q.to.as_deref())?,
            text: non_empty(&q.q),
            ids: None,
            visible: None,
        })
    }
}

impl Filter {
    /// `SELECT {columns} FROM … WHERE …` for a page of this filter, to be
    /// followed by [`Filter::push_page`].
    ///
    /// A search is driven by the full-text index, newest match first, so a
    /// page stops after `limit` hits. (`id IN (matches)` collects every match
    /// first: a word found in a million messages cost a second per page.)
    pub fn push_select(&self, b: &mut QueryBuilder<'_, Sqlite>, columns: &str) {
        b.push(format_args!("SELECT {columns} FROM "));
        match self.fts_query() {
            Some(q) => {
                b.push("messages_fts JOIN messages ON messages.id = messages_fts.rowid WHERE messages_fts MATCH ")
                    .push_bind(q);
            }
            None => {
                b.push("messages WHERE 1 = 1");
            }
        }
        self.push_conditions(b);
    }

    /// ` AND id < {before} ORDER BY id DESC LIMIT {limit}`, on the column
    /// that keeps the index order (the full-text rowid for a search).
    pub fn push_page(&self, b: &mut QueryBuilder<'_, Sqlite>, before: Option<i64>, limit: i64) {
        let id = if self.fts_query().is_some() {
            "messages_fts.rowid"
        } else {
            "messages.id"
        };
        if let Some(before) = before {
            b.push(format_args!(" AND {id} < ")).push_bind(before);
        }
        b.push(format_args!(" ORDER BY {id} DESC LIMIT "))
            .push_bind(limit);
    }

    /// The search text as an FTS query; `None` when there is no text to match.
    fn fts_query(&self) -> Option<String> {
        self.text.as_deref().and_then(super::search::fts_query)
    }

    /// Appends ` WHERE ...` for this filter, for statements over `messages`
    /// alone (counts, exports, job selections).
    pub fn push_where(&self, b: &mut QueryBuilder<'_, Sqlite>) {
        b.push(" WHERE 1 = 1");
        if let Some(text) = &self.text {
            super::search::push_match(b, text);
        }
        self.push_conditions(b);
    }

    fn push_conditions(&self, b: &mut QueryBuilder<'_, Sqlite>) {
        if let Some(s) = self.status {
            b.push(" AND status = ").push_bind(s.as_str());
        }
        for (column, value) in [
            ("vhost", &self.vhost),
            ("queue", &self.queue),
            ("service", &self.service),
            ("group_id", &self.group),
        ] {
            if let Some(v) = value {
                b.push(format_args!(" AND {column} = ")).push_bind(v.clone());
            }
        }
        if let Some(tag) = &self.tag {
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
        if let Some(t) = self.from_ms {
            b.push(" AND received_at >= ").push_bind(t);
        }
        if let Some(t) = self.to_ms {
            b.push(" AND received_at < ").push_bind(t);
        }
        if let Some(ids) = &self.ids {
            // One bind of a JSON array, whatever its length: a bind per id
            // would pass SQLite's limit of 32,766 parameters.
            let list = serde_json::to_string(ids).expect("integers serialise");
            b.push(" AND messages.id IN (SELECT value FROM json_each(")
                .push_bind(list)
                .push("))");
        }
        if let Some(vhosts) = &self.visible {
            push_visible(b, vhosts);
        }
    }
}

/// ` AND vhost IN (…)`; an empty list matches nothing.
pub(super) fn push_vhosts(b: &mut QueryBuilder<'_, Sqlite>, vhosts: &[String]) {
    push_in(b, "vhost", vhosts);
}

/// The same for the messages list, where the unary `+` keeps SQLite from
/// answering it with the (vhost, queue) index: every page carries the
/// caller's visible vhosts, and reading them through that index meant
/// sorting every visible message by id for one page (226 ms at 100,000
/// stored). Read in id order instead, a page stops after its rows; a queue
/// filter still uses the index through `vhost = ?`.
fn push_visible(b: &mut QueryBuilder<'_, Sqlite>, vhosts: &[String]) {
    push_in(b, "+vhost", vhosts);
}

fn push_in(b: &mut QueryBuilder<'_, Sqlite>, column: &str, vhosts: &[String]) {
    b.push(format_args!(" AND {column} IN ("));
    let mut list = b.separated(", ");
    for v in vhosts {
        list.push_bind(v.clone());
    }
    if vhosts.is_empty() {
        list.push("NULL");
    }
    b.push(")");
}
