//! Integration tests of the `weir` binary.

mod ai;
mod broker_restart;
mod brokers;
mod cluster;
mod cluster_broker;
mod cluster_partition;
mod cluster_shards;
mod cluster_tls;
mod demo;
mod exactly_once_sinks;
mod mqtt;
mod recovery;
mod replay;
mod rest;
mod sql;
mod sql_scan;
mod util;
