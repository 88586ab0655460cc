//! Parsing eKuiper SQL into [`Statement`]s.
//!
//! sqlparser's tokenizer does the lexing (see [`lexer`]); a small
//! recursive-descent parser follows eKuiper's grammar, which sqlparser's own
//! parser cannot express (`OVER (WHEN ...)`, `FILTER` on window calls in
//! GROUP BY, `a->b`, `x[a:b]`, stream DDL with `WITH (...)` options).

mod ddl;
mod expr;
mod lexer;
mod select;

use crate::ast::Statement;
use crate::error::{Error, Pos, Result};
use lexer::{Spanned, Sym, Tok};

/// Parses one statement (a trailing `;` is allowed).
///
/// # Errors
/// [`Error::Parse`] naming the position and what was expected.
pub fn parse_statement(sql: &str) -> Result<Statement> {
    let mut p = Parser::new(sql)?;
    let stmt = p.statement(sql)?;
    p.eat_sym(Sym::Semi);
    p.expect_eof()?;
    Ok(stmt)
}

/// Parses a lone expression (used by rule options and tests).
///
/// # Errors
/// [`Error::Parse`] naming the position and what was expected.
pub fn parse_expr(sql: &str) -> Result<crate::ast::Expr> {
    let mut p = Parser::new(sql)?;
    let e = p.expr()?;
    p.expect_eof()?;
    Ok(e)
}

/// Cursor over the tokens.
pub(crate) struct Parser {
    toks: Vec<Spanned>,
    at: usize,
}

impl Parser {
    fn new(sql: &str) -> Result<Parser> {
        Ok(Parser { toks: lexer::tokenize(sql)?, at: 0 })
    }

    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if self.peek_kw("SELECT") {
            return Ok(Statement::Select(Box::new(self.select()?)));
        }
        self.ddl(sql)
    }

    pub(crate) fn peek(&self) -> &Tok {
        &self.toks[self.at].tok
    }

    pub(crate) fn peek_at(&self, n: usize) -> &Tok {
        &self.toks[(self.at + n).min(self.toks.len() - 1)].tok
    }

    pub(crate) fn pos(&self) -> Pos {
        self.toks[self.at].pos
    }

    pub(crate) fn advance(&mut self) -> Tok {
        let t = self.toks[self.at].tok.clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    /// True if the next token is the unquoted keyword `kw`.
    pub(crate) fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Word { value, quoted: false } if value.eq_ignore_ascii_case(kw))
    }

    pub(crate) fn peek_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Tok::Word { value, quoted: false } if value.eq_ignore_ascii_case(kw))
    }

    pub(crate) fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek_kw(kw) {
            self.advance();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(kw))
        }
    }

    pub(crate) fn eat_sym(&mut self, s: Sym) -> bool {
        if *self.peek() == Tok::Sym(s) {
            self.advance();
            true
        } else {
            false
        }
    }

    pub(crate) fn expect_sym(&mut self, s: Sym) -> Result<()> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(self.unexpected(&Tok::Sym(s).to_string()))
        }
    }

    fn expect_eof(&self) -> Result<()> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else {
            Err(self.unexpected("end of statement"))
        }
    }

    /// An identifier (backticks allow reserved words).
    pub(crate) fn ident(&mut self) -> Result<String> {
        match self.peek().clone() {
            Tok::Word { value, quoted } => {
                if !quoted && is_reserved(&value) {
                    return Err(Error::parse(
                        self.pos(),
                        format!("found \"{value}\", expected identifier (reserved words need backticks)"),
                    ));
                }
                self.advance();
                Ok(value)
            }
            _ => Err(self.unexpected("identifier")),
        }
    }

    pub(crate) fn unexpected(&self, expected: &str) -> Error {
        Error::parse(self.pos(), format!("found \"{}\", expected {expected}", self.peek()))
    }
}

/// Words that need backticks to be used as names (eKuiper's reserved list).
pub(crate) fn is_reserved(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "SELECT",
        "FROM",
        "JOIN",
        "LEFT",
        "RIGHT",
        "FULL",
        "CROSS",
        "INNER",
        "ON",
        "WHERE",
        "GROUP",
        "ORDER",
        "HAVING",
        "BY",
        "ASC",
        "DESC",
        "AND",
        "OR",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "IN",
        "NOT",
        "BETWEEN",
        "LIKE",
        "OVER",
        "PARTITION",
        "LIMIT",
        "AS",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests;
