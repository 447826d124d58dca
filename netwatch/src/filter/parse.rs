//! The filter grammar: ss's (ss(8), FILTER) plus netwatch's fields.
//!
//! ```text
//! list  := unary (("or" | "||" | "and" | "&&")? unary)*   implicit and
//! unary := ("not" | "!") unary | "(" list ")" | "state" NAME | "exclude" NAME
//!        | FIELD OP? VALUE                                 OP defaults to `=`
//! OP    := = == != < > <= >= ~ eq neq gt lt ge le
//! ```
//!
//! As in ss (ssfilter.y's `exprlist`), `and` and `or` have the same
//! precedence and apply left to right: `a or b and c` is `(a or b) and c`.
//! Several `state` words in a row add up (`state established state
//! syn-sent` keeps both), and `exclude NAME` drops a state.

use super::{
    expr::{self, Expr, Op},
    fields::{self, Kind},
};

/// Why an expression was refused, and where: [`std::fmt::Display`] prints
/// the message, the expression and a caret under the offending word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub input: String,
    /// Byte offset and length of the offending word (at the end when the
    /// expression stopped short).
    pub at: usize,
    pub len: usize,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let col = self.input[..self.at].chars().count();
        let width = self.input[self.at..self.at + self.len].chars().count().max(1);
        writeln!(f, "{} (at character {})", self.message, col + 1)?;
        writeln!(f, "  {}", self.input)?;
        write!(f, "  {}{}", " ".repeat(col), "^".repeat(width))
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Token<'a> {
    text: &'a str,
    at: usize,
}

const PUNCT: &[&str] = &["&&", "||", "!=", "==", "<=", ">=", "(", ")", "!", "=", "<", ">", "~"];

fn tokens(input: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            out.push(Token { text: &rest[..p.len()], at: i });
            i += p.len();
            continue;
        }
        let end = rest.find(|c: char| c.is_whitespace() || "()!=<>&|~".contains(c)).unwrap_or(rest.len());
        // `&` or `|` alone: a one-character word, refused by the parser.
        let end = end.max(1);
        out.push(Token { text: &rest[..end], at: i });
        i += end;
    }
    out
}

fn op(word: &str) -> Option<Op> {
    Some(match word {
        "=" | "==" | "eq" => Op::Eq,
        "!=" | "neq" | "ne" => Op::Ne,
        "<" | "lt" => Op::Lt,
        ">" | "gt" => Op::Gt,
        "<=" | "le" | "leq" => Op::Le,
        ">=" | "ge" | "geq" => Op::Ge,
        "~" => Op::Contains,
        _ => return None,
    })
}

const fn allowed(kind: Kind, op: Op) -> bool {
    match kind {
        Kind::Port | Kind::Number | Kind::Duration => !matches!(op, Op::Contains),
        Kind::Addr => matches!(op, Op::Eq | Op::Ne),
        Kind::Text => matches!(op, Op::Eq | Op::Ne | Op::Contains),
    }
}

/// Whether `input` is meant as an expression rather than plain text: it
/// starts with a keyword, a field name, `!` or `(`. The live view searches
/// for plain text as it always has.
pub fn looks_like_expression(input: &str) -> bool {
    tokens(input)
        .first()
        .is_some_and(|t| matches!(t.text, "state" | "exclude" | "not" | "!" | "(") || fields::field(t.text).is_some())
}

pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let toks = tokens(input);
    if toks.is_empty() {
        return Ok(Expr::True);
    }
    let mut p = Parser { input, toks, pos: 0 };
    let e = p.list()?;
    match p.peek() {
        None => Ok(e),
        Some(t) if t.text == ")" => Err(p.error_at(t, "`)` without a matching `(`")),
        Some(t) => Err(p.error_at(t, "expected `and`, `or` or the end of the expression")),
    }
}

struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<Token<'a>> {
        let t = self.peek();
        self.pos += usize::from(t.is_some());
        t
    }

    fn error_at(&self, t: Token<'_>, message: &str) -> ParseError {
        ParseError { message: message.to_owned(), input: self.input.to_owned(), at: t.at, len: t.text.len() }
    }

    fn error_at_end(&self, message: &str) -> ParseError {
        let end = self.input.trim_end().len();
        ParseError { message: message.to_owned(), input: self.input.to_owned(), at: end, len: 0 }
    }

    /// The next token, or an error saying what was expected instead.
    fn expect(&mut self, what: &str) -> Result<Token<'a>, ParseError> {
        self.next().ok_or_else(|| self.error_at_end(&format!("the expression ends where {what} was expected")))
    }

    /// Conditions joined left to right, as ss joins them.
    fn list(&mut self) -> Result<Expr, ParseError> {
        let mut acc = self.unary()?;
        loop {
            match self.peek() {
                None => break,
                Some(t) if t.text == ")" => break,
                Some(t) if matches!(t.text, "or" | "||") => {
                    self.next();
                    acc = acc.or(self.unary()?);
                }
                Some(t) if matches!(t.text, "and" | "&&") => {
                    self.next();
                    acc = acc.and(self.unary()?);
                }
                Some(t) => {
                    let next = self.unary()?;
                    // ss adds up consecutive `state` words.
                    acc = match (acc, next, t.text) {
                        (Expr::State(a), Expr::State(b), "state") => Expr::State(a | b),
                        (a, b, _) => a.and(b),
                    };
                }
            }
        }
        Ok(acc)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let t = self.expect("a condition")?;
        match t.text {
            "not" | "!" => Ok(Expr::Not(Box::new(self.unary()?))),
            "(" => {
                let e = self.list()?;
                match self.next() {
                    Some(c) if c.text == ")" => Ok(e),
                    Some(other) => Err(self.error_at(other, "expected `)`")),
                    None => Err(self.error_at(t, "this `(` is never closed")),
                }
            }
            "state" | "exclude" => {
                let name = self.expect("a state name")?;
                let set = fields::states(name.text).ok_or_else(|| {
                    self.error_at(
                        name,
                        "unknown state (established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, \
                         closed, close-wait, last-ack, listening, closing; groups all, connected, synchronized, \
                         bucket, big)",
                    )
                })?;
                let e = Expr::State(set);
                Ok(if t.text == "exclude" { Expr::Not(Box::new(e)) } else { e })
            }
            word => {
                let field = fields::field(word).ok_or_else(|| self.error_at(t, &unknown_word()))?;
                let mut v = self.expect("a value")?;
                let mut op_ = Op::Eq;
                if let Some(o) = op(v.text) {
                    if !allowed(field.kind, o) {
                        return Err(self.error_at(v, &format!("`{}` does not apply to {}", v.text, field.name)));
                    }
                    op_ = o;
                    v = self.expect("a value")?;
                }
                let value =
                    expr::value(field.kind, v.text).map_err(|m| self.error_at(v, &format!("{}: {m}", field.name)))?;
                Ok(Expr::Test(expr::Test { field, op: op_, value }))
            }
        }
    }
}

fn unknown_word() -> String {
    let names: Vec<&str> = fields::FIELDS.iter().map(|f| f.name).collect();
    format!("unknown word: expected state, exclude, not, `(` or a field ({})", names.join(", "))
}
