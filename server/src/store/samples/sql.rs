//! SQL for `store::samples`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{Db, Engine};
use crate::store::*;
use crate::store::samples::*;
use crate::store::StoreError;
use app::model::{HistoryPoint, InflowPoint};
use async_trait::async_trait;
use sqlx::QueryBuilder;
use std::collections::HashMap;

#[async_trait]
impl SampleStore for Engine {
    async fn insert_samples(
        &self,
        at: i64,
        resolution_secs: i64,
        samples: &[Sample],
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        for s in samples {
            sqlx::query(
                "INSERT INTO queue_samples (at, vhost, queue, resolution_secs, ready, unacked, consumers,
                    publish_rate, deliver_rate, redeliver_rate, ack_rate, backlog)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(at)
            .bind(&s.vhost)
            .bind(&s.queue)
            .bind(resolution_secs)
            .bind(s.ready)
            .bind(s.unacked)
            .bind(s.consumers)
            .bind(s.publish_rate)
            .bind(s.deliver_rate)
            .bind(s.redeliver_rate)
            .bind(s.ack_rate)
            .bind(s.backlog)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn compact_samples(&self, now: i64, retention_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM queue_samples WHERE at < $1")
            .bind(now - retention_ms)
            .execute(&mut *tx)
            .await?;
        for (age_secs, bucket_secs) in DOWNSAMPLING {
            let bucket = bucket_secs * 1000;
            let cutoff = (now - age_secs * 1000).div_euclid(bucket) * bucket;
            // The finer resolutions present (the sampling interval, an
            // earlier one, a finer step), found by index seeks. Naming them
            // lets the `(resolution_secs, at)` index yield only the rows past
            // the cut-off, instead of every sample older than the cut-off.
            let mut finer: Vec<i64> = Vec::new();
            while let Some(resolution) = sqlx::query_scalar::<_, Option<i64>>(
                "SELECT min(resolution_secs) FROM queue_samples
                 WHERE resolution_secs > $1 AND resolution_secs < $2",
            )
            .bind(finer.last().copied().unwrap_or(0))
            .bind(bucket_secs)
            .fetch_one(&mut *tx)
            .await?
            {
                finer.push(resolution);
            }
            if finer.is_empty() {
                continue;
            }
            let list = finer.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            sqlx::query(&format!(
                "INSERT INTO queue_samples (at, vhost, queue, resolution_secs, ready, unacked, consumers,
                    publish_rate, deliver_rate, redeliver_rate, ack_rate, backlog)
                 SELECT (at / $1) * $1, vhost, queue, $2, avg(ready), avg(unacked), avg(consumers),
                    avg(publish_rate), avg(deliver_rate), avg(redeliver_rate), avg(ack_rate), avg(backlog)
                 FROM queue_samples WHERE resolution_secs IN ({list}) AND at < $3
                 GROUP BY vhost, queue, at / $1"
            ))
            .bind(bucket)
            .bind(bucket_secs)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            sqlx::query(&format!(
                "DELETE FROM queue_samples WHERE resolution_secs IN ({list}) AND at < $1"
            ))
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn queue_history(
        &self,
        vhost: &str,
        queue: &str,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let rows: Vec<(i64, f64, f64, f64)> = sqlx::query_as(
            "SELECT (at / $1) * $1 AS b, avg(ready), avg(unacked), avg(consumers)
             FROM queue_samples WHERE vhost = $2 AND queue = $3 AND at >= $4
             GROUP BY b ORDER BY b",
        )
        .bind(bucket_ms)
        .bind(vhost)
        .bind(queue)
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, ready, unacked, consumers)| HistoryPoint {
                at,
                ready,
                unacked,
                consumers,
            })
            .collect())
    }

    async fn service_inflow(
        &self,
        service: Option<&str>,
        since: i64,
        bucket_ms: i64,
        visible: Option<&[String]>,
    ) -> Result<Vec<InflowPoint>, StoreError> {
        let mut b = QueryBuilder::<Db>::new("SELECT (received_at / ");
        b.push_bind(bucket_ms)
            .push(") * ")
            .push_bind(bucket_ms)
            .push(" AS b, count(*) FROM messages WHERE received_at >= ")
            .push_bind(since);
        if let Some(s) = service {
            b.push(" AND service = ").push_bind(s.to_owned());
        }
        if let Some(vhosts) = visible {
            super::select::push_vhosts(&mut b, vhosts);
        }
        b.push(" GROUP BY b ORDER BY b");
        let rows: Vec<(i64, i64)> = b.build_query_as().fetch_all(self.pool()).await?;
        let minutes = bucket_ms as f64 / 60_000.0;
        Ok(rows
            .into_iter()
            .map(|(at, n)| InflowPoint {
                at,
                per_minute: n as f64 / minutes,
            })
            .collect())
    }

    async fn inflow_by_service(
        &self,
        since: i64,
        visible: Option<&[String]>,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut b = QueryBuilder::<Db>::new(
            "SELECT COALESCE(service, ''), count(*) FROM messages WHERE received_at >= ",
        );
        b.push_bind(since);
        if let Some(vhosts) = visible {
            super::select::push_vhosts(&mut b, vhosts);
        }
        // A held group is quiet here (the overview, inflow alerts) until its hold ends.
        super::group_claims::push_not_held(&mut b, now_ms());
        b.push(" GROUP BY 1 ORDER BY 2 DESC");
        Ok(b.build_query_as().fetch_all(self.pool()).await?)
    }

    async fn samples_since(
        &self,
        since: i64,
    ) -> Result<HashMap<(String, String), Vec<TimedSample>>, StoreError> {
        type Row = (i64, String, String, f64, f64, f64, f64, f64, f64, f64, f64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT at, vhost, queue, ready, unacked, consumers, publish_rate, deliver_rate,
                redeliver_rate, ack_rate, backlog
             FROM queue_samples WHERE at >= $1 ORDER BY at",
        )
        .bind(since)
        .fetch_all(self.pool())
        .await?;
        let mut out: HashMap<(String, String), Vec<TimedSample>> = HashMap::new();
        for (at, vhost, queue, ready, unacked, consumers, publish, deliver, redeliver, ack, backlog) in rows {
            out.entry((vhost.clone(), queue.clone()))
                .or_default()
                .push(TimedSample {
                    at,
                    sample: Sample {
                        vhost,
                        queue,
                        ready,
                        unacked,
                        consumers,
                        publish_rate: publish,
                        deliver_rate: deliver,
                        redeliver_rate: redeliver,
                        ack_rate: ack,
                        backlog,
                    },
                });
        }
        Ok(out)
    }

    async fn stored_counts(&self, visible: Option<&[String]>) -> Result<(i64, i64), StoreError> {
        let now = now_ms();
        // Failures of a held group do not wait for anyone until its hold
        // ends, nor do messages held by themselves (a few rows, by their
        // claims): one statement, so the two never disagree.
        let mut b = QueryBuilder::<Db>::new(
            "SELECT stored, waiting - ",
        );
        super::message_claims::push_held_count(&mut b, now, visible);
        b.push(
            " FROM (SELECT CAST(COALESCE(SUM(messages), 0) AS BIGINT) AS stored,
                    CAST(COALESCE(SUM(CASE WHEN status = 'failed' AND group_id NOT IN
                        (SELECT group_id FROM group_claims WHERE hold_until > ",
        );
        b.push_bind(now).push(
            ") THEN messages ELSE 0 END), 0) AS BIGINT) AS waiting
             FROM message_counts WHERE 1 = 1",
        );
        if let Some(vhosts) = visible {
            super::select::push_vhosts(&mut b, vhosts);
        }
        b.push(") AS totals");
        Ok(b.build_query_as().fetch_one(self.pool()).await?)
    }

    async fn unhandled_counts(&self) -> Result<HashMap<(String, String), (i64, i64)>, StoreError> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT vhost, queue, CAST(SUM(messages) AS BIGINT), CAST(SUM(transient) AS BIGINT)
             FROM message_counts WHERE status = 'failed' GROUP BY vhost, queue
             HAVING SUM(messages) > 0",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(v, q, n, transient)| ((v, q), (n, transient)))
            .collect())
    }
}
