//! SQL for `store::watched`, compiled once per backend (see `store`).

use crate::store::backend::SqlBackend;
use super::{Conn, Engine};
use crate::store::*;
use crate::store::{now_ms, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use app::model::CaptureMode;

#[async_trait]
impl WatchStore for Engine {
    async fn watched_queues(&self) -> Result<Vec<WatchedQueue>, StoreError> {
        Ok(
            sqlx::query_as("SELECT vhost, name, reason FROM watched_queues ORDER BY vhost, name")
                .fetch_all(self.pool())
                .await?,
        )
    }

    async fn sync_watched(
        &self,
        vhost: &str,
        queues: &HashMap<String, String>,
        default: CaptureMode,
    ) -> Result<(), StoreError> {
        // Discovery runs every few seconds and rarely changes anything: a
        // plain read first, so it opens a write transaction only for a change.
        let current: HashMap<String, String> =
            sqlx::query_as("SELECT name, reason FROM watched_queues WHERE vhost = $1")
                .bind(vhost)
                .fetch_all(self.pool())
                .await?
                .into_iter()
                .collect();
        if &current == queues {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let stored: Vec<(String, String)> =
            sqlx::query_as("SELECT name, reason FROM watched_queues WHERE vhost = $1")
                .bind(vhost)
                .fetch_all(&mut *tx)
                .await?;
        for (name, reason) in &stored {
            match queues.get(name) {
                None => {
                    sqlx::query("DELETE FROM watched_queues WHERE vhost = $1 AND name = $2")
                        .bind(vhost)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                Some(now) if now != reason => {
                    sqlx::query("UPDATE watched_queues SET reason = $1 WHERE vhost = $2 AND name = $3")
                        .bind(now)
                        .bind(vhost)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                Some(_) => {}
            }
        }
        for (name, reason) in queues {
            if stored.iter().all(|(n, _)| n != name) {
                sqlx::query(
                    // Another instance's discovery may have just added it.
                    "INSERT INTO watched_queues (vhost, name, reason, since) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (vhost, name) DO NOTHING",
                )
                .bind(vhost)
                .bind(name)
                .bind(reason)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO capture_modes (vhost, name, mode, actor, at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (vhost, name) DO NOTHING",
                )
                .bind(vhost)
                .bind(name)
                .bind(default.as_str())
                .bind(DEFAULT_ACTOR)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn apply_capture_default(&self, default: CaptureMode) -> Result<DefaultApplied, StoreError> {
        let mut tx = self.write_tx().await?;
        let last: Option<String> = sqlx::query_scalar("SELECT mode FROM capture_default WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        // Without a record (the first start since modes were stored), the
        // queues watched so far were captured in today's default.
        let last = match last {
            Some(m) => CaptureMode::try_from(m).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => default,
        };
        // (`WHERE TRUE`: SQLite's parser needs it before an upsert's ON.)
        sqlx::query(
            "INSERT INTO capture_modes (vhost, name, mode, actor, at)
             SELECT vhost, name, $1, $2, $3 FROM watched_queues WHERE TRUE
             ON CONFLICT (vhost, name) DO NOTHING",
        )
        .bind(last.as_str())
        .bind(DEFAULT_ACTOR)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let mut switched = Vec::new();
        if let Some(direction) = SwitchDirection::between(last, default) {
            let queues: Vec<(String, String, bool, bool)> = sqlx::query_as(
                "SELECT m.vhost, m.name,
                        EXISTS (SELECT 1 FROM watched_queues w WHERE w.vhost = m.vhost AND w.name = m.name),
                        EXISTS (SELECT 1 FROM capture_switches s WHERE s.vhost = m.vhost AND s.name = m.name)
                 FROM capture_modes m
                 WHERE m.actor = $1 AND m.mode = $2",
            )
            .bind(DEFAULT_ACTOR)
            .bind(last.as_str())
            .fetch_all(&mut *tx)
            .await?;
            // Rolled back on return: nothing of the change is recorded. A
            // queue no longer watched (its vhost may be gone) may never end
            // its switch: it keeps its mode, as an unwatched queue does.
            if queues.iter().any(|(_, _, watched, switching)| *watched && *switching) {
                return Ok(DefaultApplied::Waiting);
            }
            for (vhost, name, watched, _) in queues.into_iter().filter(|q| !q.3) {
                sqlx::query("UPDATE capture_modes SET mode = $1, at = $2 WHERE vhost = $3 AND name = $4")
                    .bind(default.as_str())
                    .bind(now_ms())
                    .bind(&vhost)
                    .bind(&name)
                    .execute(&mut *tx)
                    .await?;
                if watched {
                    insert_switch(&mut tx, (&vhost, &name), direction, &uuid::Uuid::new_v4().to_string()).await?;
                    switched.push((vhost, name, direction));
                }
            }
        }
        sqlx::query(
            "INSERT INTO capture_default (id, mode, at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET mode = excluded.mode, at = excluded.at",
        )
        .bind(default.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DefaultApplied::Switched(switched))
    }

    async fn forget_watched_vhosts_except(&self, vhosts: &[String]) -> Result<(), StoreError> {
        let stored: Vec<String> = sqlx::query_scalar("SELECT DISTINCT vhost FROM watched_queues")
            .fetch_all(self.pool())
            .await?;
        for gone in stored.iter().filter(|v| !vhosts.contains(v)) {
            sqlx::query("DELETE FROM watched_queues WHERE vhost = $1")
                .bind(gone)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    async fn watch_overrides(&self, vhost: &str) -> Result<HashMap<String, bool>, StoreError> {
        let rows: Vec<(String, bool)> =
            sqlx::query_as("SELECT name, watch FROM watch_overrides WHERE vhost = $1")
                .bind(vhost)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.into_iter().collect())
    }

    async fn all_watch_overrides(&self) -> Result<HashMap<String, HashMap<String, bool>>, StoreError> {
        let rows: Vec<(String, String, bool)> =
            sqlx::query_as("SELECT vhost, name, watch FROM watch_overrides")
                .fetch_all(self.pool())
                .await?;
        let mut out: HashMap<String, HashMap<String, bool>> = HashMap::new();
        for (vhost, name, watch) in rows {
            out.entry(vhost).or_default().insert(name, watch);
        }
        Ok(out)
    }

    async fn set_watch_override(
        &self,
        vhost: &str,
        name: &str,
        watch: Option<bool>,
        actor: &str,
    ) -> Result<(), StoreError> {
        match watch {
            Some(w) => {
                sqlx::query(
                    "INSERT INTO watch_overrides (vhost, name, watch, actor, at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (vhost, name) DO UPDATE SET watch = excluded.watch,
                        actor = excluded.actor, at = excluded.at",
                )
                .bind(vhost)
                .bind(name)
                .bind(w)
                .bind(actor)
                .bind(now_ms())
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM watch_overrides WHERE vhost = $1 AND name = $2")
                    .bind(vhost)
                    .bind(name)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    async fn capture_modes(&self) -> Result<HashMap<String, HashMap<String, CaptureMode>>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT vhost, name, mode FROM capture_modes")
                .fetch_all(self.pool())
                .await?;
        let mut out: HashMap<String, HashMap<String, CaptureMode>> = HashMap::new();
        for (vhost, name, mode) in rows {
            let mode = CaptureMode::try_from(mode).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.entry(vhost).or_default().insert(name, mode);
        }
        Ok(out)
    }

    async fn set_capture_mode(
        &self,
        vhost: &str,
        name: &str,
        mode: CaptureMode,
        default: CaptureMode,
        actor: &str,
    ) -> Result<Option<SwitchDirection>, StoreError> {
        let mut tx = self.write_tx().await?;
        let under_way: Option<String> =
            sqlx::query_scalar("SELECT direction FROM capture_switches WHERE vhost = $1 AND name = $2")
                .bind(vhost)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(direction) = under_way {
            let direction = SwitchDirection::try_from(direction).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if direction.target() == mode {
                return Ok(None);
            }
            return Err(StoreError::Conflict(format!(
                "{name} is switching to {} capture; change it again once that switch ends",
                direction.target()
            )));
        }
        let stored: Option<String> =
            sqlx::query_scalar("SELECT mode FROM capture_modes WHERE vhost = $1 AND name = $2")
                .bind(vhost)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let now = match stored {
            Some(m) => CaptureMode::try_from(m).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => default,
        };
        let captured: Option<String> =
            sqlx::query_scalar("SELECT name FROM watched_queues WHERE vhost = $1 AND name = $2")
                .bind(vhost)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO capture_modes (vhost, name, mode, actor, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (vhost, name) DO UPDATE SET mode = excluded.mode,
                actor = excluded.actor, at = excluded.at",
        )
        .bind(vhost)
        .bind(name)
        .bind(mode.as_str())
        .bind(actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let switch = captured.and(SwitchDirection::between(now, mode));
        if let Some(direction) = switch {
            insert_switch(&mut tx, (vhost, name), direction, &uuid::Uuid::new_v4().to_string()).await?;
        }
        tx.commit().await?;
        Ok(switch)
    }

    async fn capture_switches(&self) -> Result<Vec<CaptureSwitch>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT vhost, name, direction, marker, marker_sent, source_done, tap_done
             FROM capture_switches ORDER BY vhost, name",
        )
        .fetch_all(self.pool())
        .await?)
    }

    async fn begin_capture_switch(&self, vhost: &str, name: &str, marker: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        insert_switch(&mut tx, (vhost, name), SwitchDirection::ToTap, marker).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn capture_marker_sending(&self, vhost: &str, name: &str, marker: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE capture_switches SET marker_sent = TRUE WHERE vhost = $1 AND name = $2 AND marker = $3",
        )
        .bind(vhost)
        .bind(name)
        .bind(marker)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn capture_switch_passed(
        &self,
        vhost: &str,
        name: &str,
        marker: &str,
        side: SwitchSide,
    ) -> Result<(), StoreError> {
        let set = match side {
            SwitchSide::Source => "source_done",
            SwitchSide::Tap => "tap_done",
        };
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!(
            "UPDATE capture_switches SET {set} = TRUE WHERE vhost = $1 AND name = $2 AND marker = $3"
        ))
        .bind(vhost)
        .bind(name)
        .bind(marker)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM capture_switches WHERE vhost = $1 AND name = $2 AND marker = $3
               AND source_done AND tap_done",
        )
        .bind(vhost)
        .bind(name)
        .bind(marker)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_capture_switch(
        &self,
        vhost: &str,
        name: &str,
        only: Option<SwitchDirection>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM capture_switches WHERE vhost = $1 AND name = $2
               AND ($3 IS NULL OR direction = $3)",
        )
        .bind(vhost)
        .bind(name)
        .bind(only.map(SwitchDirection::as_str))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// Records a switch of `queue` (replacing one that never got under way).
async fn insert_switch(
    tx: &mut Conn,
    (vhost, name): (&str, &str),
    direction: SwitchDirection,
    marker: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO capture_switches (vhost, name, direction, marker, marker_sent, started_at)
         VALUES ($1, $2, $3, $4, FALSE, $5)
         ON CONFLICT (vhost, name) DO UPDATE SET direction = excluded.direction,
            marker = excluded.marker, marker_sent = FALSE, source_done = FALSE,
            tap_done = FALSE, started_at = excluded.started_at",
    )
    .bind(vhost)
    .bind(name)
    .bind(direction.as_str())
    .bind(marker)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
