//! A JSONPath evaluator with the semantics of the Go libraries eKuiper uses
//! (`github.com/PaesslerAG/jsonpath` v0.1.1 on `gval.Full()` v1.2.2).
//!
//! * A path without wildcards (`$.a.b`, `$.a[0]`, `$["k"]`) yields one
//!   value; a missing map key is an error (`unknown key b`), an array index
//!   out of range yields null, selecting into a scalar is an error.
//! * A path with any of `*`, `..`, `[a,b]`, `[start:end:step]`, `[?(filter)]`
//!   yields an array of all matches (possibly empty) and never fails; a
//!   match whose remaining path fails is skipped.
//! * Filters and bracket keys are gval expressions: numbers, strings
//!   (`"…"`, one-char `'c'`, `` `raw` ``), `true`/`false`, `[…]` arrays,
//!   `$…` and `@…` paths, bare identifiers (fields of the root), prefix
//!   `- ! ~`, infix `?? || && == != < <= > >= =~ !~ in ^ & | << >> + - * / % **`
//!   and `c ? a : b`, with gval's type rules (numbers compare as floats,
//!   numeric strings convert, `==` falls back to deep equality).
//!   A filter that fails to evaluate is false for that element.
//! * Map members are visited in key order (Go visits them randomly).

use std::sync::Arc;

use super::golike::{go_eq, go_type, go_v};
use crate::value::Value;

/// A parsed JSONPath (a gval expression whose root is usually a `$` path).
#[derive(Debug, Clone)]
pub(crate) struct JsonPath {
    expr: Expr,
}

impl JsonPath {
    /// Parses a path; the error text follows gval's `parsing error: …`.
    pub(crate) fn parse(src: &str) -> Result<JsonPath, String> {
        let toks = lex(src).map_err(|e| format!("parsing error: {src} - {e}"))?;
        // Bounds the depth of the expression tree (evaluation recurses).
        if toks.len() > MAX_TOKENS {
            return Err(format!("parsing error: {src} - expression too long"));
        }
        let mut p = Parser { toks, pos: 0, depth: 0 };
        let expr = p.full().map_err(|e| format!("parsing error: {src} - {e}"))?;
        if p.peek() != &Tok::Eof {
            return Err(format!("parsing error: {src} - unexpected {} while scanning operator", p.peek().text()));
        }
        Ok(JsonPath { expr })
    }

    /// Evaluates the path against `root` (already converted to JSON-like data).
    pub(crate) fn eval(&self, root: &Value) -> Result<Value, String> {
        let cx = Cx { root, current: root };
        eval(&self.expr, &cx)
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(&'static str),
    Eof,
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Ident(s) => s.clone(),
            Tok::Num(n) => n.to_string(),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Op(o) => (*o).to_string(),
            Tok::Eof => "EOF".into(),
        }
    }
}

const OPS: &[&str] = &[
    "**", ">=", "<=", "==", "!=", "=~", "!~", "&&", "||", "<<", ">>", "??", "+", "-", "*", "/", "%", ">", "<", "!",
    "&", "|", "^", "~", "?", ":", ",", "(", ")", "[", "]", "{", "}", ".", "$", "@", "=", "#",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
            continue;
        }
        let starts_number = c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()));
        if starts_number {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                let exp = matches!(chars[i], 'e' | 'E');
                i += 1;
                if exp && i < chars.len() && matches!(chars[i], '+' | '-') {
                    i += 1;
                }
            }
            let text: String = chars[start..i].iter().collect();
            let n = parse_go_number(&text).ok_or_else(|| format!("invalid number {text}"))?;
            out.push(Tok::Num(n));
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            let (s, next) = lex_string(&chars, i)?;
            out.push(Tok::Str(s));
            i = next;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push(Tok::Op(op));
                i += op.chars().count();
            }
            None => return Err(format!("unexpected character {c:?}")),
        }
    }
    out.push(Tok::Eof);
    Ok(out)
}

fn parse_go_number(text: &str) -> Option<f64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    text.parse::<f64>().ok()
}

/// A Go string literal: `"…"` with escapes, `` `raw` ``, or a one-character
/// `'c'` (gval unquotes with `strconv.Unquote`, which rejects longer ones).
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut i = start + 1;
    let mut s = String::new();
    loop {
        let c = *chars.get(i).ok_or("literal not terminated")?;
        i += 1;
        if c == quote {
            break;
        }
        if c == '\\' && quote != '`' {
            let e = *chars.get(i).ok_or("literal not terminated")?;
            i += 1;
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                'a' => s.push('\u{7}'),
                'b' => s.push('\u{8}'),
                'f' => s.push('\u{c}'),
                'v' => s.push('\u{b}'),
                '\\' => s.push('\\'),
                '"' | '\'' => s.push(e),
                'u' | 'x' => {
                    let n = if e == 'u' { 4 } else { 2 };
                    let hex: String = chars.get(i..i + n).ok_or("bad escape")?.iter().collect();
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| "bad escape")?;
                    s.push(char::from_u32(code).ok_or("bad escape")?);
                    i += n;
                }
                _ => return Err("could not parse string: invalid syntax".into()),
            }
            continue;
        }
        if c == '\n' && quote != '`' {
            return Err("literal not terminated".into());
        }
        s.push(c);
    }
    if quote == '\'' && s.chars().count() != 1 {
        return Err("could not parse string: invalid syntax".into());
    }
    Ok((s, i))
}

// ---------------------------------------------------------------- syntax

#[derive(Debug, Clone)]
enum Expr {
    Const(Value),
    Path {
        current: bool,
        segs: Arc<Vec<Seg>>,
    },
    /// A bare identifier chain: `a.b[c]` selects from the root.
    Var(Vec<Expr>),
    ArrayLit(Vec<Expr>),
    Unary(&'static str, Box<Expr>),
    Binary(&'static str, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone)]
enum Seg {
    /// `.x`, `[x]`: exactly one result.
    Key(Expr),
    /// `(expr)`: the script's value with `@` = the current value.
    Script(Expr),
    /// `*`, `[*]`.
    Star,
    /// `[a, b]`.
    Multi(Vec<Expr>),
    /// `[start:end:step]`.
    Range(Expr, Expr, Expr),
    /// `[?(cond)]`.
    Filter(Expr),
    /// `..`: the value and all its descendants.
    Descend,
}

impl Seg {
    fn ambiguous(&self) -> bool {
        !matches!(self, Seg::Key(_) | Seg::Script(_))
    }
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 200;
const MAX_TOKENS: usize = 4096;
const MAX_INT32: f64 = 2_147_483_647.0;

fn precedence(op: &str) -> Option<u8> {
    Some(match op {
        "??" => 0,
        "||" => 20,
        "&&" => 21,
        "==" | "!=" | ">" | ">=" | "<" | "<=" | "=~" | "!~" | "in" => 40,
        "^" | "&" | "|" => 60,
        "<<" | ">>" => 90,
        "+" | "-" => 120,
        "*" | "/" | "%" => 150,
        "**" => 200,
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).unwrap_or(&Tok::Eof)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn expect(&mut self, op: &str, what: &str) -> Result<(), String> {
        match self.next() {
            Tok::Op(o) if o == op => Ok(()),
            t => Err(format!("unexpected {} while scanning {what} expected {op}", t.text())),
        }
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    /// A whole expression, with the ternary `c ? a : b`.
    fn full(&mut self) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("maximum parse depth exceeded".into());
        }
        let e = self.binary(0)?;
        let e = if self.is_op("?") {
            self.next();
            let a = self.full()?;
            let b = if self.is_op(":") {
                self.next();
                self.full()?
            } else {
                Expr::Const(Value::Null)
            };
            Expr::Cond(Box::new(e), Box::new(a), Box::new(b))
        } else {
            e
        };
        self.depth -= 1;
        Ok(e)
    }

    fn binary_op(&self) -> Option<&'static str> {
        match self.peek() {
            Tok::Op(o) if precedence(o).is_some() => Some(o),
            Tok::Ident(i) if i == "in" => Some("in"),
            _ => None,
        }
    }

    fn binary(&mut self, min_prec: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some(op) = self.binary_op() {
            let prec = precedence(op).unwrap_or(0);
            if prec < min_prec {
                break;
            }
            self.next();
            let rhs = self.binary(prec.saturating_add(1))?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek().clone() {
            Tok::Op(op @ ("-" | "!" | "~")) => {
                self.next();
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("maximum parse depth exceeded".into());
                }
                let e = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Unary(op, Box::new(e)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Tok::Num(n) => Ok(Expr::Const(Value::Float(n))),
            Tok::Str(s) => Ok(Expr::Const(Value::str(s))),
            Tok::Ident(i) if i == "true" => Ok(Expr::Const(Value::Bool(true))),
            Tok::Ident(i) if i == "false" => Ok(Expr::Const(Value::Bool(false))),
            Tok::Ident(i) => self.var(i),
            Tok::Op("$") => self.path(false),
            Tok::Op("@") => self.path(true),
            Tok::Op("(") => {
                let e = self.full()?;
                self.expect(")", "parentheses")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                if self.is_op("]") {
                    self.next();
                    return Ok(Expr::ArrayLit(items));
                }
                loop {
                    items.push(self.full()?);
                    match self.next() {
                        Tok::Op(",") => continue,
                        Tok::Op("]") => break,
                        t => return Err(format!("unexpected {} while scanning array expected ]", t.text())),
                    }
                }
                Ok(Expr::ArrayLit(items))
            }
            t => Err(format!("unexpected {} while scanning extensions", t.text())),
        }
    }

    fn var(&mut self, first: String) -> Result<Expr, String> {
        let mut keys = vec![Expr::Const(Value::str(first.clone()))];
        loop {
            if self.is_op(".") {
                self.next();
                match self.next() {
                    Tok::Ident(i) => keys.push(Expr::Const(Value::str(i))),
                    t => return Err(format!("unexpected {} while scanning field expected Ident", t.text())),
                }
            } else if self.is_op("[") {
                self.next();
                keys.push(self.full()?);
                self.expect("]", "array key")?;
            } else if self.is_op("(") {
                return Err(format!("unknown function {first}"));
            } else {
                return Ok(Expr::Var(keys));
            }
        }
    }

    fn path(&mut self, current: bool) -> Result<Expr, String> {
        let mut segs = Vec::new();
        loop {
            if self.is_op(".") {
                self.next();
                match self.next() {
                    Tok::Ident(i) => segs.push(Seg::Key(Expr::Const(Value::str(i)))),
                    Tok::Op("*") => segs.push(Seg::Star),
                    Tok::Op(".") => {
                        segs.push(Seg::Descend);
                        self.mapper(&mut segs)?;
                    }
                    t => {
                        return Err(format!(
                            "unexpected {} while scanning JSON select expected Ident, . or *",
                            t.text()
                        ))
                    }
                }
            } else if self.is_op("[") {
                self.next();
                let (keys, sep) = self.bracket()?;
                segs.push(bracket_seg(keys, sep, false)?);
            } else if self.is_op("(") {
                self.next();
                let e = self.full()?;
                self.expect(")", "jsonpath script")?;
                segs.push(Seg::Script(e));
            } else {
                return Ok(Expr::Path { current, segs: Arc::new(segs) });
            }
        }
    }

    fn mapper(&mut self, segs: &mut Vec<Seg>) -> Result<(), String> {
        match self.next() {
            Tok::Ident(i) => segs.push(Seg::Key(Expr::Const(Value::str(i)))),
            Tok::Op("[") => {
                let (keys, sep) = self.bracket()?;
                segs.push(bracket_seg(keys, sep, true)?);
            }
            Tok::Op("*") => segs.push(Seg::Star),
            Tok::Op("(") => {
                let e = self.full()?;
                self.expect(")", "jsonpath script")?;
                segs.push(Seg::Script(e));
            }
            t => return Err(format!("unexpected {} while scanning JSON mapper expected [, Ident or *", t.text())),
        }
        Ok(())
    }

    /// The inside of `[…]` after the `[`, as PaesslerAG's `parseBracket`.
    fn bracket(&mut self) -> Result<(Vec<Expr>, &'static str), String> {
        let mut keys: Vec<Expr> = Vec::new();
        let mut sep: &'static str = "";
        loop {
            let mut scan = match self.peek().clone() {
                Tok::Op("?") => {
                    self.next();
                    "?"
                }
                Tok::Op(":") => {
                    self.next();
                    let v = if keys.len() == 1 { MAX_INT32 } else { 0.0 };
                    keys.push(Expr::Const(Value::Float(v)));
                    ":"
                }
                Tok::Op("*") if keys.is_empty() && sep.is_empty() => {
                    self.next();
                    self.expect("]", "JSON bracket star")?;
                    return Ok((Vec::new(), "*"));
                }
                Tok::Op("]") if sep == ":" => {
                    self.next();
                    "]"
                }
                _ => {
                    keys.push(self.full()?);
                    ""
                }
            };
            if scan.is_empty() {
                scan = match self.next() {
                    Tok::Op(o @ (":" | "," | "]" | "?")) => o,
                    t => {
                        return Err(format!(
                            "unexpected {} while scanning JSON bracket separator expected : or ,",
                            t.text()
                        ))
                    }
                };
            }
            if sep.is_empty() {
                sep = scan;
            }
            match scan {
                "]" => return Ok((keys, sep)),
                "?" if !keys.is_empty() => return Err("unexpected ? while scanning JSON filter expected ]".into()),
                _ => {}
            }
            if sep != scan {
                return Err(format!("mixed {sep} and {scan} in JSON bracket"));
            }
        }
    }
}

fn bracket_seg(mut keys: Vec<Expr>, sep: &str, in_mapper: bool) -> Result<Seg, String> {
    match sep {
        ":" => {
            if in_mapper {
                return Err("mapper can not be combined with range query".into());
            }
            if keys.len() > 3 {
                return Err("range query has at least the parameter [min:max:step]".into());
            }
            let defaults = [0.0, MAX_INT32, 1.0];
            while keys.len() < 3 {
                keys.push(Expr::Const(Value::Float(defaults[keys.len()])));
            }
            let mut it = keys.into_iter();
            match (it.next(), it.next(), it.next()) {
                (Some(a), Some(b), Some(c)) => Ok(Seg::Range(a, b, c)),
                _ => Err("range query has at least the parameter [min:max:step]".into()),
            }
        }
        "?" => {
            if keys.len() != 1 {
                return Err("filter needs exactly one key".into());
            }
            Ok(Seg::Filter(keys.remove(0)))
        }
        "*" => Ok(Seg::Star),
        _ if keys.is_empty() => Ok(Seg::Star),
        _ if keys.len() == 1 && !in_mapper => Ok(Seg::Key(keys.remove(0))),
        _ => Ok(Seg::Multi(keys)),
    }
}

// ---------------------------------------------------------------- evaluation

#[derive(Clone, Copy)]
struct Cx<'a> {
    root: &'a Value,
    current: &'a Value,
}

fn eval(e: &Expr, cx: &Cx<'_>) -> Result<Value, String> {
    match e {
        Expr::Const(v) => Ok(v.clone()),
        Expr::Path { current, segs } => {
            let start = if *current { cx.current } else { cx.root };
            eval_path(segs, start, cx.root)
        }
        Expr::Var(keys) => {
            let mut v = cx.root.clone();
            for (i, k) in keys.iter().enumerate() {
                let next = select(k, &v, cx.root);
                v = match next {
                    Ok(x) => x,
                    Err(_) if i == 0 => return Err(format!("unknown parameter {}", go_v(&eval(k, cx)?))),
                    Err(e) => return Err(e),
                };
            }
            Ok(v)
        }
        Expr::ArrayLit(items) => Ok(Value::array(items.iter().map(|x| eval(x, cx)).collect::<Result<Vec<_>, _>>()?)),
        Expr::Unary(op, x) => {
            let v = eval(x, cx)?;
            match *op {
                "-" => to_float(&v)
                    .map(|f| Value::Float(-f))
                    .ok_or_else(|| format!("unexpected {}({}) expected number", go_v(&v), go_type(&v))),
                "!" => to_bool(&v)
                    .map(|b| Value::Bool(!b))
                    .ok_or_else(|| format!("unexpected {} expected bool", go_type(&v))),
                _ => to_float(&v)
                    .map(|f| Value::Float(!(f as i64) as f64))
                    .ok_or_else(|| format!("unexpected {} expected number", go_type(&v))),
            }
        }
        Expr::Binary(op, a, b) => {
            let x = eval(a, cx)?;
            match *op {
                "&&" if matches!(x, Value::Bool(false)) => return Ok(Value::Bool(false)),
                "||" if matches!(x, Value::Bool(true)) => return Ok(Value::Bool(true)),
                "??" if !is_zero(&x) => return Ok(x),
                _ => {}
            }
            let y = eval(b, cx)?;
            binary(op, &x, &y)
        }
        Expr::Cond(c, a, b) => {
            let v = eval(c, cx)?;
            if is_zero(&v) {
                eval(b, cx)
            } else {
                eval(a, cx)
            }
        }
    }
}

fn eval_path(segs: &[Seg], start: &Value, root: &Value) -> Result<Value, String> {
    if !segs.iter().any(Seg::ambiguous) {
        let mut v = start.clone();
        for s in segs {
            v = plain(s, &v, root)?;
        }
        return Ok(v);
    }
    let mut out = Vec::new();
    walk(segs, start, root, &mut out);
    Ok(Value::array(out))
}

fn plain(seg: &Seg, v: &Value, root: &Value) -> Result<Value, String> {
    match seg {
        Seg::Key(k) => select(k, v, root),
        Seg::Script(e) => eval(e, &Cx { root, current: v }),
        _ => Err("ambiguous selector in plain path".into()),
    }
}

/// Collects the matches of `segs` applied to `v`; failures drop the branch.
fn walk(segs: &[Seg], v: &Value, root: &Value, out: &mut Vec<Value>) {
    let Some((seg, rest)) = segs.split_first() else {
        out.push(v.clone());
        return;
    };
    let cx = Cx { root, current: v };
    match seg {
        Seg::Key(_) | Seg::Script(_) => {
            if let Ok(next) = plain(seg, v, root) {
                walk(rest, &next, root, out);
            }
        }
        Seg::Star => {
            for child in children(v) {
                walk(rest, &child, root, out);
            }
        }
        Seg::Multi(keys) => {
            for k in keys {
                if let Ok(next) = select(k, v, root) {
                    walk(rest, &next, root, out);
                }
            }
        }
        Seg::Range(a, b, c) => {
            let Value::Array(arr) = v else { return };
            let (Ok(min), Ok(max), Ok(step)) = (eval_int(a, &cx), eval_int(b, &cx), eval_int(c, &cx)) else {
                return;
            };
            let step = if step == 0 { 1 } else { step };
            let n = arr.len() as i64;
            let (min, max) = (negmax(min, n), negmax(max, n));
            if min > max {
                return;
            }
            let mut i = if step > 0 { min } else { max - 1 };
            while (step > 0 && i < max) || (step < 0 && i >= min) {
                if let Some(x) = usize::try_from(i).ok().and_then(|i| arr.get(i)) {
                    walk(rest, x, root, out);
                }
                i = match i.checked_add(step) {
                    Some(n) => n,
                    None => break,
                };
            }
        }
        Seg::Filter(cond) => {
            for child in children(v) {
                let ok = eval(cond, &Cx { root, current: &child }).ok().and_then(|r| to_bool(&r)).unwrap_or(false);
                if ok {
                    walk(rest, &child, root, out);
                }
            }
        }
        Seg::Descend => descend(rest, v, root, out),
    }
}

fn descend(rest: &[Seg], v: &Value, root: &Value, out: &mut Vec<Value>) {
    walk(rest, v, root, out);
    for child in children(v) {
        descend(rest, &child, root, out);
    }
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.to_vec(),
        Value::Map(m) => m.values().cloned().collect(),
        _ => Vec::new(),
    }
}

fn negmax(n: i64, max: i64) -> i64 {
    if n < 0 {
        (max + n).max(0)
    } else {
        n.min(max)
    }
}

/// `selectValue`: the key is evaluated with `@` = the value being indexed.
fn select(key: &Expr, v: &Value, root: &Value) -> Result<Value, String> {
    let cx = Cx { root, current: v };
    match v {
        Value::Array(a) => {
            let i = eval_int(key, &cx).map_err(|e| format!("could not select value, invalid key: {e}"))?;
            let p = if i < 0 { (a.len() as i64).saturating_add(i) } else { i };
            Ok(usize::try_from(p).ok().and_then(|p| a.get(p)).cloned().unwrap_or(Value::Null))
        }
        Value::Map(m) => {
            let k = match eval(key, &cx).map_err(|e| format!("could not select value, invalid key: {e}"))? {
                Value::String(s) => s.to_string(),
                other => go_v(&other),
            };
            m.get(&k).cloned().ok_or_else(|| format!("unknown key {k}"))
        }
        other => Err(format!(
            "unsupported value type {} for select, expected map[string]interface{{}}, []interface{{}} or Array",
            go_type(other)
        )),
    }
}

fn eval_int(e: &Expr, cx: &Cx<'_>) -> Result<i64, String> {
    let v = eval(e, cx)?;
    to_float(&v).map(|f| f as i64).ok_or_else(|| format!("expected number but got {} ({})", go_v(&v), go_type(&v)))
}

/// gval's `convertToFloat`: numbers and numeric strings.
fn to_float(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    }
}

/// gval's `convertToBool`.
fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Null => Some(false),
        Value::String(s) if &**s == "false" || &**s == "FALSE" => Some(false),
        Value::String(s) if &**s == "true" || &**s == "TRUE" => Some(true),
        _ => to_float(v).map(|f| f != 0.0),
    }
}

/// Go's `reflect.Value.IsZero` for the values weir has.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn binary(op: &str, x: &Value, y: &Value) -> Result<Value, String> {
    let invalid = || format!("invalid operation ({}) {op} ({})", go_type(x), go_type(y));
    let strict_f = match (x, y) {
        (Value::Float(a), Value::Float(b)) => Some((*a, *b)),
        _ => None,
    };
    let strict_s = match (x, y) {
        (Value::String(a), Value::String(b)) => Some((&**a, &**b)),
        _ => None,
    };
    let strict_b = match (x, y) {
        (Value::Bool(a), Value::Bool(b)) => Some((*a, *b)),
        _ => None,
    };
    let conv_f = || Some((to_float(x)?, to_float(y)?));
    let conv_b = || Some((to_bool(x)?, to_bool(y)?));
    let conv_s = || {
        if x.is_null() || y.is_null() {
            None
        } else {
            Some((go_v(x), go_v(y)))
        }
    };
    match op {
        "+" => {
            if let Some((a, b)) = strict_f {
                return Ok(Value::Float(a + b));
            }
            if let Some((a, b)) = strict_s {
                return Ok(Value::str(format!("{a}{b}")));
            }
            if let Some((a, b)) = conv_f() {
                return Ok(Value::Float(a + b));
            }
            conv_s().map(|(a, b)| Value::str(a + &b)).ok_or_else(invalid)
        }
        "-" | "*" | "/" | "%" | "**" | "^" | "&" | "|" | "<<" | ">>" => {
            let (a, b) = strict_f.or_else(conv_f).ok_or_else(invalid)?;
            let (ia, ib) = (a as i64, b as i64);
            Ok(Value::Float(match op {
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                "%" => a % b,
                "**" => a.powf(b),
                "^" => (ia ^ ib) as f64,
                "&" => (ia & ib) as f64,
                "|" => (ia | ib) as f64,
                "<<" => ia.checked_shl(u32::try_from(ib).unwrap_or(u32::MAX)).unwrap_or(0) as f64,
                _ => {
                    ia.checked_shr(u32::try_from(ib).unwrap_or(u32::MAX)).unwrap_or(if ia < 0 { -1 } else { 0 }) as f64
                }
            }))
        }
        ">" | ">=" | "<" | "<=" => {
            let cmp_f = |a: f64, b: f64| match op {
                ">" => a > b,
                ">=" => a >= b,
                "<" => a < b,
                _ => a <= b,
            };
            let cmp_s = |a: &str, b: &str| match op {
                ">" => a > b,
                ">=" => a >= b,
                "<" => a < b,
                _ => a <= b,
            };
            if let Some((a, b)) = strict_f {
                return Ok(Value::Bool(cmp_f(a, b)));
            }
            if let Some((a, b)) = strict_s {
                return Ok(Value::Bool(cmp_s(a, b)));
            }
            if let Some((a, b)) = conv_f() {
                return Ok(Value::Bool(cmp_f(a, b)));
            }
            conv_s().map(|(a, b)| Value::Bool(cmp_s(&a, &b))).ok_or_else(invalid)
        }
        "==" | "!=" => {
            let eq = if let Some((a, b)) = strict_f {
                a == b
            } else if let Some((a, b)) = strict_b {
                a == b
            } else if let Some((a, b)) = conv_f() {
                a == b
            } else if let Some((a, b)) = conv_b() {
                a == b
            } else {
                go_eq(x, y)
            };
            Ok(Value::Bool(if op == "==" { eq } else { !eq }))
        }
        "&&" | "||" => {
            let (a, b) = strict_b.or_else(conv_b).ok_or_else(invalid)?;
            Ok(Value::Bool(if op == "&&" { a && b } else { a || b }))
        }
        "??" => Ok(if is_zero(x) { y.clone() } else { x.clone() }),
        "=~" | "!~" => {
            let text = match x {
                Value::String(s) => s.to_string(),
                other => go_v(other),
            };
            let pat = match y {
                Value::String(s) => s.to_string(),
                other => go_v(other),
            };
            let re = regex::Regex::new(&pat).map_err(|e| e.to_string())?;
            let m = re.is_match(&text);
            Ok(Value::Bool(if op == "=~" { m } else { !m }))
        }
        "in" => match y {
            Value::Array(a) => Ok(Value::Bool(a.iter().any(|v| go_eq(x, v)))),
            other => Err(format!("expected type []interface{{}} for in operator but got {}", go_type(other))),
        },
        _ => Err(invalid()),
    }
}

#[cfg(test)]
#[path = "jsonpath_tests.rs"]
mod tests;
