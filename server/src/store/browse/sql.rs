//! A page of the messages list as [`browse::plan`] reads it: the arms of
//! the chosen index merged newest first, or the full-text index walked
//! newest match first. Compiled once per backend (see `store`); the backend
//! supplies how an arm names its index and how a search is probed.

use crate::store::backend::{FullText, SqlBackend};
use sqlx::QueryBuilder;

use super::{
    select::{push_conditions, push_in},
    Db, Engine, Search,
};
use crate::store::browse::{self, Arm, Bucket, Level, Plan};
use crate::store::{Filter, StoreError};

/// A filter that matches at most this many messages (before its search
/// text) is searched by testing each of them in the full-text index; one
/// that matches more is searched from the full-text index, newest match
/// first, testing the filter on each match.
pub(super) const PROBE_LIMIT: i64 = browse::PROBE_BUDGET as i64;

/// Ids per block of `received_blocks` (the migrations' `id / 1024`).
const RECEIVED_BLOCK: i64 = 1024;

/// How a page is read.
pub(super) struct Reading<'f> {
    pub filter: &'f Filter,
    pub plan: Plan,
    /// The groups carrying the filter's tag (`None`: no tag filter).
    pub tag_groups: Option<Vec<String>>,
    /// `id > lo` and `id < hi`: the filter's time bounds as ids.
    pub lo: Option<i64>,
    pub hi: Option<i64>,
    /// The search text, when it has words.
    pub text: Option<&'f str>,
}

impl Reading<'_> {
    /// Whether the full-text index drives the page (else the arms do,
    /// probing the index per row). Only an index that yields its matches
    /// newest first can.
    pub fn text_driven(&self) -> bool {
        Search::IN_ID_ORDER
            && self.text.is_some()
            && (self.plan.level == Level::All || self.plan.matching > PROBE_LIMIT)
    }

    /// Whether a search is read by walking the filter's newest messages
    /// and then the index's match set (see `browse/walk.rs`), because the index
    /// cannot yield its matches in order.
    pub fn walked(&self) -> bool {
        !Search::IN_ID_ORDER && self.text.is_some()
    }

    /// `SELECT id, hit`, newest first: the filter's `k` newest messages
    /// below `before`, each with whether it matches `text` (one lookup of
    /// its document each).
    pub fn push_window(&self, b: &mut QueryBuilder<'_, Db>, text: &str, before: Option<i64>, k: i64) {
        // The window is named `messages` so the lookup's `messages.id`
        // reads the window's rows, without joining the table again.
        b.push("SELECT messages.id, ");
        Search::push_hit(b, text);
        b.push(" AS hit FROM (SELECT id FROM (");
        self.push_arms(b, before, Some(k), false);
        b.push(") AS arms ORDER BY id DESC LIMIT ")
            .push_bind(k)
            .push(") AS messages ORDER BY messages.id DESC");
    }

    /// `SELECT id` of the matches of `text` below `before` that
    /// pass the filter (at most `n`), from the index's match set: newest
    /// first when `ordered` (every match is then read and sorted), else
    /// any of them.
    pub fn push_matches(
        &self,
        b: &mut QueryBuilder<'_, Db>,
        text: &str,
        before: Option<i64>,
        n: Option<i64>,
        ordered: bool,
    ) {
        // Materialized: the match set is read through the full-text index,
        // never by walking the primary key and testing each document (the
        // planner cannot tell how many documents a phrase matches).
        b.push("WITH matches AS MATERIALIZED (");
        Search::push_matched_ids(b, text);
        // `+ 0`: the bounds test each match, and never choose the documents'
        // primary key to walk instead.
        let id = format!("{} + 0", Search::MATCH_ID);
        self.push_id_range(b, &id);
        if let Some(before) = before {
            b.push(format_args!(" AND {id} < ")).push_bind(before);
        }
        // Each match's row looked up by its id (a scalar subquery: never a
        // merge or hash join that reads every row newer than the oldest match).
        b.push(") SELECT matches.id FROM matches WHERE matches.id = (SELECT messages.id FROM messages WHERE messages.id = matches.id");
        push_conditions(self.filter, b);
        b.push(")");
        if ordered {
            b.push(" ORDER BY matches.id DESC");
        }
        if let Some(n) = n {
            b.push(" LIMIT ").push_bind(n);
        }
    }

    /// Whether the kept counts decide the total: no search text, no time
    /// bounds. A tag adds its directly tagged messages outside its groups
    /// (see [`Reading::push_tagged_apart`]).
    pub fn counted(&self) -> bool {
        let f = self.filter;
        self.text.is_none() && f.from_ms.is_none() && f.to_ms.is_none() && f.ids.is_none()
    }

    /// `SELECT COUNT(*)` of the tag's directly tagged messages that pass the
    /// rest of the filter and are not in a tagged group (the plan's buckets
    /// count those).
    pub fn push_tagged_apart(&self, b: &mut QueryBuilder<'_, Db>) {
        let Some(tag) = &self.filter.tag else {
            b.push("SELECT CAST(0 AS BIGINT)");
            return;
        };
        b.push("SELECT COUNT(*) FROM ");
        // By the tagged ids, never by an index of the other filters.
        b.push(Engine::arm_source(None));
        self.push_tagged_messages(b, tag);
    }

    /// `SELECT {columns} …` for a page of `limit` rows before `before`.
    pub fn push_page(&self, b: &mut QueryBuilder<'_, Db>, columns: &str, before: Option<i64>, limit: i64) {
        if self.text_driven() {
            b.push(format_args!("SELECT {columns} FROM "));
            Search::push_search_from(b, self.text.unwrap_or_default());
            self.push_rest(b, Search::MATCH_ID, before);
            b.push(format_args!(" ORDER BY {} DESC LIMIT ", Search::MATCH_ID))
                .push_bind(limit);
            return;
        }
        b.push(format_args!(
            "SELECT {columns} FROM messages WHERE messages.id IN (SELECT id FROM ("
        ));
        self.push_arms(b, before, Some(limit), true);
        b.push(") AS arms ORDER BY id DESC LIMIT ")
            .push_bind(limit)
            .push(") ORDER BY messages.id DESC");
    }

    /// `SELECT COUNT(*), COALESCE(SUM(matched), 0)` over at most `budget`
    /// rows read (`None`: all of them).
    pub fn push_count(&self, b: &mut QueryBuilder<'_, Db>, budget: Option<i64>) {
        if self.text_driven() {
            // Every match of the text is read (up to the budget) and
            // tested: the count stops after `budget` reads, not matches.
            b.push("SELECT COUNT(*), COALESCE(SUM(matched), 0) FROM (SELECT CASE WHEN 1 = 1");
            push_conditions(self.filter, b);
            b.push(" THEN 1 ELSE 0 END AS matched FROM ");
            Search::push_search_from(b, self.text.unwrap_or_default());
            self.push_id_range(b, Search::MATCH_ID);
        } else {
            b.push("SELECT COUNT(*), COUNT(*) FROM (SELECT 1 AS matched FROM (");
            self.push_arms(b, None, None, true);
            b.push(") AS arms");
        }
        if let Some(budget) = budget {
            b.push(" LIMIT ").push_bind(budget);
        }
        b.push(") AS counted");
    }

    /// The filter's conditions on a row that the driving index does not
    /// imply, and the id range.
    fn push_rest(&self, b: &mut QueryBuilder<'_, Db>, id: &str, before: Option<i64>) {
        push_conditions(self.filter, b);
        self.push_id_range(b, id);
        if let Some(before) = before {
            b.push(format_args!(" AND {id} < ")).push_bind(before);
        }
    }

    fn push_id_range(&self, b: &mut QueryBuilder<'_, Db>, id: &str) {
        if let Some(lo) = self.lo {
            b.push(format_args!(" AND {id} > ")).push_bind(lo);
        }
        if let Some(hi) = self.hi {
            b.push(format_args!(" AND {id} < ")).push_bind(hi);
        }
    }

    /// The arms as one compound `SELECT id …`, each newest first and
    /// limited to `limit` when given, each row tested against the search
    /// text when `probe`; a tag's directly tagged messages are one more
    /// arm. No arm at all selects nothing.
    fn push_arms(&self, b: &mut QueryBuilder<'_, Db>, before: Option<i64>, limit: Option<i64>, probe: bool) {
        let mut terms = 0;
        let mut term = |b: &mut QueryBuilder<'_, Db>| {
            if terms > 0 {
                // The arms are disjoint: distinct index ranges, and tagged
                // messages outside the tagged groups.
                b.push(" UNION ALL ");
            }
            terms += 1;
            b.push(format_args!("SELECT id FROM (SELECT messages.id AS id FROM "));
        };
        for arm in &self.plan.arms {
            term(b);
            b.push(Engine::arm_source(self.plan.level.index()));
            b.push(" WHERE 1 = 1");
            push_arm_key(b, arm);
            self.push_arm_rows(b, before, limit, true, probe);
        }
        if let Some(tag) = &self.filter.tag {
            term(b);
            b.push(Engine::arm_source(None));
            self.push_tagged_messages(b, tag);
            self.push_arm_rows(b, before, limit, false, probe);
        }
        if terms == 0 {
            b.push("SELECT id FROM (SELECT messages.id AS id FROM messages WHERE 1 = 0");
            self.push_arm_rows(b, before, limit, false, false);
        }
    }

    /// ` WHERE` the row is one of the messages tagged `tag` directly, not in
    /// a tagged group (the group arms read those), and passes the rest of
    /// the filter.
    fn push_tagged_messages(&self, b: &mut QueryBuilder<'_, Db>, tag: &str) {
        b.push(
            " WHERE messages.id IN (SELECT CAST(target_id AS BIGINT) FROM annotations
               WHERE target_kind = 'message' AND kind = 'tag' AND text = ",
        )
        .push_bind(tag.to_owned())
        .push(")");
        let untagged = Filter {
            tag: None,
            ..self.filter.clone()
        };
        push_conditions(&untagged, b);
        b.push(" AND (group_id IS NULL OR group_id NOT IN (");
        let mut list = b.separated(", ");
        for g in self.tag_groups.iter().flatten() {
            list.push_bind(g.clone());
        }
        list.push("''");
        b.push("))");
    }

    /// Inside an arm: the residual conditions (when the arm is an index
    /// range), the search probe (when `probe`), the id range, the order
    /// and the limit; closes the arm's subquery.
    fn push_arm_rows(
        &self,
        b: &mut QueryBuilder<'_, Db>,
        before: Option<i64>,
        limit: Option<i64>,
        residual: bool,
        probe: bool,
    ) {
        if residual {
            push_residual(b, self);
        }
        if let (Some(text), true) = (self.text, probe) {
            Search::push_probe(b, text);
        }
        self.push_id_range(b, "messages.id");
        if let Some(before) = before {
            b.push(" AND messages.id < ").push_bind(before);
        }
        if let Some(limit) = limit {
            b.push(" ORDER BY messages.id DESC LIMIT ").push_bind(limit);
        }
        b.push(") AS arm");
    }
}

/// ` AND column = value` for each key column of the arm.
fn push_arm_key(b: &mut QueryBuilder<'_, Db>, arm: &Arm) {
    for (column, value) in [
        ("group_id", &arm.group),
        ("vhost", &arm.vhost),
        ("queue", &arm.queue),
        ("status", &arm.status),
    ] {
        if let Some(v) = value {
            b.push(format_args!(" AND {column} = ")).push_bind(v.clone());
        }
    }
}

/// The equality conditions the arm's index does not imply, and the time
/// bounds (the id range only narrows where to look).
fn push_residual(b: &mut QueryBuilder<'_, Db>, r: &Reading<'_>) {
    let (f, rest) = (r.filter, &r.plan.residual);
    let column = |name: &str| name.to_owned();
    if rest.status {
        if let Some(s) = f.status {
            b.push(format_args!(" AND {} = ", column("status"))).push_bind(s.as_str());
        }
    }
    for (on, name, value) in [
        (rest.vhost, "vhost", &f.vhost),
        (rest.queue, "queue", &f.queue),
        (rest.service, "service", &f.service),
        (rest.group, "group_id", &f.group),
    ] {
        if let (true, Some(v)) = (on, value) {
            b.push(format_args!(" AND {} = ", column(name))).push_bind(v.clone());
        }
    }
    if let (true, Some(vhosts)) = (rest.visible, &f.visible) {
        push_in(b, &column("vhost"), vhosts);
    }
    if let (true, Some(groups)) = (rest.tag_groups, &r.tag_groups) {
        push_in(b, &column("group_id"), groups);
    }
    if let Some(t) = f.from_ms {
        b.push(format_args!(" AND {} >= ", column("received_at"))).push_bind(t);
    }
    if let Some(t) = f.to_ms {
        b.push(format_args!(" AND {} < ", column("received_at"))).push_bind(t);
    }
}

impl Engine {
    /// Plans a page of `filter` (see [`browse::plan`]).
    pub(super) async fn reading<'f>(&self, filter: &'f Filter, page: i64) -> Result<Reading<'f>, StoreError> {
        // Three independent reads, each a round trip: run at once on the
        // pool, so a tag with a time window waits for one, not three.
        let buckets = async {
            let sql = "SELECT vhost, queue, service, group_id, status, messages FROM message_counts WHERE messages > 0";
            Ok::<Vec<Bucket>, StoreError>(sqlx::query_as(sql).fetch_all(self.pool()).await?)
        };
        let tag_groups = async {
            let Some(tag) = &filter.tag else {
                return Ok(None);
            };
            let sql = "SELECT target_id FROM annotations WHERE target_kind = 'group' AND kind = 'tag' AND text = $1";
            Ok::<_, StoreError>(Some(sqlx::query_scalar(sql).bind(tag).fetch_all(self.pool()).await?))
        };
        let (buckets, tag_groups, (lo, hi)) =
            tokio::try_join!(buckets, tag_groups, self.id_window(filter.from_ms, filter.to_ms))?;
        let plan = browse::plan(filter, &buckets, tag_groups.as_deref(), page);
        let text = filter.text.as_deref().filter(|t| t.split_whitespace().next().is_some());
        Ok(Reading {
            filter,
            plan,
            tag_groups,
            lo,
            hi,
            text,
        })
    }

    /// Time bounds as ids: every message received at or after `from` has
    /// an id above `lo`, every one received before `to` an id below `hi`.
    /// They are the edges of the id blocks whose arrivals overlap the
    /// window (`received_blocks`); a window no block overlaps is empty.
    async fn id_window(&self, from: Option<i64>, to: Option<i64>) -> Result<(Option<i64>, Option<i64>), StoreError> {
        if from.is_none() && to.is_none() {
            return Ok((None, None));
        }
        let (first, last): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(block), MAX(block) FROM received_blocks
             WHERE max_received_at >= $1 AND min_received_at < $2",
        )
        .bind(from.unwrap_or(i64::MIN))
        .bind(to.unwrap_or(i64::MAX))
        .fetch_one(self.pool())
        .await?;
        let (Some(first), Some(last)) = (first, last) else {
            return Ok((Some(0), Some(0)));
        };
        Ok((
            from.map(|_| first * RECEIVED_BLOCK - 1),
            to.map(|_| (last + 1) * RECEIVED_BLOCK),
        ))
    }
}
