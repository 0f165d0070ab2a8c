//! The message filter shared by listing, counting and bulk-job selection, so
//! "what a job will touch" is exactly "what the list shows".

use std::str::FromStr;

use app::model::{MessageQuery, MessageStatus};
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
