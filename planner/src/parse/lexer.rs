//! Tokens of eKuiper SQL, produced by sqlparser's tokenizer under a dialect
//! that matches eKuiper's lexical rules: `"..."` and `'...'` are strings,
//! backticks quote identifiers, `->` is the JSON path operator.

use sqlparser::dialect::Dialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Pos, Result};

/// eKuiper's lexical dialect for sqlparser's tokenizer.
#[derive(Debug)]
struct EkuiperDialect;

impl Dialect for EkuiperDialect {
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_'
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        true
    }
}

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Identifier or keyword; `quoted` if written in backticks.
    Word { value: String, quoted: bool },
    /// Number as written.
    Number(String),
    /// String literal, escapes processed.
    Str(String),
    /// Punctuation and operators.
    Sym(Sym),
    /// End of input.
    Eof,
}

/// Punctuation and operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sym {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Period,
    Colon,
    Semi,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    Pipe,
    Caret,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    Arrow,
}

/// A token with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned {
    pub(crate) tok: Tok,
    pub(crate) pos: Pos,
}

/// Splits `sql` into tokens, dropping whitespace and comments.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Spanned>> {
    let dialect = EkuiperDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| Error::parse(Pos { line: e.location.line as u32, column: e.location.column as u32 }, e.message))?;
    let mut out = Vec::with_capacity(tokens.len() + 1);
    let mut last = Pos { line: 1, column: 1 };
    for t in tokens {
        let pos = Pos { line: t.span.start.line as u32, column: t.span.start.column as u32 };
        last = Pos { line: t.span.end.line as u32, column: t.span.end.column as u32 };
        let tok = match t.token {
            Token::Whitespace(_) => continue,
            Token::Word(w) => Tok::Word { value: w.value, quoted: w.quote_style.is_some() },
            Token::Number(n, _) => Tok::Number(n),
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Tok::Str(s),
            Token::LParen => Tok::Sym(Sym::LParen),
            Token::RParen => Tok::Sym(Sym::RParen),
            Token::LBracket => Tok::Sym(Sym::LBracket),
            Token::RBracket => Tok::Sym(Sym::RBracket),
            Token::Comma => Tok::Sym(Sym::Comma),
            Token::Period => Tok::Sym(Sym::Period),
            Token::Colon => Tok::Sym(Sym::Colon),
            Token::SemiColon => Tok::Sym(Sym::Semi),
            Token::Plus => Tok::Sym(Sym::Plus),
            Token::Minus => Tok::Sym(Sym::Minus),
            Token::Mul => Tok::Sym(Sym::Star),
            Token::Div => Tok::Sym(Sym::Slash),
            Token::Mod => Tok::Sym(Sym::Percent),
            Token::Ampersand => Tok::Sym(Sym::Amp),
            Token::Pipe => Tok::Sym(Sym::Pipe),
            Token::Caret => Tok::Sym(Sym::Caret),
            Token::Eq | Token::DoubleEq => Tok::Sym(Sym::Eq),
            Token::Neq => Tok::Sym(Sym::Neq),
            Token::Lt => Tok::Sym(Sym::Lt),
            Token::LtEq => Tok::Sym(Sym::Le),
            Token::Gt => Tok::Sym(Sym::Gt),
            Token::GtEq => Tok::Sym(Sym::Ge),
            Token::Arrow => Tok::Sym(Sym::Arrow),
            other => return Err(Error::parse(pos, format!("unexpected token {other}"))),
        };
        out.push(Spanned { tok, pos });
    }
    out.push(Spanned { tok: Tok::Eof, pos: last });
    Ok(out)
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Word { value, quoted: true } => write!(f, "`{value}`"),
            Tok::Word { value, .. } => f.write_str(value),
            Tok::Number(n) => f.write_str(n),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::Eof => f.write_str("end of statement"),
            Tok::Sym(s) => f.write_str(match s {
                Sym::LParen => "(",
                Sym::RParen => ")",
                Sym::LBracket => "[",
                Sym::RBracket => "]",
                Sym::Comma => ",",
                Sym::Period => ".",
                Sym::Colon => ":",
                Sym::Semi => ";",
                Sym::Plus => "+",
                Sym::Minus => "-",
                Sym::Star => "*",
                Sym::Slash => "/",
                Sym::Percent => "%",
                Sym::Amp => "&",
                Sym::Pipe => "|",
                Sym::Caret => "^",
                Sym::Eq => "=",
                Sym::Neq => "!=",
                Sym::Lt => "<",
                Sym::Le => "<=",
                Sym::Gt => ">",
                Sym::Ge => ">=",
                Sym::Arrow => "->",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_quotes_are_strings_and_backticks_identifiers() {
        let t = tokenize(r#"SELECT `from`, "a\"b" FROM s"#).unwrap();
        assert_eq!(t[1].tok, Tok::Word { value: "from".into(), quoted: true });
        assert_eq!(t[3].tok, Tok::Str("a\"b".into()));
    }

    #[test]
    fn arrow_and_positions() {
        let t = tokenize("a->b\n  c").unwrap();
        assert_eq!(t[1].tok, Tok::Sym(Sym::Arrow));
        assert_eq!(t[3].pos, Pos { line: 2, column: 3 });
    }
}
