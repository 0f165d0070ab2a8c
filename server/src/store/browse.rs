//! How a page of the messages list is read, decided from exact counts.
//!
//! A page is the newest `limit` messages matching a [`Filter`]. Read in id
//! order through one index and filtered row by row, it costs as many rows
//! as lie between two matches: a vhost holding 1 % of the store cost a
//! second a page at a million messages, a search inside it a minute.
//!
//! So the list is planned from `message_counts` (how many messages each
//! vhost, queue, service, group and status holds, kept by triggers):
//! - the filter's equality parts (vhost, queue, service, group, status,
//!   tag groups, visible vhosts) select *buckets*, whose sum is the exact
//!   number of matches, known before any message is read;
//! - each index whose key ends in `id` (a [`Level`]) can read those buckets
//!   as a few *arms*: index ranges read newest first, merged, each stopping
//!   after a page. An arm holds matches and, at a coarse level, rows that
//!   the filter then drops;
//! - the level with the lowest cost (arms to seek plus rows expected to be
//!   read, from the same counts) is chosen. The finest level reads only
//!   matches; a coarser one is chosen when it needs far fewer seeks.
//!
//! Time bounds become an id range (see `received_blocks`). On SQLite a
//! search is driven from the full-text index when the filter matches many
//! messages, and the filter's few matches are probed in the index when it
//! matches few. PostgreSQL's index cannot yield matches newest first, so
//! there the filter's newest messages are probed in windows sized by the
//! hit rate, and a text the windows find rare is read from the index's
//! match set (see `browse/walk.rs`).

use super::Filter;

/// The indexes a page can be read through, coarsest first. Each is keyed by
/// the columns named and then `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// The primary key: every message.
    All,
    /// `messages_status_id (status, id)`.
    Status,
    /// `messages_vhost_status_id (vhost, status, id)`.
    Vhost,
    /// `messages_queue_status_id (vhost, queue, status, id)`.
    Queue,
    /// `messages_group_queue_status_id (group_id, vhost, queue, status, id)`.
    Group,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::All,
        Level::Status,
        Level::Vhost,
        Level::Queue,
        Level::Group,
    ];

    /// The index this level reads.
    pub fn index(self) -> Option<&'static str> {
        match self {
            Level::All => None,
            Level::Status => Some("messages_status_id"),
            Level::Vhost => Some("messages_vhost_status_id"),
            Level::Queue => Some("messages_queue_status_id"),
            Level::Group => Some("messages_group_queue_status_id"),
        }
    }
}

/// One row of `message_counts`. `service` and `group` are `""` for NULL.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Bucket {
    pub vhost: String,
    pub queue: String,
    pub service: String,
    pub group_id: String,
    pub status: String,
    pub messages: i64,
}

/// One index range: the values of its level's key columns (`None` where
/// the level has no such column; all `None` is the primary key).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Arm {
    pub group: Option<String>,
    pub vhost: Option<String>,
    pub queue: Option<String>,
    pub status: Option<String>,
}

impl Arm {
    fn of(level: Level, b: &Bucket) -> Arm {
        let keep = |on: bool, v: &str| on.then(|| v.to_owned());
        Arm {
            group: keep(level == Level::Group, &b.group_id),
            vhost: keep(level >= Level::Vhost, &b.vhost),
            queue: keep(level >= Level::Queue, &b.queue),
            status: keep(level >= Level::Status, &b.status),
        }
    }
}

/// What the filter's equality parts select, and how to read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub level: Level,
    /// Index ranges to merge, newest first (one for [`Level::All`]).
    pub arms: Vec<Arm>,
    /// Messages the equality parts match: exact, before time, tagged
    /// messages and search text narrow it.
    pub matching: i64,
    /// Every message stored.
    pub stored: i64,
    /// Which of the filter's equality conditions the arms do not already
    /// imply, and must be tested row by row.
    pub residual: Residual,
}

/// Equality conditions a row must still pass inside its arm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Residual {
    pub status: bool,
    pub vhost: bool,
    pub queue: bool,
    pub service: bool,
    pub group: bool,
    /// The visible vhosts, when they restrict anything and the arm's level
    /// does not fix the vhost.
    pub visible: bool,
    /// The tag's groups (`group_id IN (…)`), when the level does not key on
    /// the group.
    pub tag_groups: bool,
}

/// Seeking one index range costs about as much as reading this many rows.
const ARM_COST: i64 = 8;
/// At most this many arms in one statement (SQLite allows 500 terms in a
/// compound); a level that needs more is not a candidate.
const MAX_ARMS: usize = 400;

/// Whether `b` passes the filter's equality parts. `tag_groups` is the
/// groups the filter's tag is on (`None`: no tag).
fn selects(f: &Filter, b: &Bucket, tag_groups: Option<&[String]>) -> bool {
    let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    f.status.is_none_or(|s| s.as_str() == b.status)
        && eq(&f.vhost, &b.vhost)
        && eq(&f.queue, &b.queue)
        && eq(&f.service, &b.service)
        && eq(&f.group, &b.group_id)
        && f.visible.as_ref().is_none_or(|v| v.contains(&b.vhost))
        && tag_groups.is_none_or(|g| g.contains(&b.group_id))
}

/// Plans the arms for a page of `page` rows of `f` over `buckets` (all of
/// `message_counts`).
/// `tag_groups` are the groups tagged with the filter's tag; the tag's
/// individually tagged messages are read apart (see `browse/sql.rs`).
pub fn plan(f: &Filter, buckets: &[Bucket], tag_groups: Option<&[String]>, page: i64) -> Plan {
    let stored: i64 = buckets.iter().map(|b| b.messages).sum();
    let chosen: Vec<&Bucket> = buckets
        .iter()
        .filter(|b| b.messages > 0 && selects(f, b, tag_groups))
        .collect();
    let matching: i64 = chosen.iter().map(|b| b.messages).sum();
    // Visible vhosts restrict nothing when every stored vhost is visible.
    let visible_restricts = f
        .visible
        .as_ref()
        .is_some_and(|v| buckets.iter().any(|b| b.messages > 0 && !v.contains(&b.vhost)));
    let restricts_rows = |level: Level| -> Residual {
        Residual {
            status: f.status.is_some() && level < Level::Status,
            vhost: f.vhost.is_some() && level < Level::Vhost,
            queue: f.queue.is_some() && level < Level::Queue,
            // No index keys on the service: a queue's messages have one
            // service, but the filter is still tested (it costs nothing).
            service: f.service.is_some(),
            group: f.group.is_some() && level < Level::Group,
            visible: visible_restricts && level < Level::Vhost,
            tag_groups: tag_groups.is_some() && level < Level::Group,
        }
    };

    let mut best: Option<(i64, Plan)> = None;
    for level in Level::ALL {
        // An empty group (messages stored before grouping) has no range.
        if level == Level::Group && chosen.iter().any(|b| b.group_id.is_empty()) {
            continue;
        }
        let mut arms: Vec<Arm> = chosen.iter().map(|b| Arm::of(level, b)).collect();
        arms.sort();
        arms.dedup();
        if level == Level::All {
            arms = vec![Arm::default()];
        } else if arms.len() > MAX_ARMS {
            continue;
        }
        // Rows in those arms, matching or not.
        let rows: i64 = buckets
            .iter()
            .filter(|b| arms.binary_search(&Arm::of(level, b)).is_ok())
            .map(|b| b.messages)
            .sum();
        let expected = if matching == 0 {
            0
        } else {
            rows.min(page.saturating_mul(rows) / matching)
        };
        let cost = arms.len() as i64 * ARM_COST + expected;
        let candidate = Plan {
            level,
            arms,
            matching,
            stored,
            residual: restricts_rows(level),
        };
        // Ties go to the coarser level (fewer statements to build).
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, candidate));
        }
    }
    best.expect("the primary key is always a candidate").1
}

/// Messages tested one by one, at most, before the rest of a search is
/// read from the index's match set (each test reads one document: about
/// 5 µs for a Spring failure's).
pub const PROBE_BUDGET: usize = 4_000;

/// The first window, at most: a page's worth of messages (four per wanted
/// match), or this many for a count.
pub const FIRST_WINDOW: usize = 512;

/// How many more messages than the hit rate so far predicts the next
/// window reads, in percent (a margin so one more window is rarely needed).
const WINDOW_MARGIN_PERCENT: usize = 150;

/// A search walked in windows (PostgreSQL's, see `browse/walk.rs`): the window
/// after one that tested `probed` messages and found `hits`
/// matches in total, `need` short of what is wanted: `None` when the rate
/// says the budget would not be enough (or nothing matched yet).
pub fn next_window(probed: usize, hits: usize, need: usize) -> Option<usize> {
    if hits == 0 {
        return None;
    }
    let expected = need * probed * WINDOW_MARGIN_PERCENT / (100 * hits);
    let window = expected.max(need);
    (probed + window <= PROBE_BUDGET).then_some(window)
}

#[cfg(test)]
#[path = "browse_tests.rs"]
mod tests;
