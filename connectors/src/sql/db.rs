//! [`Db`]: a small connection pool over PostgreSQL or SQLite, with
//! timeouts and errors classified for retries.
//!
//! Connections open lazily and are reused; one that failed at the
//! connection level is dropped, and the next call opens a new one, so a
//! database that went down and came back is picked up again without any
//! reconnect logic in the connectors. A query that fails on a pooled
//! connection that turns out dead (the server restarted before the pool
//! noticed) is run once more on a new connection, so the first lookup
//! after a restart does not fail. Pools are shared by every connector
//! of the node with an equal [`DbConfig`] (like eKuiper's connection pool
//! keyed by URL) and closed when the last user drops its [`Db`].
//!
//! PostgreSQL statements are prepared once per connection and cached;
//! SQLite calls run on the blocking pool (`rusqlite` is synchronous).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weir_runtime::{Map, Value};

use super::{pg, sqlite, Backend, DbConfig, Dialect};

/// Statements cached per PostgreSQL connection at most.
const STATEMENT_CACHE: usize = 256;

/// What kind of failure, which decides whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The database cannot be reached or dropped the connection: retry.
    Connection,
    /// The call took longer than the timeout: retry.
    Timeout,
    /// The statement or its data was refused (syntax, constraint, type):
    /// retrying the same data fails the same way.
    Data,
}

/// A failed database call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct DbError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl DbError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> DbError {
        DbError { kind, message: message.into() }
    }

    /// Worth trying again later.
    pub(crate) fn is_retryable(&self) -> bool {
        self.kind != ErrorKind::Data
    }
}

/// One statement with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

/// A pooled database handle; cloning shares the pool.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.pool.config.backend).finish()
    }
}

struct Pool {
    config: DbConfig,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

enum Conn {
    Pg(PgConn),
    Lite(rusqlite::Connection),
}

struct PgConn {
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
}

static POOLS: LazyLock<Mutex<HashMap<DbConfig, Weak<Pool>>>> = LazyLock::new(Mutex::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Db {
    /// The node's pool for `config`, created on first use. Opens no
    /// connection yet.
    pub(crate) fn open(config: &DbConfig) -> Db {
        let mut pools = lock(&POOLS);
        pools.retain(|_, p| p.strong_count() > 0);
        if let Some(pool) = pools.get(config).and_then(Weak::upgrade) {
            return Db { pool };
        }
        let pool = Arc::new(Pool {
            config: config.clone(),
            idle: Mutex::default(),
            permits: Arc::new(Semaphore::new(config.max_connections)),
        });
        pools.insert(config.clone(), Arc::downgrade(&pool));
        Db { pool }
    }

    /// The backend's dialect.
    pub(crate) fn dialect(&self) -> Dialect {
        self.pool.config.dialect()
    }

    /// Runs a query; rows as maps of column name to value.
    pub(crate) async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Map>, DbError> {
        let stmt = Statement { sql: sql.to_string(), params: params.to_vec() };
        match self.run(Op::Query(stmt)).await? {
            Done::Rows(rows) => Ok(rows),
            Done::Count(_) => Ok(Vec::new()),
        }
    }

    /// Runs statements in order, in one transaction when `atomic`; returns
    /// the rows they changed.
    pub(crate) async fn execute(&self, statements: Vec<Statement>, atomic: bool) -> Result<u64, DbError> {
        match self.run(Op::Execute { statements, atomic }).await? {
            Done::Count(n) => Ok(n),
            Done::Rows(_) => Ok(0),
        }
    }

    /// Runs a script of `;`-separated statements without parameters (DDL,
    /// test fixtures).
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), DbError> {
        self.run(Op::Script(sql.to_string())).await.map(|_| ())
    }

    async fn run(&self, op: Op) -> Result<Done, DbError> {
        let op = Arc::new(op);
        match self.attempt(op.clone()).await {
            // A pooled connection can be dead without the pool knowing yet
            // (the server restarted, a firewall forgot the connection): a
            // query is tried once more on a new connection before its error
            // counts, and the other idle connections, likely dead as well,
            // are dropped. Not writes: whether a write that failed on the
            // way was done is unknown, and the sink retries on its own.
            (Err(e), true) if e.kind == ErrorKind::Connection && matches!(*op, Op::Query(_)) => {
                tracing::debug!("database connection found dead ({e}); querying on a new one");
                lock(&self.pool.idle).clear();
                self.attempt(op).await.0
            }
            (result, _) => result,
        }
    }

    /// One call; also says whether it ran on a connection from the pool.
    async fn attempt(&self, op: Arc<Op>) -> (Result<Done, DbError>, bool) {
        let (permit, conn, reused) = match self.checkout().await {
            Ok(c) => c,
            Err(e) => return (Err(e), false),
        };
        let timeout = self.pool.config.query_timeout;
        let (conn, result) = match conn {
            Conn::Pg(mut c) => match tokio::time::timeout(timeout, run_pg(&mut c, &op)).await {
                Ok(r) => (Some(Conn::Pg(c)), r),
                // Dropping the client closes its connection; the server
                // cancels the statement when it notices.
                Err(_) => (None, Err(timed_out(timeout))),
            },
            Conn::Lite(c) => {
                let task = tokio::task::spawn_blocking(move || {
                    let mut c = c;
                    let r = sqlite::run(&mut c, &op);
                    (c, r)
                });
                match tokio::time::timeout(timeout, task).await {
                    Ok(Ok((c, r))) => (Some(Conn::Lite(c)), r),
                    Ok(Err(e)) => (None, Err(DbError::new(ErrorKind::Connection, format!("SQLite call failed: {e}")))),
                    // The call finishes on its thread and drops the connection.
                    Err(_) => (None, Err(timed_out(timeout))),
                }
            }
        };
        if let Some(conn) = conn {
            let healthy = match &result {
                Err(e) => e.kind == ErrorKind::Data,
                Ok(_) => true,
            };
            if healthy && !conn.is_closed() {
                lock(&self.pool.idle).push(conn);
            }
        }
        drop(permit);
        (result, reused)
    }

    /// A permit and a connection: an idle one (`true`) or a new one.
    async fn checkout(&self) -> Result<(OwnedSemaphorePermit, Conn, bool), DbError> {
        let cfg = &self.pool.config;
        let permit = tokio::time::timeout(cfg.connect_timeout, self.pool.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                DbError::new(
                    ErrorKind::Timeout,
                    format!("all {} connections busy for {:?}", cfg.max_connections, cfg.connect_timeout),
                )
            })?
            .map_err(|_| DbError::new(ErrorKind::Connection, "connection pool closed"))?;
        loop {
            let Some(conn) = lock(&self.pool.idle).pop() else { break };
            if !conn.is_closed() {
                return Ok((permit, conn, true));
            }
        }
        let conn = match &cfg.backend {
            Backend::Postgres(url) => Conn::Pg(connect_pg(url, cfg.connect_timeout).await?),
            Backend::Sqlite(path) => {
                let path = path.clone();
                let busy = cfg.query_timeout;
                let opened = tokio::task::spawn_blocking(move || sqlite::open(&path, busy))
                    .await
                    .map_err(|e| DbError::new(ErrorKind::Connection, format!("SQLite open failed: {e}")))?;
                Conn::Lite(opened?)
            }
        };
        Ok((permit, conn, false))
    }
}

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Conn::Pg(c) => c.client.is_closed(),
            Conn::Lite(_) => false,
        }
    }
}

fn timed_out(d: std::time::Duration) -> DbError {
    DbError::new(ErrorKind::Timeout, format!("database call timed out after {d:?}"))
}

async fn connect_pg(url: &str, timeout: std::time::Duration) -> Result<PgConn, DbError> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| DbError::new(ErrorKind::Data, format!("invalid PostgreSQL URL: {e}")))?;
    config.connect_timeout(timeout);
    let connecting = config.connect(tokio_postgres::NoTls);
    let (client, connection) = match tokio::time::timeout(timeout, connecting).await {
        Ok(r) => r.map_err(|e| pg::classify(&e, "cannot connect to PostgreSQL"))?,
        Err(_) => {
            return Err(DbError::new(ErrorKind::Timeout, format!("connecting to PostgreSQL took over {timeout:?}")))
        }
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(PgConn { client, statements: HashMap::new() })
}

/// A database call.
pub(crate) enum Op {
    Query(Statement),
    Execute {
        statements: Vec<Statement>,
        atomic: bool,
    },
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    Script(String),
}

/// What a call returned.
pub(crate) enum Done {
    Rows(Vec<Map>),
    Count(u64),
}

async fn run_pg(c: &mut PgConn, op: &Op) -> Result<Done, DbError> {
    match op {
        Op::Query(s) => {
            let stmt = prepare(c, &s.sql).await?;
            let params = pg::params(&s.params);
            let rows = c.client.query(&stmt, &pg::refs(&params)).await.map_err(|e| pg::classify(&e, &s.sql))?;
            rows.iter().map(pg::row_to_map).collect::<Result<Vec<_>, _>>().map(Done::Rows)
        }
        Op::Execute { statements, atomic } => {
            let atomic = *atomic && statements.len() > 1;
            if atomic {
                c.client.batch_execute("BEGIN").await.map_err(|e| pg::classify(&e, "BEGIN"))?;
            }
            let mut total = 0;
            for s in statements {
                let r = async {
                    let stmt = prepare(c, &s.sql).await?;
                    let params = pg::params(&s.params);
                    c.client.execute(&stmt, &pg::refs(&params)).await.map_err(|e| pg::classify(&e, &s.sql))
                }
                .await;
                match r {
                    Ok(n) => total += n,
                    Err(e) => {
                        if atomic {
                            // A failed rollback means a dead connection, which
                            // the error already says.
                            let _ = c.client.batch_execute("ROLLBACK").await;
                        }
                        return Err(e);
                    }
                }
            }
            if atomic {
                c.client.batch_execute("COMMIT").await.map_err(|e| pg::classify(&e, "COMMIT"))?;
            }
            Ok(Done::Count(total))
        }
        Op::Script(sql) => {
            c.client.batch_execute(sql).await.map_err(|e| pg::classify(&e, sql))?;
            Ok(Done::Count(0))
        }
    }
}

async fn prepare(c: &mut PgConn, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
    if let Some(s) = c.statements.get(sql) {
        return Ok(s.clone());
    }
    let stmt = c.client.prepare(sql).await.map_err(|e| pg::classify(&e, sql))?;
    if c.statements.len() >= STATEMENT_CACHE {
        c.statements.clear();
    }
    c.statements.insert(sql.to_string(), stmt.clone());
    Ok(stmt)
}
