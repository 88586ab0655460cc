//! Lexing and parsing of Go `text/template` source into a node tree.
//!
//! Covers what sink templates use: text, `{{- -}}` trimming, comments,
//! pipelines with `|`, parenthesised sub-pipelines, field chains (`.a.b`,
//! `$x.a`, `(index . 0).a`), variables (`$x := ...`, `$x = ...`,
//! `range $i, $e := ...`), literals, and the `if`/`else if`/`range`/`with`/
//! `break`/`continue` control structures. `define`/`template`/`block` are
//! rejected with a clear error.

use super::TemplateError;

/// A parsed template node.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// Literal text.
    Text(String),
    /// `{{pipeline}}`: printed unless it declares or assigns variables.
    Action(Pipe),
    /// `{{if p}}then{{else}}else{{end}}`.
    If { pipe: Pipe, then: Vec<Node>, els: Vec<Node> },
    /// `{{range p}}body{{else}}else{{end}}`.
    Range { pipe: Pipe, body: Vec<Node>, els: Vec<Node> },
    /// `{{with p}}body{{else}}else{{end}}`.
    With { pipe: Pipe, body: Vec<Node>, els: Vec<Node> },
    /// `{{break}}`.
    Break,
    /// `{{continue}}`.
    Continue,
}

/// A pipeline: optional variable declaration and commands joined by `|`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Pipe {
    /// Declared or assigned variable names (with `$`).
    pub(super) vars: Vec<String>,
    /// `=` rather than `:=`.
    pub(super) assign: bool,
    /// The commands; each but the first gets the previous result as its
    /// last argument.
    pub(super) cmds: Vec<Vec<Arg>>,
}

/// One operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    /// `.a.b` (empty chain: `.` itself).
    Field(Vec<String>),
    /// `$x.a.b`.
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// `(pipeline).a.b`.
    Sub(Box<Pipe>, Vec<String>),
    /// A string literal.
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Pipe,
    Open,
    Close(Vec<String>),
    Declare,
    Assign,
    Comma,
}

enum Item {
    Text(String),
    Action(Vec<Tok>, usize),
}

/// Parses template source.
pub(super) fn parse(src: &str, funcs: &dyn Fn(&str) -> bool) -> Result<Vec<Node>, TemplateError> {
    let items = lex(src)?;
    let mut p = Parser { items: items.into_iter().peekable(), funcs };
    let (nodes, end) = p.list()?;
    match end {
        Stop::Eof => Ok(nodes),
        Stop::End(line) => Err(err(line, "unexpected {{end}}")),
        Stop::Else(line, _) => Err(err(line, "unexpected {{else}}")),
    }
}

fn err(line: usize, msg: impl Into<String>) -> TemplateError {
    TemplateError::Parse { line, message: msg.into() }
}

fn lex(src: &str) -> Result<Vec<Item>, TemplateError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            let text = if trim_next { rest.trim_start() } else { rest };
            items.push(Item::Text(text.to_string()));
            break;
        };
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner = &rest[open + 2..];
        // `{{- ` trims the text before; `{{-3}}` is a number.
        if inner.starts_with("- ") || inner.starts_with("-\t") || inner.starts_with("-\n") {
            text = text.trim_end();
            inner = &inner[1..];
        }
        line += rest[..open].matches('\n').count();
        if !text.is_empty() {
            items.push(Item::Text(text.to_string()));
        }
        let action_line = line;
        let close = if inner.trim_start().starts_with("/*") {
            let c = inner.find("*/").ok_or_else(|| err(line, "unclosed comment"))?;
            let after = &inner[c + 2..];
            let close = after.find("}}").ok_or_else(|| err(line, "unclosed action"))?;
            c + 2 + close
        } else {
            find_close(inner).ok_or_else(|| err(line, "unclosed action"))?
        };
        let mut body = &inner[..close];
        trim_next = false;
        if body.ends_with(" -") || body.ends_with("\t-") || body.ends_with("\n-") {
            body = &body[..body.len() - 1];
            trim_next = true;
        }
        line += body.matches('\n').count();
        if !body.trim_start().starts_with("/*") {
            items.push(Item::Action(tokens(body, action_line)?, action_line));
        }
        rest = &inner[close + 2..];
    }
    Ok(items)
}

/// The `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads a `.a.b` chain starting at `s[i] == '.'`; returns names and end.
fn chain(s: &str, mut i: usize) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    while s[i..].starts_with('.') {
        let start = i + 1;
        let end = s[start..].find(|c: char| !is_ident_char(c)).map_or(s.len(), |e| start + e);
        if end == start {
            // A lone `.`: dot itself (only meaningful first).
            i = start;
            break;
        }
        names.push(s[start..end].to_string());
        i = end;
    }
    (names, i)
}

fn tokens(s: &str, line: usize) -> Result<Vec<Tok>, TemplateError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or(' ');
        match c {
            c if c.is_whitespace() => i += c.len_utf8(),
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                let (names, end) = chain(s, i + 1);
                out.push(Tok::Close(names));
                i = end;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if s[i..].starts_with(":=") => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '.' if !s[i + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let (names, end) = chain(s, i);
                out.push(Tok::Field(names));
                i = end.max(i + 1);
            }
            '$' => {
                let start = i + 1;
                let end = s[start..].find(|c: char| !is_ident_char(c)).map_or(s.len(), |e| start + e);
                let name = format!("${}", &s[start..end]);
                let (names, end) = if s[end..].starts_with('.') { chain(s, end) } else { (Vec::new(), end) };
                out.push(Tok::Var(name, names));
                i = end;
            }
            '"' => {
                let (text, end) = quoted(s, i).ok_or_else(|| err(line, "unterminated quoted string"))?;
                out.push(Tok::Str(text));
                i = end;
            }
            '`' => {
                let end = s[i + 1..].find('`').ok_or_else(|| err(line, "unterminated raw quoted string"))?;
                out.push(Tok::Str(s[i + 1..i + 1 + end].to_string()));
                i += end + 2;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let end = s[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '+' || c == '-'))
                    .map_or(s.len(), |e| i + 1 + e);
                let lit = s[i..end].replace('_', "");
                let tok = if let Some(h) = lit.strip_prefix("0x").or_else(|| lit.strip_prefix("0X")) {
                    i64::from_str_radix(h, 16).ok().map(Tok::Int)
                } else if let Ok(n) = lit.parse::<i64>() {
                    Some(Tok::Int(n))
                } else {
                    lit.parse::<f64>().ok().map(Tok::Float)
                };
                out.push(tok.ok_or_else(|| err(line, format!("bad number syntax: {:?}", &s[i..end])))?);
                i = end;
            }
            c if is_ident_char(c) => {
                let end = s[i..].find(|c: char| !is_ident_char(c)).map_or(s.len(), |e| i + e);
                out.push(Tok::Ident(s[i..end].to_string()));
                i = end;
            }
            c => return Err(err(line, format!("unexpected {c:?} in command"))),
        }
    }
    Ok(out)
}

/// A Go interpreted string literal starting at `s[i] == '"'`.
fn quoted(s: &str, i: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s[i + 1..].char_indices();
    while let Some((j, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 1 + j + 1)),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    None
}

/// What ended a node list.
enum Stop {
    Eof,
    End(usize),
    /// `{{else}}` or `{{else if ...}}` (tokens after `else`).
    Else(usize, Vec<Tok>),
}

struct Parser<'a> {
    items: std::iter::Peekable<std::vec::IntoIter<Item>>,
    funcs: &'a dyn Fn(&str) -> bool,
}

impl Parser<'_> {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let (toks, line) = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(toks, line) => (toks, line),
            };
            let keyword = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                _ => "",
            };
            match keyword {
                "end" if toks.len() == 1 => return Ok((nodes, Stop::End(line))),
                "else" => return Ok((nodes, Stop::Else(line, toks[1..].to_vec()))),
                "if" | "range" | "with" => {
                    let kw = keyword.to_string();
                    nodes.push(self.control(&kw, &toks[1..], line)?);
                }
                "break" if toks.len() == 1 => nodes.push(Node::Break),
                "continue" if toks.len() == 1 => nodes.push(Node::Continue),
                "define" | "template" | "block" => {
                    return Err(err(line, format!("{{{{{keyword}}}}} is not supported in sink templates")))
                }
                _ => nodes.push(Node::Action(self.pipe(&toks, line)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kw: &str, toks: &[Tok], line: usize) -> Result<Node, TemplateError> {
        let pipe = self.pipe(toks, line)?;
        if pipe.cmds.is_empty() {
            return Err(err(line, format!("missing value for {kw}")));
        }
        let (body, end) = self.list()?;
        let els = match end {
            Stop::Eof => return Err(err(line, format!("unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"))),
            Stop::End(_) => Vec::new(),
            Stop::Else(_, rest) if rest.is_empty() => match self.list()? {
                (els, Stop::End(_)) => els,
                (_, Stop::Else(l, _)) => return Err(err(l, "expected {{end}} after {{else}}")),
                (_, Stop::Eof) => return Err(err(line, format!("unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"))),
            },
            // `{{else if c}}` / `{{else with c}}` opens a nested control
            // sharing this one's {{end}}.
            Stop::Else(l, rest) => match rest.first() {
                Some(Tok::Ident(k)) if k == kw && kw != "range" => {
                    vec![self.control(kw, &rest[1..], l)?]
                }
                _ => return Err(err(l, "unexpected tokens after else")),
            },
        };
        Ok(match kw {
            "if" => Node::If { pipe, then: body, els },
            "range" => Node::Range { pipe, body, els },
            _ => Node::With { pipe, body, els },
        })
    }

    fn pipe(&self, toks: &[Tok], line: usize) -> Result<Pipe, TemplateError> {
        let mut pos = 0;
        let mut vars = Vec::new();
        let mut assign = false;
        // Declarations: `$x :=`, `$i, $e :=`, `$x =`.
        let mut j = 0;
        let mut names = Vec::new();
        while let Some(Tok::Var(name, chain)) = toks.get(j) {
            if !chain.is_empty() {
                break;
            }
            names.push(name.clone());
            match toks.get(j + 1) {
                Some(Tok::Comma) => j += 2,
                Some(Tok::Declare) | Some(Tok::Assign) => {
                    assign = toks[j + 1] == Tok::Assign;
                    vars = std::mem::take(&mut names);
                    pos = j + 2;
                    break;
                }
                _ => break,
            }
        }
        let (pipe, end) = self.cmds(toks, pos, line)?;
        if end != toks.len() {
            return Err(err(line, "unexpected \")\" in command"));
        }
        Ok(Pipe { vars, assign, cmds: pipe })
    }

    /// Commands from `pos` until the end or an unmatched `)`.
    fn cmds(&self, toks: &[Tok], mut pos: usize, line: usize) -> Result<(Vec<Vec<Arg>>, usize), TemplateError> {
        let mut cmds = Vec::new();
        let mut cur = Vec::new();
        while pos < toks.len() {
            match &toks[pos] {
                Tok::Close(_) => break,
                Tok::Pipe => {
                    if cur.is_empty() {
                        return Err(err(line, "missing command before |"));
                    }
                    cmds.push(std::mem::take(&mut cur));
                    pos += 1;
                }
                Tok::Open => {
                    let (sub, end) = self.cmds(toks, pos + 1, line)?;
                    let Some(Tok::Close(chain)) = toks.get(end) else {
                        return Err(err(line, "unclosed left paren"));
                    };
                    if sub.is_empty() {
                        return Err(err(line, "missing command in parentheses"));
                    }
                    cur.push(Arg::Sub(Box::new(Pipe { vars: Vec::new(), assign: false, cmds: sub }), chain.clone()));
                    pos = end + 1;
                }
                t => {
                    cur.push(self.operand(t, line)?);
                    pos += 1;
                }
            }
        }
        if !cur.is_empty() {
            cmds.push(cur);
        } else if !cmds.is_empty() {
            return Err(err(line, "missing command after |"));
        }
        Ok((cmds, pos))
    }

    fn operand(&self, t: &Tok, line: usize) -> Result<Arg, TemplateError> {
        Ok(match t {
            Tok::Field(f) => Arg::Field(f.clone()),
            Tok::Var(v, f) => Arg::Var(v.clone(), f.clone()),
            Tok::Str(s) => Arg::Str(s.clone()),
            Tok::Int(i) => Arg::Int(*i),
            Tok::Float(f) => Arg::Float(*f),
            Tok::Ident(i) => match i.as_str() {
                "true" => Arg::Bool(true),
                "false" => Arg::Bool(false),
                "nil" => Arg::Nil,
                name if (self.funcs)(name) => Arg::Func(name.to_string()),
                name => return Err(err(line, format!("function {name:?} not defined"))),
            },
            Tok::Declare | Tok::Assign => return Err(err(line, "unexpected assignment")),
            Tok::Comma => return Err(err(line, "unexpected \",\"")),
            Tok::Pipe | Tok::Open | Tok::Close(_) => return Err(err(line, "unexpected token")),
        })
    }
}
