//! Expressions, by precedence climbing. eKuiper's precedence, low to high:
//! `OR`; `AND`; `NOT`; comparisons and `[NOT] IN|BETWEEN|LIKE`;
//! `+ - | ^`; `* / % &`; unary minus; `[]`, `->` and `.`.

use super::lexer::{Sym, Tok};
use super::Parser;
use crate::ast::{BinOp, Expr, Literal, Over, SortField, UnaryOp};
use crate::error::{Error, Result};

const BP_OR: u8 = 1;
const BP_AND: u8 = 2;
const BP_NOT: u8 = 3;
const BP_CMP: u8 = 4;
const BP_ADD: u8 = 5;
const BP_MUL: u8 = 6;
const BP_UNARY: u8 = 7;

impl Parser {
    /// Parses a full expression.
    pub(crate) fn expr(&mut self) -> Result<Expr> {
        self.expr_bp(0)
    }

    fn expr_bp(&mut self, min_bp: u8) -> Result<Expr> {
        let mut left = self.prefix()?;
        loop {
            let pos = self.pos();
            // [NOT] IN / BETWEEN / LIKE
            let negated = self.peek_kw("NOT")
                && (self.peek_kw_at(1, "IN") || self.peek_kw_at(1, "BETWEEN") || self.peek_kw_at(1, "LIKE"));
            let word_at = usize::from(negated);
            if BP_CMP > min_bp
                && (self.peek_kw_at(word_at, "IN")
                    || self.peek_kw_at(word_at, "BETWEEN")
                    || self.peek_kw_at(word_at, "LIKE"))
            {
                if negated {
                    self.advance();
                }
                if self.eat_kw("IN") {
                    left = self.in_list(left, negated)?;
                } else if self.eat_kw("BETWEEN") {
                    let low = self.expr_bp(BP_CMP)?;
                    self.expect_kw("AND")?;
                    let high = self.expr_bp(BP_CMP)?;
                    left = Expr::Between { expr: Box::new(left), low: Box::new(low), high: Box::new(high), negated };
                } else {
                    self.expect_kw("LIKE")?;
                    let pattern = self.expr_bp(BP_CMP)?;
                    left = Expr::Like { expr: Box::new(left), pattern: Box::new(pattern), negated, pos };
                }
                continue;
            }
            let Some((op, bp)) = self.binary_op() else { break };
            if bp <= min_bp {
                break;
            }
            self.advance();
            let right = self.expr_bp(bp)?;
            left = Expr::Binary { op, left: Box::new(left), right: Box::new(right), pos };
        }
        Ok(left)
    }

    fn binary_op(&self) -> Option<(BinOp, u8)> {
        Some(match self.peek() {
            Tok::Word { value, quoted: false } if value.eq_ignore_ascii_case("OR") => (BinOp::Or, BP_OR),
            Tok::Word { value, quoted: false } if value.eq_ignore_ascii_case("AND") => (BinOp::And, BP_AND),
            Tok::Sym(s) => match s {
                Sym::Eq => (BinOp::Eq, BP_CMP),
                Sym::Neq => (BinOp::NotEq, BP_CMP),
                Sym::Lt => (BinOp::Lt, BP_CMP),
                Sym::Le => (BinOp::LtEq, BP_CMP),
                Sym::Gt => (BinOp::Gt, BP_CMP),
                Sym::Ge => (BinOp::GtEq, BP_CMP),
                Sym::Plus => (BinOp::Add, BP_ADD),
                Sym::Minus => (BinOp::Sub, BP_ADD),
                Sym::Pipe => (BinOp::BitOr, BP_ADD),
                Sym::Caret => (BinOp::BitXor, BP_ADD),
                Sym::Star => (BinOp::Mul, BP_MUL),
                Sym::Slash => (BinOp::Div, BP_MUL),
                Sym::Percent => (BinOp::Mod, BP_MUL),
                Sym::Amp => (BinOp::BitAnd, BP_MUL),
                _ => return None,
            },
            _ => return None,
        })
    }

    fn in_list(&mut self, left: Expr, negated: bool) -> Result<Expr> {
        if self.eat_sym(Sym::LParen) {
            let mut list = Vec::new();
            if !self.eat_sym(Sym::RParen) {
                loop {
                    list.push(self.expr()?);
                    if self.eat_sym(Sym::RParen) {
                        break;
                    }
                    self.expect_sym(Sym::Comma)?;
                }
            }
            return Ok(Expr::In { expr: Box::new(left), list, parenthesised: true, negated });
        }
        let arr = self.expr_bp(BP_CMP)?;
        Ok(Expr::In { expr: Box::new(left), list: vec![arr], parenthesised: false, negated })
    }

    fn prefix(&mut self) -> Result<Expr> {
        if self.eat_kw("NOT") {
            let e = self.expr_bp(BP_NOT)?;
            return Ok(Expr::Unary { op: UnaryOp::Not, expr: Box::new(e) });
        }
        if self.eat_sym(Sym::Minus) {
            let e = self.expr_bp(BP_UNARY)?;
            return Ok(match e {
                Expr::Literal(Literal::Int(i)) => Expr::Literal(Literal::Int(-i)),
                Expr::Literal(Literal::Float(f)) => Expr::Literal(Literal::Float(-f)),
                e => Expr::Unary { op: UnaryOp::Neg, expr: Box::new(e) },
            });
        }
        if self.eat_sym(Sym::Plus) {
            return self.expr_bp(BP_UNARY);
        }
        let primary = self.primary()?;
        self.postfix(primary)
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr> {
        loop {
            let pos = self.pos();
            if self.eat_sym(Sym::Arrow) {
                let key = self.path_key()?;
                e = Expr::Arrow { expr: Box::new(e), key };
            } else if *self.peek() == Tok::Sym(Sym::Period) && matches!(self.peek_at(1), Tok::Word { .. }) {
                self.advance();
                let key = self.path_key()?;
                e = match e {
                    Expr::Column { qualifier: None, name, pos } => {
                        Expr::Column { qualifier: Some(name), name: key, pos }
                    }
                    e => Expr::Arrow { expr: Box::new(e), key },
                };
            } else if self.eat_sym(Sym::LBracket) {
                let start = if *self.peek() == Tok::Sym(Sym::Colon) { None } else { Some(self.expr()?) };
                if self.eat_sym(Sym::Colon) {
                    let end = if *self.peek() == Tok::Sym(Sym::RBracket) { None } else { Some(self.expr()?) };
                    self.expect_sym(Sym::RBracket)?;
                    e = Expr::Slice { expr: Box::new(e), start: start.map(Box::new), end: end.map(Box::new), pos };
                } else {
                    self.expect_sym(Sym::RBracket)?;
                    let index = start.ok_or_else(|| Error::parse(pos, "empty index []"))?;
                    e = Expr::Index { expr: Box::new(e), index: Box::new(index), pos };
                }
            } else {
                return Ok(e);
            }
        }
    }

    /// A key after `->` or `.`: any word, reserved or not.
    fn path_key(&mut self) -> Result<String> {
        match self.advance() {
            Tok::Word { value, .. } => Ok(value),
            Tok::Str(s) => Ok(s),
            _ => {
                self.at -= 1;
                Err(self.unexpected("field name"))
            }
        }
    }

    fn primary(&mut self) -> Result<Expr> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Number(n) => {
                self.advance();
                number_literal(&n).ok_or_else(|| Error::parse(pos, format!("invalid number {n}")))
            }
            Tok::Str(s) => {
                self.advance();
                Ok(Expr::Literal(Literal::String(s)))
            }
            Tok::Sym(Sym::LParen) => {
                self.advance();
                let e = self.expr()?;
                self.expect_sym(Sym::RParen)?;
                Ok(Expr::Paren(Box::new(e)))
            }
            Tok::Sym(Sym::Star) => {
                self.advance();
                Ok(Expr::Wildcard(pos))
            }
            Tok::Word { value, quoted } => {
                if !quoted {
                    if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") {
                        self.advance();
                        return Ok(Expr::Literal(Literal::Bool(value.eq_ignore_ascii_case("true"))));
                    }
                    if value.eq_ignore_ascii_case("null") || value.eq_ignore_ascii_case("nil") {
                        self.advance();
                        return Ok(Expr::Literal(Literal::Null));
                    }
                    if value.eq_ignore_ascii_case("CASE") {
                        self.advance();
                        return self.case();
                    }
                    if *self.peek_at(1) == Tok::Sym(Sym::LParen) {
                        self.advance();
                        return self.call(value, pos);
                    }
                }
                let name = self.ident()?;
                Ok(Expr::Column { qualifier: None, name, pos })
            }
            _ => Err(self.unexpected("expression")),
        }
    }

    fn call(&mut self, name: String, pos: crate::error::Pos) -> Result<Expr> {
        self.expect_sym(Sym::LParen)?;
        let mut args = Vec::new();
        if !self.eat_sym(Sym::RParen) {
            loop {
                args.push(self.expr()?);
                if self.eat_sym(Sym::RParen) {
                    break;
                }
                self.expect_sym(Sym::Comma)?;
            }
        }
        let mut filter = None;
        if self.peek_kw("FILTER") && *self.peek_at(1) == Tok::Sym(Sym::LParen) {
            self.advance();
            self.advance();
            self.expect_kw("WHERE")?;
            filter = Some(Box::new(self.expr()?));
            self.expect_sym(Sym::RParen)?;
        }
        let over = if self.eat_kw("OVER") { Some(self.over()?) } else { None };
        Ok(Expr::Call { name, args, filter, over, pos })
    }

    fn over(&mut self) -> Result<Over> {
        self.expect_sym(Sym::LParen)?;
        let mut over = Over::default();
        if self.eat_kw("PARTITION") {
            self.expect_kw("BY")?;
            over.partition_by = self.expr_list()?;
        }
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            over.order_by = self.sort_list()?;
        }
        if self.eat_kw("WHEN") {
            over.when = Some(Box::new(self.expr()?));
        }
        self.expect_sym(Sym::RParen)?;
        Ok(over)
    }

    fn case(&mut self) -> Result<Expr> {
        let value = if self.peek_kw("WHEN") { None } else { Some(Box::new(self.expr()?)) };
        let mut whens = Vec::new();
        while self.eat_kw("WHEN") {
            let w = self.expr()?;
            self.expect_kw("THEN")?;
            let t = self.expr()?;
            whens.push((w, t));
        }
        if whens.is_empty() {
            return Err(self.unexpected("WHEN"));
        }
        let otherwise = if self.eat_kw("ELSE") { Some(Box::new(self.expr()?)) } else { None };
        self.expect_kw("END")?;
        Ok(Expr::Case { value, whens, otherwise })
    }

    /// `e, e, ...`
    pub(crate) fn expr_list(&mut self) -> Result<Vec<Expr>> {
        let mut v = vec![self.expr()?];
        while self.eat_sym(Sym::Comma) {
            v.push(self.expr()?);
        }
        Ok(v)
    }

    /// `e [ASC|DESC], ...`
    pub(crate) fn sort_list(&mut self) -> Result<Vec<SortField>> {
        let mut v = Vec::new();
        loop {
            let expr = self.expr()?;
            let descending = if self.eat_kw("DESC") {
                true
            } else {
                self.eat_kw("ASC");
                false
            };
            v.push(SortField { expr, descending });
            if !self.eat_sym(Sym::Comma) {
                return Ok(v);
            }
        }
    }
}

fn number_literal(n: &str) -> Option<Expr> {
    if !n.contains(['.', 'e', 'E']) {
        if let Ok(i) = n.parse::<i64>() {
            return Some(Expr::Literal(Literal::Int(i)));
        }
    }
    n.parse::<f64>().ok().map(|f| Expr::Literal(Literal::Float(f)))
}
