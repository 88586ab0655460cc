//! HTTP sources: `httppull` polls a url ([`pull::HttpPullSource`]).
//!
//! `httppush` (weir serving an endpoint) is not implemented yet: it needs
//! an HTTP server dependency in this crate.

pub(crate) mod pull;

#[cfg(test)]
pub(crate) mod testserver;
