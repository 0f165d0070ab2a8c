//! Planner statistics for the tables a page of the list reads.
//!
//! PostgreSQL chooses between reading a filter's index newest first and
//! collecting every match to sort it from its statistics. Without them
//! (autovacuum switched off, or not yet run after a burst of captures) it
//! guesses that any value matches half a percent of the rows: a group that
//! holds every message then cost 64 ms a page at 100,000 instead of 4 ms.
//! Autovacuum analyzes a table once a tenth of it changed; Redrive does the
//! same where autovacuum is off or has never analyzed the table.

use sqlx::PgPool;

use crate::store::StoreError;

/// The tables whose statistics steer a page's plan.
const TABLES: [&str; 4] = [
    "messages",
    "message_search",
    "message_counts_folded",
    "annotations",
];

/// Analyzes those of [`TABLES`] that changed by more than autovacuum's
/// default threshold (50 rows and a tenth of the table) since they were
/// last analyzed, when autovacuum is off or has never analyzed them.
pub(super) async fn refresh(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND relname = ANY($1)
           AND (current_setting('autovacuum') = 'off'
                OR (last_analyze IS NULL AND last_autoanalyze IS NULL))
           AND n_mod_since_analyze > 50 + n_live_tup / 10
         ORDER BY relname",
    )
    .bind(TABLES.as_slice())
    .fetch_all(pool)
    .await?;
    // Names from TABLES only, never from the catalog's answer.
    for table in TABLES.iter().filter(|t| stale.iter().any(|s| s == *t)) {
        sqlx::query(&format!("ANALYZE {table}")).execute(pool).await?;
    }
    Ok(stale)
}
