//! The one typed configuration, from flags or `REDRIVE_*` environment
//! variables, in one section per subsystem: each subsystem reads its own
//! section, `--help` lists them under their headings, and secrets are typed
//! as secrets so the derived `Debug` (logged at start-up) never shows them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};

mod mask;
mod notify;
pub use mask::MaskConfig;
pub use notify::NotifyConfig;

/// Default for `REDRIVE_WATCH`: Spring's `error.queue` and
/// `<service>.error.queue`, `*.dlq`, and MassTransit's `*_error`.
pub const DEFAULT_WATCH: &str = r"^((.+\.)?error\.queue|.+\.dlq|.+_error)$";

#[derive(Clone, Debug, Parser)]
#[command(
    name = "redrive",
    version,
    about = "RabbitMQ dead-letter triage: capture, inspect, replay.",
    // A later flag overrides an earlier one, as with environment layering.
    args_override_self = true
)]
pub struct Config {
    #[command(flatten)]
    pub broker: BrokerConfig,
    #[command(flatten)]
    pub store: StoreConfig,
    #[command(flatten)]
    pub capture: CaptureConfig,
    #[command(flatten)]
    pub replay: ReplayConfig,
    #[command(flatten)]
    pub monitor: MonitorConfig,
    #[command(flatten)]
    pub web: WebConfig,
    #[command(flatten)]
    pub mask: MaskConfig,
    #[command(flatten)]
    pub notify: NotifyConfig,

    /// Seconds a stop (SIGTERM/SIGINT) may take: in-flight batches are
    /// committed and acked, confirms awaited; then the process exits anyway.
    #[arg(long, env = "REDRIVE_SHUTDOWN_GRACE", default_value = "20", value_parser = secs)]
    pub shutdown_grace: Duration,

    /// Log lines as text for people (`text`) or one JSON object per line
    /// for a log pipeline (`json`). Levels come from `RUST_LOG`.
    #[arg(long, env = "REDRIVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The broker: where to connect and what to watch there.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Broker")]
pub struct BrokerConfig {
    /// AMQP URL, or one per cluster node, comma-separated: connections go to
    /// the node that last accepted one, else to the next in the list. The
    /// first URL's vhost is only the default; Redrive connects to every
    /// watched vhost. A comma inside a password is written `%2C`.
    #[arg(
        long,
        env = "REDRIVE_AMQP_URL",
        value_parser = SecretUrls::parse,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: SecretUrls,

    /// Base URL of the RabbitMQ management HTTP API, or one per cluster node,
    /// comma-separated: a node that does not answer is skipped for the next.
    #[arg(
        long,
        env = "REDRIVE_MANAGEMENT_URL",
        default_value = "http://127.0.0.1:15672"
    )]
    pub management_url: String,

    /// User for the management API.
    #[arg(long, env = "REDRIVE_MANAGEMENT_USER", default_value = "guest")]
    pub management_user: String,

    /// Password for the management API (never logged).
    #[arg(
        long,
        env = "REDRIVE_MANAGEMENT_PASSWORD",
        value_parser = secret,
        default_value = "guest",
        hide_default_value = true
    )]
    pub management_password: SecretString,

    /// Seconds the management API may take before pages fall back to the
    /// last known data (degraded mode).
    #[arg(long, env = "REDRIVE_MANAGEMENT_TIMEOUT", default_value = "5", value_parser = secs)]
    pub management_timeout: Duration,

    /// Comma-separated vhosts to watch; empty means every vhost the management user sees.
    #[arg(long, env = "REDRIVE_VHOSTS", value_delimiter = ',', default_value = "")]
    pub vhosts: Vec<String>,
}

/// The database, and how long what it holds is kept.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Storage")]
pub struct StoreConfig {
    /// Database URL: `sqlite://…` (one instance; a relative path is created
    /// in the working directory) or `postgres://user:password@host/db`
    /// (several instances on one existing database).
    #[arg(
        long,
        env = "REDRIVE_DATABASE_URL",
        value_parser = SecretUrls::parse,
        default_value = "sqlite://redrive.db?mode=rwc"
    )]
    pub database_url: SecretUrls,

    /// This instance's name on the leases and replay claims it holds (a
    /// random suffix keeps two instances of one name apart), so an operator
    /// can tell which instance runs a job: a pod or host name.
    #[arg(long, env = "REDRIVE_INSTANCE_NAME", default_value = "redrive")]
    pub instance_name: String,

    /// Days a discarded message stays restorable before it is purged.
    #[arg(long, env = "REDRIVE_RETENTION_DAYS", default_value_t = 14.0)]
    pub retention_days: f64,

    /// Seconds between purges of expired discarded messages.
    #[arg(long, env = "REDRIVE_PURGE_INTERVAL", default_value = "3600", value_parser = secs)]
    pub purge_interval: Duration,

    /// Days audit entries are kept; older ones are deleted (and that is logged).
    #[arg(long, env = "REDRIVE_AUDIT_RETENTION_DAYS", default_value_t = 365.0)]
    pub audit_retention_days: f64,
}

/// Which queues are captured, and how deliveries are committed then acked.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Capture")]
pub struct CaptureConfig {
    /// Regex over queue names: matching queues are captured. Queues bound to
    /// an error exchange and dead-letter queues are captured whatever their name.
    #[arg(long, env = "REDRIVE_WATCH", default_value = DEFAULT_WATCH)]
    pub watch: Regex,

    /// Comma-separated error exchanges (Spring's RepublishMessageRecoverer
    /// target): every queue bound to one is captured.
    #[arg(
        long,
        env = "REDRIVE_ERROR_EXCHANGES",
        value_delimiter = ',',
        default_value = "error.direct"
    )]
    pub error_exchanges: Vec<String>,

    /// Regex over queue names that are never captured, whatever else matches
    /// (an operator's switch on the Queues page still wins). Empty: none.
    #[arg(long, env = "REDRIVE_IGNORE", default_value = "", value_parser = optional_regex)]
    pub ignore: OptionalRegex,

    /// How Redrive captures the queues it watches, unless an operator set a
    /// queue's mode on the Queues page: `consume` takes their messages into
    /// Redrive's store; `tap` leaves them to the services and captures
    /// copies through a queue of Redrive's own, `redrive.tap.<queue>`, bound
    /// wherever the queue is (needs `configure` on `^redrive\.tap\.`). A
    /// new value switches the queues that took the old one, exactly and
    /// audited; every instance should have the same.
    #[arg(long, env = "REDRIVE_CAPTURE_MODE", default_value = "consume")]
    pub capture_mode: app::model::CaptureMode,

    /// How often watched queues are re-discovered, in seconds.
    #[arg(long, env = "REDRIVE_DISCOVERY_INTERVAL", default_value = "15", value_parser = secs)]
    pub discovery_interval: Duration,

    /// Unacknowledged deliveries per watched queue (the prefetch window), at
    /// most. It holds about three batches: one commits while the next fills.
    #[arg(long, env = "REDRIVE_PREFETCH", default_value_t = 2000)]
    pub prefetch: u16,

    /// Bytes of unacknowledged bodies per watched queue, at most: large
    /// messages shrink the prefetch window so memory stays bounded.
    #[arg(long, env = "REDRIVE_INFLIGHT_BYTES", default_value_t = 32 << 20)]
    pub inflight_bytes: usize,

    /// Messages committed per database transaction before they are acked.
    #[arg(long, env = "REDRIVE_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,

    /// Bytes of bodies committed per transaction at most (a batch of large
    /// messages is flushed early, so memory stays bounded).
    #[arg(long, env = "REDRIVE_BATCH_BYTES", default_value_t = 16 << 20)]
    pub batch_bytes: usize,

    /// Seconds within which a redelivered copy may match the stored row it
    /// duplicates (an ack lost in a crash). The broker's consumer timeout.
    #[arg(long, env = "REDRIVE_REDELIVERY_WINDOW", default_value = "1800", value_parser = secs)]
    pub redelivery_window: Duration,
}

/// Republishing: confirms and the replay-loop guard.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Replay")]
pub struct ReplayConfig {
    /// Seconds to wait for the broker's confirm of a replay before reporting it lost.
    #[arg(long, env = "REDRIVE_CONFIRM_TIMEOUT", default_value = "10", value_parser = secs)]
    pub confirm_timeout: Duration,

    /// A replay job pauses itself when more than this share of its replayed
    /// messages fail again within `REDRIVE_LOOP_WINDOW` (a replay loop).
    #[arg(long, env = "REDRIVE_LOOP_THRESHOLD", default_value_t = 0.2)]
    pub loop_threshold: f64,

    /// Window of the replay-loop check, in seconds.
    #[arg(long, env = "REDRIVE_LOOP_WINDOW", default_value = "60", value_parser = secs)]
    pub loop_window: Duration,

    /// A bulk replay or discard job over more than this many messages waits
    /// in `awaiting_approval`, sending nothing, until another user with the
    /// same permissions approves it. Unset: no approval needed.
    #[arg(long, env = "REDRIVE_APPROVAL_THRESHOLD")]
    pub approval_threshold: Option<u64>,

    /// Seconds a job waits for approval before it is cancelled as expired.
    #[arg(long, env = "REDRIVE_APPROVAL_TTL", default_value = "86400", value_parser = secs)]
    pub approval_ttl: Duration,
}

/// Queue sampling and the advisor.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Monitoring")]
pub struct MonitorConfig {
    /// Seconds between samples of every queue's counters.
    #[arg(long, env = "REDRIVE_SAMPLE_INTERVAL", default_value = "10", value_parser = secs)]
    pub sample_interval: Duration,

    /// Days queue samples are kept (older ones are averaged per minute after
    /// an hour and per 10 minutes after a day).
    #[arg(long, env = "REDRIVE_SAMPLE_RETENTION_DAYS", default_value_t = 7.0)]
    pub sample_retention_days: f64,

    /// Seconds a condition must hold before the advisor reports it (unacked
    /// messages stuck, an error queue growing).
    #[arg(long, env = "REDRIVE_ADVISOR_WINDOW", default_value = "300", value_parser = secs)]
    pub advisor_window: Duration,

    /// Ready messages from which a classic queue that is not lazy is reported
    /// (RabbitMQ before 3.12 only).
    #[arg(long, env = "REDRIVE_ADVISOR_DEEP_QUEUE", default_value_t = 10_000)]
    pub advisor_deep_queue: i64,

    /// Redeliveries per second, with almost no acks, that count as a requeue loop.
    #[arg(long, env = "REDRIVE_ADVISOR_REDELIVER_RATE", default_value_t = 1.0)]
    pub advisor_redeliver_rate: f64,
}

/// The HTTP server, its defences and sign-in sessions.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Web and sign-in")]
pub struct WebConfig {
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "REDRIVE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// Directory with the compiled UI assets (`pkg/redrive.js`, `.wasm`, `.css`).
    #[arg(long, env = "REDRIVE_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Comma-separated host names Redrive is reached by (the `Host` header).
    /// Empty: the loopback names when listening on loopback, else any.
    #[arg(
        long,
        env = "REDRIVE_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub allowed_hosts: Vec<String>,

    /// Comma-separated origins (`https://redrive.example.com`) allowed to
    /// send state changes besides Redrive's own, e.g. a TLS proxy's. Empty: none.
    #[arg(
        long,
        env = "REDRIVE_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub allowed_origins: Vec<String>,

    /// Seconds a sign-in session may sit unused before it ends.
    #[arg(long, env = "REDRIVE_SESSION_IDLE", default_value = "3600", value_parser = secs)]
    pub session_idle: Duration,

    /// Seconds a password check and a user's tags and permissions are cached:
    /// how long a user the broker revoked can still act.
    #[arg(long, env = "REDRIVE_AUTH_CACHE", default_value = "30", value_parser = secs)]
    pub auth_cache: Duration,

    /// Refuse every state change (replay, discard, jobs, policies, alerts), for everyone.
    #[arg(long, env = "REDRIVE_READ_ONLY", default_value_t = false, action = clap::ArgAction::Set)]
    pub read_only: bool,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A regex that may be empty (meaning: no pattern).
#[derive(Clone, Debug, Default)]
pub struct OptionalRegex(pub Option<Regex>);

impl OptionalRegex {
    pub fn is_match(&self, s: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(s))
    }
}

fn optional_regex(s: &str) -> Result<OptionalRegex, String> {
    if s.trim().is_empty() {
        return Ok(OptionalRegex(None));
    }
    Regex::new(s)
        .map(|r| OptionalRegex(Some(r)))
        .map_err(|e| e.to_string())
}

pub(crate) fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{s}` is not a positive number of seconds"))
}

impl CaptureConfig {
    /// Error exchanges given, without blanks.
    pub fn error_exchange_names(&self) -> impl Iterator<Item = &str> {
        self.error_exchanges
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
    }
}

impl BrokerConfig {
    /// Vhosts given explicitly, without blanks.
    pub fn explicit_vhosts(&self) -> Vec<String> {
        self.vhosts
            .iter()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// A URL, or a comma-separated list of them (cluster nodes), that may carry
/// a password. `Debug` shows it redacted ([`redact_urls`]); the raw text is
/// read with [`ExposeSecret`] only where a connection is made.
#[derive(Clone)]
pub struct SecretUrls(SecretString);

impl SecretUrls {
    fn parse(raw: &str) -> Result<Self, std::convert::Infallible> {
        Ok(Self(SecretString::from(raw)))
    }
}

impl ExposeSecret<str> for SecretUrls {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for SecretUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_urls(self.0.expose_secret()))
    }
}

fn secret(raw: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(raw))
}

/// `amqp://user:secret@host` → `amqp://user:***@host`, read with a URL
/// parser so a password holding `@` or `:` is hidden whole. A URL that does
/// not parse is hidden whole too (after its scheme).
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match (raw.split_once("://"), raw.rsplit_once('@')) {
            (Some((scheme, rest)), _) if rest.contains('@') => format!("{scheme}://***"),
            // No scheme, but credentials-like: keep only the host part.
            (None, Some((_, host))) => format!("***@{host}"),
            _ => raw.to_owned(),
        },
    }
}

/// A comma-separated list of URLs (cluster nodes), each redacted, and
/// returned as given when nothing in it looks like a credential.
pub fn redact_urls(raw: &str) -> String {
    if !raw.contains('@') {
        return raw.to_owned();
    }
    raw.split(',')
        .map(|u| redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A webhook URL as shown in API output and logs: scheme, host and port
/// only. Webhook paths and queries often are the secret (Slack, Teams).
pub fn mask_webhook(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = if u.path() != "/" || u.query().is_some() {
                "/***"
            } else {
                "/"
            };
            format!("{}://{host}{port}{hidden}", u.scheme())
        }
        Err(_) => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_readme() {
        let c = Config::try_parse_from(["redrive"]).unwrap();
        assert_eq!(c.web.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(
            c.store.database_url.expose_secret(),
            "sqlite://redrive.db?mode=rwc"
        );
        assert!(c.broker.explicit_vhosts().is_empty());
        for q in [
            "error.queue",
            "orders.error.queue",
            "payments.dlq",
            "billing_error",
        ] {
            assert!(c.capture.watch.is_match(q), "{q}");
        }
        for q in ["orders", "orders.error", "dlq.orders", "xerror.queue"] {
            assert!(!c.capture.watch.is_match(q), "{q}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let c = Config::try_parse_from([
            "redrive",
            "--amqp-url",
            "amqp://u:topsecret@h:5672/v",
            "--management-password",
            "hunter2",
            "--database-url",
            "postgres://redrive:pgsecret@db/redrive",
        ])
        .unwrap();
        let shown = format!("{c:?}");
        for secret in ["topsecret", "hunter2", "pgsecret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        // What is not secret is still there to read.
        assert!(shown.contains("amqp://u:***@h:5672/v"), "{shown}");
        assert!(shown.contains("management_user"), "{shown}");
    }

    #[test]
    fn urls_are_redacted_with_a_parser() {
        for (raw, hidden) in [
            ("amqp://u:p@ss:w@rd@host:5672/v", "p@ss"),
            ("amqp://u:a:b@host/", "a:b"),
            ("postgres://redrive:s3cret@db:5432/redrive", "s3cret"),
            ("amqp://u:p%40x@host", "p%40x"),
            ("not a url but: has@secret", "has@secret"),
        ] {
            let shown = redact_url(raw);
            assert!(!shown.contains(hidden), "{raw} → {shown}");
        }
        assert_eq!(redact_url("http://127.0.0.1:15672"), "http://127.0.0.1:15672/");
        assert_eq!(redact_url("amqp://u:x@h/v"), "amqp://u:***@h/v");
    }

    #[test]
    fn every_node_of_a_url_list_is_redacted() {
        let shown = redact_urls("amqp://u:one@h1:5672/v, amqp://u:two@h2:5672/v");
        assert_eq!(shown, "amqp://u:***@h1:5672/v,amqp://u:***@h2:5672/v");
        assert_eq!(
            redact_urls("http://n1:15672,http://n2:15672"),
            "http://n1:15672,http://n2:15672"
        );
    }

    #[test]
    fn webhook_urls_show_only_where_they_go() {
        assert_eq!(
            mask_webhook("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            mask_webhook("http://u:p@127.0.0.1:9000/hook?token=x"),
            "http://127.0.0.1:9000/***"
        );
        assert_eq!(mask_webhook("https://example.com"), "https://example.com/");
        assert_eq!(mask_webhook("::"), "***");
    }

    #[test]
    fn bad_regex_is_refused() {
        assert!(Config::try_parse_from(["redrive", "--watch", "("]).is_err());
    }
}
