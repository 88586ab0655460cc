//! HTTP sources: `httppull` polls a url ([`pull::HttpPullSource`]);
//! `httppush` serves an endpoint ([`push::HttpPushSource`]) on the node's
//! shared HTTP data server ([`push::PushServer`]).

pub(crate) mod pull;
pub(crate) mod push;

#[cfg(test)]
pub(crate) mod testserver;
