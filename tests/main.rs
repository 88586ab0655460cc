//! Integration tests of the `weir` binary.

mod replay;
mod rest;
mod util;
