//! `SELECT` statements.

use super::lexer::{Sym, Tok};
use super::Parser;
use crate::ast::{Expr, Join, JoinKind, Select, SelectField, SourceRef, Window, WindowKind};
use crate::error::{Error, Result};

impl Parser {
    pub(crate) fn select(&mut self) -> Result<Select> {
        self.expect_kw("SELECT")?;
        let mut fields = vec![self.select_field()?];
        while self.eat_sym(Sym::Comma) {
            fields.push(self.select_field()?);
        }
        self.expect_kw("FROM")?;
        let from = self.source_ref()?;
        let mut joins = Vec::new();
        while let Some(kind) = self.join_kind()? {
            let source = self.source_ref()?;
            let on = if kind != JoinKind::Cross {
                self.expect_kw("ON")?;
                Some(self.expr()?)
            } else {
                None
            };
            joins.push(Join { kind, source, on });
        }
        let condition = if self.eat_kw("WHERE") { Some(self.expr()?) } else { None };
        let mut dimensions = Vec::new();
        let mut window = None;
        if self.eat_kw("GROUP") {
            self.expect_kw("BY")?;
            for e in self.expr_list()? {
                match as_window(e)? {
                    Ok(w) => {
                        if window.is_some() {
                            return Err(Error::parse(w.pos, "only one window is allowed in GROUP BY"));
                        }
                        window = Some(w);
                    }
                    Err(e) => dimensions.push(e),
                }
            }
        }
        let having = if self.eat_kw("HAVING") { Some(self.expr()?) } else { None };
        let order_by = if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            self.sort_list()?
        } else {
            Vec::new()
        };
        let limit = if self.eat_kw("LIMIT") {
            let pos = self.pos();
            match self.advance() {
                Tok::Number(n) => Some(
                    n.parse::<i64>()
                        .map_err(|_| Error::parse(pos, format!("LIMIT expects a non-negative integer, got {n}")))?,
                ),
                t => return Err(Error::parse(pos, format!("found \"{t}\", expected LIMIT count"))),
            }
        } else {
            None
        };
        Ok(Select { fields, from, joins, condition, dimensions, window, having, order_by, limit })
    }

    fn select_field(&mut self) -> Result<SelectField> {
        let pos = self.pos();
        // `*` or `s.*`
        let qualifier = match (self.peek().clone(), self.peek_at(1).clone(), self.peek_at(2).clone()) {
            (Tok::Sym(Sym::Star), _, _) => {
                self.advance();
                Some(None)
            }
            (Tok::Word { value, .. }, Tok::Sym(Sym::Period), Tok::Sym(Sym::Star)) => {
                self.advance();
                self.advance();
                self.advance();
                Some(Some(value))
            }
            _ => None,
        };
        if let Some(qualifier) = qualifier {
            let mut except = Vec::new();
            let mut replace = Vec::new();
            if self.eat_kw("EXCEPT") {
                self.expect_sym(Sym::LParen)?;
                loop {
                    except.push(self.ident()?);
                    if self.eat_sym(Sym::RParen) {
                        break;
                    }
                    self.expect_sym(Sym::Comma)?;
                }
            }
            if self.eat_kw("REPLACE") {
                self.expect_sym(Sym::LParen)?;
                loop {
                    let e = self.expr()?;
                    self.expect_kw("AS")?;
                    replace.push((e, self.ident()?));
                    if self.eat_sym(Sym::RParen) {
                        break;
                    }
                    self.expect_sym(Sym::Comma)?;
                }
            }
            return Ok(SelectField::Wildcard { qualifier, except, replace, pos });
        }
        let expr = self.expr()?;
        let alias = if self.eat_kw("AS") { Some(self.ident()?) } else { None };
        let invisible = self.eat_kw("INVISIBLE");
        Ok(SelectField::Expr { expr, alias, invisible, pos })
    }

    fn source_ref(&mut self) -> Result<SourceRef> {
        let pos = self.pos();
        let name = self.ident()?;
        let has_alias = self.eat_kw("AS")
            || matches!(self.peek(), Tok::Word { value, quoted } if *quoted || !is_clause_word(value));
        let alias = if has_alias { Some(self.ident()?) } else { None };
        Ok(SourceRef { name, alias, pos })
    }

    fn join_kind(&mut self) -> Result<Option<JoinKind>> {
        let kind = if self.eat_kw("INNER") {
            JoinKind::Inner
        } else if self.eat_kw("LEFT") {
            JoinKind::Left
        } else if self.eat_kw("RIGHT") {
            JoinKind::Right
        } else if self.eat_kw("FULL") {
            JoinKind::Full
        } else if self.eat_kw("CROSS") {
            JoinKind::Cross
        } else if self.peek_kw("JOIN") {
            return Err(Error::parse(
                self.pos(),
                "a bare JOIN is not allowed: write INNER, LEFT, RIGHT, FULL or CROSS JOIN",
            ));
        } else {
            return Ok(None);
        };
        self.eat_kw("OUTER");
        self.expect_kw("JOIN")?;
        Ok(Some(kind))
    }
}

/// Words that end a `FROM x` item rather than alias it.
fn is_clause_word(w: &str) -> bool {
    super::is_reserved(w) || ["EXCEPT", "REPLACE", "INVISIBLE", "OUTER"].iter().any(|k| k.eq_ignore_ascii_case(w))
}

/// Splits a window call out of the GROUP BY list: `Ok(Ok(window))` for a
/// window, `Ok(Err(expr))` for a plain dimension.
fn as_window(e: Expr) -> Result<std::result::Result<Window, Expr>> {
    let Expr::Call { name, args, filter, over, pos } = e else { return Ok(Err(e)) };
    let kind = match name.to_ascii_lowercase().as_str() {
        "tumblingwindow" => WindowKind::Tumbling,
        "hoppingwindow" => WindowKind::Hopping,
        "slidingwindow" => WindowKind::Sliding,
        "sessionwindow" => WindowKind::Session,
        "countwindow" => WindowKind::Count,
        "statewindow" => WindowKind::State,
        _ => return Ok(Err(Expr::Call { name, args, filter, over, pos })),
    };
    let (trigger, partition) = match over {
        Some(o) => {
            if !o.order_by.is_empty() {
                return Err(Error::parse(pos, "ORDER BY is not allowed in a window's OVER clause"));
            }
            (o.when.map(|w| *w), o.partition_by)
        }
        None => (None, Vec::new()),
    };
    Ok(Ok(Window { kind, args, filter: filter.map(|f| *f), trigger, partition, pos }))
}
