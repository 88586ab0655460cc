//! Executing a parsed template against a [`Value`].
//!
//! Values behave as Go's `interface{}` data does in `text/template`: a
//! missing map key is "no value" (printed `<no value>`), a present null is
//! `<nil>`, and printing uses `fmt`'s `%v` ([`go_print`]).

use weir_runtime::value::format_float_v;
use weir_runtime::Value;

use super::funcs;
use super::parse::{Arg, Node, Pipe};
use super::TemplateError;

/// Loop control after a node list.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// Guards against runaway templates (deep recursion is impossible without
/// `template`, but ranges over huge data still are bounded by the data).
pub(super) struct State {
    vars: Vec<(String, Value)>,
    pub(super) out: String,
}

fn exec_err(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

impl State {
    pub(super) fn new(root: &Value) -> State {
        State { vars: vec![("$".to_string(), root.clone())], out: String::new() }
    }

    pub(super) fn walk(&mut self, dot: &Value, nodes: &[Node]) -> Result<(), TemplateError> {
        self.list(dot, nodes).map(|_| ())
    }

    fn list(&mut self, dot: &Value, nodes: &[Node]) -> Result<Flow, TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(dot, p)?;
                    if p.vars.is_empty() {
                        print_value(&v, &mut self.out);
                    }
                }
                Node::If { pipe, then, els } => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, pipe)?;
                    let flow = if truth(&v) { self.list(dot, then)? } else { self.list(dot, els)? };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With { pipe, body, els } => {
                    let mark = self.vars.len();
                    let v = self.pipe(dot, pipe)?;
                    let flow = match v {
                        Some(v) if truth(&Some(v.clone())) => self.list(&v, body)?,
                        _ => self.list(dot, els)?,
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range { pipe, body, els } => {
                    let flow = self.range(dot, pipe, body, els)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Value, pipe: &Pipe, body: &[Node], els: &[Node]) -> Result<Flow, TemplateError> {
        let mark = self.vars.len();
        let decl = Pipe { vars: Vec::new(), assign: false, cmds: pipe.cmds.clone() };
        let v = self.pipe(dot, &decl)?;
        let items: Vec<(Value, Value)> = match &v {
            Some(Value::Array(a)) => a.iter().enumerate().map(|(i, e)| (Value::Int(i as i64), e.clone())).collect(),
            Some(Value::Map(m)) => m.iter().map(|(k, e)| (Value::str(k), e.clone())).collect(),
            Some(Value::Int(n)) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            None | Some(Value::Null) => Vec::new(),
            Some(other) => return Err(exec_err(format!("range can't iterate over {}", go_sprint(other)))),
        };
        if items.is_empty() {
            let flow = self.list(dot, els)?;
            self.vars.truncate(mark);
            return Ok(flow);
        }
        for (k, e) in items {
            match pipe.vars.as_slice() {
                [] => {}
                [v] => self.vars.push((v.clone(), e.clone())),
                [i, v, ..] => {
                    self.vars.push((i.clone(), k));
                    self.vars.push((v.clone(), e.clone()));
                }
            }
            let flow = self.list(&e, body)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, dot: &Value, p: &Pipe) -> Result<Option<Value>, TemplateError> {
        let mut prev: Option<Option<Value>> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(dot, cmd, prev)?);
        }
        let v = prev.unwrap_or(None);
        if !p.vars.is_empty() {
            let val = v.clone().unwrap_or(Value::Null);
            for name in &p.vars {
                if p.assign {
                    let slot = self
                        .vars
                        .iter_mut()
                        .rev()
                        .find(|(n, _)| n == name)
                        .ok_or_else(|| exec_err(format!("undefined variable: {name}")))?;
                    slot.1 = val.clone();
                } else {
                    self.vars.push((name.clone(), val.clone()));
                }
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        dot: &Value,
        cmd: &[Arg],
        prev: Option<Option<Value>>,
    ) -> Result<Option<Value>, TemplateError> {
        if let Some(Arg::Func(name)) = cmd.first() {
            let mut args = Vec::with_capacity(cmd.len());
            // `and`/`or` evaluate lazily, as in Go 1.18+.
            if name == "and" || name == "or" {
                let want = name == "or";
                let mut last = None;
                for a in &cmd[1..] {
                    last = self.arg(dot, a)?;
                    if truth(&last) == want {
                        return Ok(last);
                    }
                }
                if let Some(p) = prev {
                    last = p;
                }
                return Ok(last);
            }
            for a in &cmd[1..] {
                args.push(self.arg(dot, a)?);
            }
            if let Some(p) = prev {
                args.push(p);
            }
            return funcs::call(name, args).map_err(|e| exec_err(format!("error calling {name}: {e}")));
        }
        if cmd.len() > 1 || prev.is_some() {
            return Err(exec_err(format!("can't give argument to non-function {}", describe(&cmd[0]))));
        }
        self.arg(dot, &cmd[0])
    }

    fn arg(&mut self, dot: &Value, a: &Arg) -> Result<Option<Value>, TemplateError> {
        Ok(match a {
            Arg::Field(chain) => fields(Some(dot.clone()), chain)?,
            Arg::Var(name, chain) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| exec_err(format!("undefined variable: {name}")))?;
                fields(Some(v), chain)?
            }
            Arg::Sub(p, chain) => {
                let v = self.pipe(dot, p)?;
                fields(v, chain)?
            }
            Arg::Func(name) => {
                funcs::call(name, Vec::new()).map_err(|e| exec_err(format!("error calling {name}: {e}")))?
            }
            Arg::Str(s) => Some(Value::str(s)),
            Arg::Int(i) => Some(Value::Int(*i)),
            Arg::Float(f) => Some(Value::Float(*f)),
            Arg::Bool(b) => Some(Value::Bool(*b)),
            Arg::Nil => Some(Value::Null),
        })
    }
}

fn describe(a: &Arg) -> String {
    match a {
        Arg::Str(s) => format!("{s:?}"),
        Arg::Int(i) => i.to_string(),
        Arg::Float(f) => format_float_v(*f),
        Arg::Field(c) => format!(".{}", c.join(".")),
        Arg::Var(v, _) => v.clone(),
        _ => "value".into(),
    }
}

/// Follows `.a.b` on `v`. A missing key is "no value"; a field of a
/// non-map is an error, as in Go.
fn fields(mut v: Option<Value>, chain: &[String]) -> Result<Option<Value>, TemplateError> {
    for name in chain {
        v = match v {
            Some(Value::Map(m)) => m.get(name).cloned(),
            None | Some(Value::Null) => {
                return Err(exec_err(format!("nil pointer evaluating interface {{}}.{name}")));
            }
            Some(other) => {
                return Err(exec_err(format!("can't evaluate field {name} in type {}", go_type(&other))));
            }
        };
    }
    Ok(v)
}

/// Go's `text/template` truth: false, 0, nil, empty strings and
/// containers are false.
pub(super) fn truth(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Int(i)) => *i != 0,
        Some(Value::Float(f)) => *f != 0.0,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Bytes(b)) => !b.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Map(m)) => !m.is_empty(),
        Some(Value::Datetime(_)) => true,
    }
}

/// The Go type name eKuiper data would have, for error messages.
pub(super) fn go_type(v: &Value) -> &'static str {
    v.go_type()
}

fn print_value(v: &Option<Value>, out: &mut String) {
    match v {
        None => out.push_str("<no value>"),
        Some(v) => go_print(v, out),
    }
}

/// `fmt.Sprint(v)` of Go data.
pub(crate) fn go_sprint(v: &Value) -> String {
    let mut s = String::new();
    go_print(v, &mut s);
    s
}

/// Appends Go's `%v` of `v` (one implementation with the SQL functions:
/// [`Value::to_go_string`]).
pub(crate) fn go_print(v: &Value, out: &mut String) {
    out.push_str(&v.to_go_string());
}
