//! A PostgreSQL database of one run's own, created and dropped through an
//! admin URL (a role that may create databases, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use anyhow::Context;
use sqlx::Connection;

/// A scratch database. [`ScratchDatabase::drop_database`] removes it.
#[derive(Debug, Clone)]
pub struct ScratchDatabase {
    admin: String,
    pub name: String,
}

impl ScratchDatabase {
    /// Creates `name` (which must be unique) on the server `admin` names.
    pub async fn create(admin: &str, name: &str) -> anyhow::Result<Self> {
        execute(admin, &format!("CREATE DATABASE \"{name}\"")).await?;
        Ok(Self {
            admin: admin.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The database's URL: the admin URL with its path replaced.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.admin).expect("checked by create");
        url.set_path(&self.name);
        url.to_string()
    }

    /// Drops the database, closing whatever still holds it open.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        execute(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        )
        .await
    }
}

/// Runs one statement on the admin connection.
async fn execute(admin: &str, sql: &str) -> anyhow::Result<()> {
    url::Url::parse(admin).with_context(|| format!("{admin} is not a postgres URL"))?;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .with_context(|| format!("{admin} must reach PostgreSQL"))?;
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .context(sql.to_owned())?;
    let _ = conn.close().await;
    Ok(())
}
