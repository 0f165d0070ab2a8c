//! `redrive import`: publish a JSON Lines export back into a queue, with
//! publisher confirms. The whole file is validated before anything is sent.

use std::path::PathBuf;

use anyhow::Context;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use lapin::options::ConfirmSelectOptions;
use lapin::BasicProperties;
use serde_json::Value;

use crate::broker::AmqpPool;
use crate::fields::{json_to_properties, json_to_table};
use crate::replay::publish_confirmed;

/// How long the broker may take to confirm one imported message.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// A JSON Lines file written by `GET /api/v1/messages/export`.
    pub file: PathBuf,
    /// Vhost to publish into.
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Exchange to publish to ("" is the default exchange).
    #[arg(long, default_value = "")]
    pub exchange: String,
    /// Routing key; with the default exchange, the queue name.
    #[arg(long)]
    pub routing_key: String,
}

/// One message ready to publish.
#[derive(Debug)]
pub struct Record {
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

/// Parses one export line.
pub fn parse_line(line: &str) -> anyhow::Result<Record> {
    let v: Value = serde_json::from_str(line).context("not JSON")?;
    let body = v["body_base64"].as_str().context("`body_base64` missing")?;
    let body = B64.decode(body).context("`body_base64` is not base64")?;
    let headers = json_to_table(
        v.get("headers").unwrap_or(&Value::Object(Default::default())),
        "headers",
    )?;
    let properties = json_to_properties(v.get("properties").unwrap_or(&Value::Object(Default::default())))?
        .with_headers(headers);
    Ok(Record { body, properties })
}

pub fn parse_file(text: &str) -> anyhow::Result<Vec<Record>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(l).with_context(|| format!("line {}", i + 1)))
        .collect()
}

pub async fn run(amqp_url: &str, args: &ImportArgs) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let records = parse_file(&text)?;
    let pool = AmqpPool::new(amqp_url, "import")?;
    let channel = pool
        .channel(&args.vhost)
        .await
        .context("connecting to the broker")?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    for (i, r) in records.iter().enumerate() {
        publish_confirmed(
            &channel,
            (&args.exchange, &args.routing_key),
            &r.body,
            r.properties.clone(),
            CONFIRM_TIMEOUT,
        )
        .await
        .with_context(|| format!("message {} (nothing after it was sent)", i + 1))?;
    }
    pool.close_all().await;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_names_its_number() {
        let good = r#"{"body_base64": "aGk=", "properties": {"message_id": "m"}, "headers": {"a": {"type": "i8", "value": 1}}}"#;
        assert_eq!(parse_file(good).unwrap()[0].body, b"hi");
        let err = parse_file(&format!("{good}\n\n{{\"body_base64\": \"***\"}}")).unwrap_err();
        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
        assert!(parse_file(r#"{"body_base64": "", "headers": {"a": 5}}"#).is_err());
    }
}
