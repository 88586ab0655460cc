//! HTTP sources: `httppull` polls a url ([`pull::HttpPullSource`]);
//! `httppush` serves an endpoint ([`push::HttpPushSource`]) on the node's
//! shared HTTP data server ([`push::PushServer`]).

pub(crate) mod pull;
pub(crate) mod push;

#[cfg(test)]
pub(crate) mod testserver;

/// The HTTP client of a connector from its `timeout` (ms, default 5000; 0 =
/// none) and `insecureSkipVerify` properties: one place for the pull
/// source and the rest sink.
pub(crate) fn client(p: &crate::props::Props) -> crate::Result<reqwest::Client> {
    let timeout = p.duration_ms("timeout")?.unwrap_or(5000);
    let mut client = reqwest::Client::builder();
    if timeout > 0 {
        client = client.timeout(std::time::Duration::from_millis(timeout));
    }
    if p.bool("insecureSkipVerify")?.unwrap_or(false) {
        client = client.danger_accept_invalid_certs(true);
    }
    client.build().map_err(|e| crate::props::invalid("url", format!("cannot build HTTP client: {e}")))
}
