//! The notifications section: where alert e-mails go out, and the address
//! links in every notification point to.

use secrecy::SecretString;

/// How alert notifications reach people.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Notifications")]
pub struct NotifyConfig {
    /// SMTP server for alert rules with `"format": "email"`:
    /// `smtp://host:25` (plain, or STARTTLS when offered),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465` (TLS);
    /// credentials as `smtps://user:password@host`. Unset: e-mail rules are refused.
    #[arg(long, env = "REDRIVE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,

    /// The sender of alert e-mails.
    #[arg(
        long,
        env = "REDRIVE_SMTP_FROM",
        default_value = "Redrive <redrive@localhost>"
    )]
    pub smtp_from: String,

    /// Redrive's address as people reach it (`https://redrive.example.com`),
    /// for the links in notifications. Unset: `http://` and `REDRIVE_LISTEN`.
    #[arg(long, env = "REDRIVE_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<String>,
}

fn public_url(s: &str) -> Result<String, String> {
    let parsed = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{s}` is not an http(s) URL"));
    }
    Ok(s.trim_end_matches('/').to_owned())
}
