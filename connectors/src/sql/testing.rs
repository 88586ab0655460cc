//! Real databases for tests (unit tests, and the integration tests through
//! the `testing` feature): a PostgreSQL server per test, SQLite files, and
//! the MES scenario's schema and seed data ([`mes`]).
//!
//! [`Postgres::start`] runs `initdb` in a temporary folder and `pg_ctl
//! start` on a free port of 127.0.0.1 (socket dir in the same folder),
//! as the `postgres` user when the test runs as root; dropping it stops the
//! server and removes the folder. Without PostgreSQL's binaries it prints
//! why and returns `None`, so the test can skip:
//!
//! ```ignore
//! let Some(pg) = Postgres::start() else { return };
//! let url = pg.create_database("t").await;
//! ```
#![allow(unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use weir_runtime::Map;

use super::db::Db;
use super::{parse_url, DbConfig};

/// A PostgreSQL server of the test's own.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Starts a server, or says why not and returns `None` when PostgreSQL
    /// is not installed (`WEIR_PG_BIN` may name the `bin` folder).
    ///
    /// # Panics
    /// PostgreSQL is installed but the server does not start.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            eprintln!(
                "skipping: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; \
                 `apt-get install postgresql` or set WEIR_PG_BIN)"
            );
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("weir-pg-").tempdir().expect("temporary folder");
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()), "chown");
        }
        let mut pg = Postgres { dir, bin, port: 0, as_postgres };
        let data = pg.data_dir();
        pg.run_pg("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"]);
        for attempt in 0..5 {
            pg.port = free_port();
            if pg.try_start() {
                return Some(pg);
            }
            eprintln!("PostgreSQL did not start on port {} (attempt {attempt})", pg.port);
        }
        let log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default();
        panic!("PostgreSQL does not start:\n{log}");
    }

    /// The URL of `database` (`postgres` exists from the start).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database; returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        execute(&self.url("postgres"), &format!("CREATE DATABASE {name}")).await.expect("CREATE DATABASE");
        self.url(name)
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&self) {
        self.run_pg("pg_ctl", &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        assert!(self.try_start(), "PostgreSQL did not restart on port {}", self.port);
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn try_start(&self) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.command("pg_ctl", &["-D", &self.data_dir(), "-l", &log, "-w", "-t", "30", "-o", &opts, "start"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        // pg_ctl leaves the server running with our descriptors otherwise.
        c.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        c
    }

    fn run_pg(&self, tool: &str, args: &[&str]) {
        run(&mut self.command(tool, args), tool);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl", &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"]).status();
    }
}

fn run(c: &mut Command, what: &str) {
    let out = c.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("WEIR_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| d.join("initdb").exists());
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The URL of SQLite file `name` in `dir`.
pub fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite:{}", dir.join(name).display())
}

fn helper_db(url: &str) -> Result<Db, String> {
    // One connection, so that helpers do not share the pool of the
    // connector under test (pools are keyed by their settings).
    Ok(Db::open(&DbConfig {
        backend: parse_url(url)?,
        connect_timeout: Duration::from_secs(10),
        query_timeout: Duration::from_secs(30),
        max_connections: 1,
    }))
}

/// Runs a script of `;`-separated statements.
///
/// # Errors
/// The database refused it (message).
pub async fn execute(url: &str, sql: &str) -> Result<(), String> {
    helper_db(url)?.execute_script(sql).await.map_err(|e| e.to_string())
}

/// Runs a query.
///
/// # Errors
/// The database refused it (message).
pub async fn query(url: &str, sql: &str) -> Result<Vec<Map>, String> {
    helper_db(url)?.query(sql, &[]).await.map_err(|e| e.to_string())
}

/// The MES scenario: work orders and product specifications with
/// tolerance bands (read by a SQL source and a lookup table), and the
/// quality results a rule writes back. The SQL is the same for PostgreSQL
/// and SQLite.
pub mod mes {
    /// Tables.
    pub const SCHEMA: &str = "
CREATE TABLE product_spec (
    product_id     VARCHAR(32)   NOT NULL,
    characteristic VARCHAR(32)   NOT NULL,
    nominal        NUMERIC(12,4) NOT NULL,
    lower_limit    NUMERIC(12,4) NOT NULL,
    upper_limit    NUMERIC(12,4) NOT NULL,
    unit           VARCHAR(8)    NOT NULL,
    PRIMARY KEY (product_id, characteristic)
);
CREATE TABLE work_order (
    order_id    INTEGER     NOT NULL PRIMARY KEY,
    machine_id  VARCHAR(32) NOT NULL,
    product_id  VARCHAR(32) NOT NULL,
    quantity    INTEGER     NOT NULL,
    status      VARCHAR(16) NOT NULL,
    updated_seq BIGINT      NOT NULL
);
CREATE TABLE quality_result (
    part_id        VARCHAR(64) NOT NULL PRIMARY KEY,
    order_id       INTEGER,
    machine_id     VARCHAR(32),
    characteristic VARCHAR(32),
    measured       DOUBLE PRECISION,
    verdict        VARCHAR(8),
    note           TEXT
);
";

    /// Specs of two products and three work orders (`updated_seq` 1..3).
    pub const SEED: &str = "
INSERT INTO product_spec VALUES
    ('P-100', 'diameter', 12.0000, 11.9500, 12.0500, 'mm'),
    ('P-100', 'length',   80.0000, 79.8000, 80.2000, 'mm'),
    ('P-200', 'diameter',  8.5000,  8.4800,  8.5200, 'mm'),
    ('P-200', 'weight',   41.2500, 40.5000, 42.0000, 'g');
INSERT INTO work_order VALUES
    (1001, 'M1', 'P-100', 500, 'running', 1),
    (1002, 'M2', 'P-200', 250, 'running', 2),
    (1003, 'M3', 'P-100', 100, 'planned', 3);
";

    /// Creates the tables and loads the seed data.
    ///
    /// # Errors
    /// The database refused the script.
    pub async fn install(url: &str) -> Result<(), String> {
        super::execute(url, SCHEMA).await?;
        super::execute(url, SEED).await
    }
}
