//! Integration tests of the `weir` binary.

mod brokers;
mod demo;
mod mqtt;
mod replay;
mod rest;
mod sql;
mod util;
