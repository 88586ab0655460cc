//! Integration tests of the `weir` binary.

mod demo;
mod replay;
mod rest;
mod util;
