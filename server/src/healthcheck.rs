//! `redrive healthcheck`: asks a running Redrive's `/healthz`, for a
//! container's `HEALTHCHECK`, so the runtime image needs no HTTP client of
//! its own (no curl, no shell).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Where a process listening on `listen` is reached from the same host: a
/// wildcard address (`0.0.0.0`, `::`) is reached on loopback.
fn local_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `Ok` when `/healthz` answers 200 within five seconds; else why not.
pub async fn probe(listen: SocketAddr) -> anyhow::Result<()> {
    let url = format!("http://{}/healthz", local_address(listen));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let res = http.get(&url).send().await?;
    let status = res.status();
    anyhow::ensure!(
        status.is_success(),
        "{url} answered {status}: {}",
        res.text().await.unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_probed_on_loopback() {
        let at = |s: &str| local_address(s.parse().unwrap()).to_string();
        assert_eq!(at("0.0.0.0:3000"), "127.0.0.1:3000");
        assert_eq!(at("[::]:3000"), "[::1]:3000");
        assert_eq!(at("10.1.2.3:8080"), "10.1.2.3:8080");
    }
}
