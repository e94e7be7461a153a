//! Expressions from text, for the CLI's `--filter` and [`Frame::query`](crate::Frame::query):
//!
//! ```text
//! v1 > 2 and (id1 == 'id001' or v3 <= 10.5)
//! not is_null(v2) and contains(id3, '77') and v1 * 2 + v2 >= 10
//! ```
//!
//! Precedence, loosest first: `or`, `and`, `not`, comparisons (`== != < <= > >=`,
//! also `=` and `<>`), `+ -`, `* /`, unary minus. Operands: column names (or
//! `` `any name` `` in backquotes), numbers, strings in single or double quotes,
//! `true`, `false`, `null`, and the functions `is_null(x)`, `is_not_null(x)`,
//! `fill_null(x, v)`, `contains(x, 'text')`, `starts_with(x, 'text')`, and
//! membership `x in ('a', 'b', ...)` / `x not in (1, 2)` (a hash lookup per row,
//! however long the list). Chains of thousands of `or` terms are fine.
//! A mistake is an error that shows the text with a caret under the position.

use arrow::datatypes::{DataType, Schema};

use super::{BinOp, Expr, Func, Lit, col};
use crate::{Error, Result};

/// Parses an expression; an error points at the offending position.
///
/// ```
/// use brisk_frame::parse_expr;
/// let e = parse_expr("v1 > 2 and not is_null(v2)")?;
/// assert_eq!(e.to_string(), parse_expr("(v1 > 2) and (not is_null(v2))")?.to_string());
/// assert!(parse_expr("v1 > ").unwrap_err().to_string().contains("^"));
/// # Ok::<(), brisk_frame::Error>(())
/// ```
pub fn parse_expr(text: &str) -> Result<Expr> {
    parse(text, None)
}

/// Parses an expression and type-checks it against `schema` as it goes: an unknown
/// column, or an operation on types it does not take, is an error with a caret
/// under that column or operation (not just the whole expression's name).
///
/// ```
/// use brisk_frame::parse_expr_for;
/// use brisk_frame::arrow::datatypes::{DataType, Field, Schema};
/// let schema = Schema::new(vec![Field::new("d", DataType::Date32, true)]);
/// let e = parse_expr_for("d <= date '1998-12-01' - interval 90 day", &schema)?;
/// assert_eq!(e.data_type(&schema)?, DataType::Boolean);
/// let err = parse_expr_for("d > 1 + 'x'", &schema).unwrap_err().to_string();
/// assert!(err.contains("position 7"), "{err}");
/// # Ok::<(), brisk_frame::Error>(())
/// ```
pub fn parse_expr_for(text: &str, schema: &Schema) -> Result<Expr> {
    parse(text, Some(schema))
}

fn parse(text: &str, schema: Option<&Schema>) -> Result<Expr> {
    parse_range(text, 0, text.len(), schema)
}

/// Parses `inner`, which is `text` from byte `at` on, type-checked against
/// `schema`: errors point into the whole `text` (an aggregation's expression
/// inside a list of them).
pub(crate) fn parse_at(text: &str, at: usize, inner: &str, schema: &Schema) -> Result<Expr> {
    debug_assert_eq!(&text[at..at + inner.len()], inner);
    parse_range(text, at, at + inner.len(), Some(schema))
}

fn parse_range(text: &str, from: usize, to: usize, schema: Option<&Schema>) -> Result<Expr> {
    let tokens = tokenize(text, from, to)?;
    let mut p = Parser { text, tokens, at: 0, depth: 0, schema };
    let e = p.or()?;
    match p.peek() {
        Tok::End => {}
        t => return Err(p.error_here(&format!("unexpected {}", t.describe()))),
    }
    checked(e).map_err(|e| match e {
        // The text's position of a tree too deep is its start.
        Error::Invalid(message) => located(text, 0, &message),
        other => other,
    })
}

/// An expression made safe to type and evaluate (both walk the tree
/// recursively): chains of `and` / `or` rebuilt as balanced trees, so thousands
/// of terms are only a few levels deep, and anything still deeper than
/// `MAX_DEPTH` (thousands of nested `not`s, a chain of thousands of `+`) an
/// error rather than a stack overflow. Every expression a frame takes goes
/// through here, parsed or built in Rust.
pub(crate) fn checked(e: Expr) -> Result<Expr> {
    if tree_depth(&e) <= MAX_DEPTH {
        return Ok(e);
    }
    let e = rebalance(e, 0)?;
    let depth = tree_depth(&e);
    if depth > MAX_DEPTH {
        return Err(Error::Invalid(format!(
            "the expression is {depth} operations deep, more than {MAX_DEPTH}; split a long chain of '+' or '-' into several columns"
        )));
    }
    Ok(e)
}

/// `e` with every chain of `and` / `or` balanced. Recursion goes one level per
/// chain or other operation, never per term of a chain, and stops past
/// `MAX_DEPTH`.
fn rebalance(e: Expr, depth: usize) -> Result<Expr> {
    if depth > MAX_DEPTH {
        return Err(Error::Invalid(format!(
            "the expression nests more than {MAX_DEPTH} levels deep"
        )));
    }
    let deeper = |x: Box<Expr>| rebalance(*x, depth + 1).map(Box::new);
    Ok(match e {
        Expr::Binary { op: op @ (BinOp::And | BinOp::Or), left, right } => {
            let mut terms = Vec::new();
            let mut stack = vec![*right, *left];
            while let Some(x) = stack.pop() {
                match x {
                    Expr::Binary { op: o, left, right } if o == op => {
                        stack.push(*right);
                        stack.push(*left);
                    }
                    term => terms.push(rebalance(term, depth + 1)?),
                }
            }
            balanced(terms, |a, b| Expr::Binary { op, left: Box::new(a), right: Box::new(b) })
        }
        Expr::Binary { op, left, right } => {
            Expr::Binary { op, left: deeper(left)?, right: deeper(right)? }
        }
        Expr::Not(x) => Expr::Not(deeper(x)?),
        Expr::IsNull(x) => Expr::IsNull(deeper(x)?),
        Expr::FillNull(x, v) => Expr::FillNull(deeper(x)?, deeper(v)?),
        Expr::Cast(x, t) => Expr::Cast(deeper(x)?, t),
        Expr::Str(op, x, p) => Expr::Str(op, deeper(x)?, p),
        Expr::In(x, values) => Expr::In(deeper(x)?, values),
        Expr::Case { when, otherwise } => Expr::Case {
            when: when
                .into_iter()
                .map(|(c, v)| Ok((rebalance(c, depth + 1)?, rebalance(v, depth + 1)?)))
                .collect::<Result<_>>()?,
            otherwise: otherwise.map(deeper).transpose()?,
        },
        Expr::Call(f, args) => {
            Expr::Call(f, args.into_iter().map(|a| rebalance(a, depth + 1)).collect::<Result<_>>()?)
        }
        leaf @ (Expr::Col(_) | Expr::Lit(_)) => leaf,
    })
}

/// `terms` joined by `join` as a balanced tree: a chain of thousands of `or`s
/// (and-ed and or-ed values are associative) is only log2 of its length deep, so
/// typing and evaluating it recurse that deep, not once per term.
fn balanced(mut terms: Vec<Expr>, join: impl Fn(Expr, Expr) -> Expr) -> Expr {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => join(a, b),
                None => a,
            });
        }
        terms = next;
    }
    terms.pop().expect("at least one term")
}

/// An interval from text: `90 day`, `'1 year 2 months 3 days'`, units year,
/// month, week, day, hour, minute, second, millisecond, microsecond (singular
/// or plural), counts may be negative.
fn interval(text: &str) -> std::result::Result<Lit, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return Err(format!(
            "'{text}' is not an interval (write a count and a unit: 90 day, 1 year 2 months)"
        ));
    }
    let (mut months, mut days, mut nanos) = (0i64, 0i64, 0i64);
    for pair in words.chunks(2) {
        let n: i64 = pair[0]
            .parse()
            .map_err(|_| format!("'{}' in interval '{text}' is not a whole number", pair[0]))?;
        let unit = pair[1].to_ascii_lowercase();
        let unit = unit.strip_suffix('s').unwrap_or(&unit);
        const NS: i64 = 1_000_000_000;
        let (m, d, ns) = match unit {
            "year" => (12, 0, 0),
            "month" => (1, 0, 0),
            "week" => (0, 7, 0),
            "day" => (0, 1, 0),
            "hour" => (0, 0, 3600 * NS),
            "minute" => (0, 0, 60 * NS),
            "second" => (0, 0, NS),
            "millisecond" => (0, 0, 1_000_000),
            "microsecond" => (0, 0, 1000),
            "nanosecond" => (0, 0, 1),
            _ => {
                return Err(format!(
                    "unknown interval unit '{}' (year, month, week, day, hour, minute, second, millisecond, microsecond)",
                    pair[1]
                ));
            }
        };
        let too_big = || format!("interval '{text}' is too large");
        months = n.checked_mul(m).and_then(|v| v.checked_add(months)).ok_or_else(too_big)?;
        days = n.checked_mul(d).and_then(|v| v.checked_add(days)).ok_or_else(too_big)?;
        nanos = n.checked_mul(ns).and_then(|v| v.checked_add(nanos)).ok_or_else(too_big)?;
    }
    let too_big = || format!("interval '{text}' is too large");
    Ok(Lit::Interval {
        months: i32::try_from(months).map_err(|_| too_big())?,
        days: i32::try_from(days).map_err(|_| too_big())?,
        nanos,
    })
}

/// How deeply an expression may nest (parentheses, `not`, calls) or chain.
const MAX_DEPTH: usize = 256;

/// The depth of an expression tree, found without recursion.
fn tree_depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        match e {
            Expr::Col(_) | Expr::Lit(_) => {}
            Expr::Binary { left, right, .. } | Expr::FillNull(left, right) => {
                stack.push((left, d + 1));
                stack.push((right, d + 1));
            }
            Expr::Not(x)
            | Expr::IsNull(x)
            | Expr::Cast(x, _)
            | Expr::Str(_, x, _)
            | Expr::In(x, _) => {
                stack.push((x, d + 1));
            }
            Expr::Case { when, otherwise } => {
                for (c, v) in when {
                    stack.push((c, d + 1));
                    stack.push((v, d + 1));
                }
                if let Some(x) = otherwise {
                    stack.push((x, d + 1));
                }
            }
            Expr::Call(_, args) => stack.extend(args.iter().map(|a| (a, d + 1))),
        }
    }
    deepest
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(v) => format!("number {v}"),
            Tok::Float(v) => format!("number {v}"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Op(o) => format!("'{o}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
            Tok::End => "end of expression".into(),
        }
    }
}

/// The error for `text` at byte `pos`: the message, the text, a caret under it.
pub(crate) fn located(text: &str, pos: usize, message: &str) -> Error {
    let column = text[..pos.min(text.len())].chars().count();
    // A long text is shown as a window of 60 characters around the position.
    const SHOWN: usize = 60;
    let chars: Vec<char> = text.chars().collect();
    let from = column.saturating_sub(SHOWN / 2).min(chars.len().saturating_sub(SHOWN));
    let to = (from + SHOWN).min(chars.len());
    let before = if from > 0 { "..." } else { "" };
    let after = if to < chars.len() { "..." } else { "" };
    let shown: String = chars[from..to].iter().collect();
    Error::Invalid(format!(
        "invalid expression: {message} at position {}\n  {before}{shown}{after}\n  {}^",
        column + 1,
        " ".repeat(before.len() + column - from)
    ))
}

/// The tokens of `text[from..to]`, with their byte positions in `text`.
fn tokenize(text: &str, from: usize, to: usize) -> Result<Vec<(Tok, usize)>> {
    let bytes = &text.as_bytes()[..to];
    let mut out = Vec::new();
    let mut i = from;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'\'' | b'"' | b'`' => {
                let close = text[i + 1..to]
                    .find(c as char)
                    .ok_or_else(|| located(text, start, "unclosed quote"))?;
                let inner = text[i + 1..i + 1 + close].to_string();
                i += close + 2;
                if c == b'`' { Tok::Ident(inner) } else { Tok::Str(inner) }
            }
            b'0'..=b'9' | b'.' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'.'
                        || ((bytes[i] == b'-' || bytes[i] == b'+')
                            && matches!(bytes[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                let s = &text[start..i];
                if let Ok(v) = s.parse::<i64>() {
                    Tok::Int(v)
                } else if let Ok(v) = s.parse::<f64>() {
                    Tok::Float(v)
                } else {
                    return Err(located(text, start, &format!("'{s}' is not a number")));
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(text[start..i].to_string())
            }
            _ => {
                let ops: [&'static str; 13] =
                    ["==", "!=", "<=", ">=", "<>", "<", ">", "=", "+", "-", "*", "/", "!"];
                match ops.iter().find(|o| text[i..to].starts_with(**o)) {
                    Some(o) => {
                        i += o.len();
                        Tok::Op(o)
                    }
                    None => {
                        let ch = text[i..].chars().next().unwrap_or('?');
                        return Err(located(text, start, &format!("unexpected character '{ch}'")));
                    }
                }
            }
        };
        out.push((tok, start));
    }
    out.push((Tok::End, to));
    Ok(out)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(Tok, usize)>,
    at: usize,
    /// How many nested parses are open (parentheses, `not`, minus signs, calls).
    depth: usize,
    /// The schema each part is type-checked against as it is parsed, if any.
    schema: Option<&'a Schema>,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.at].0
    }

    fn next(&mut self) -> Tok {
        let t = self.tokens[self.at].0.clone();
        if self.at + 1 < self.tokens.len() {
            self.at += 1;
        }
        t
    }

    fn error_here(&self, message: &str) -> Error {
        located(self.text, self.tokens[self.at].1, message)
    }

    /// Whether the next token is the keyword `word` (any case); takes it if so.
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Tok::Ident(s) if s.eq_ignore_ascii_case(word)) {
            self.next();
            true
        } else {
            false
        }
    }

    /// Runs `parse` one level deeper; past [`MAX_DEPTH`] an error, before the
    /// parser's own recursion could overflow the stack.
    fn nested(&mut self, parse: impl FnOnce(&mut Self) -> Result<Expr>) -> Result<Expr> {
        if self.depth >= MAX_DEPTH {
            return Err(
                self.error_here(&format!("the expression nests more than {MAX_DEPTH} levels deep"))
            );
        }
        self.depth += 1;
        let e = parse(self);
        self.depth -= 1;
        e
    }

    /// The byte position of token `at` in the text.
    fn pos(&self, at: usize) -> usize {
        self.tokens[at].1
    }

    /// `e`, type-checked when there is a schema; an error points at byte `pos`
    /// (where `e`, or its operator, is written). Its parts were checked as they
    /// were parsed, so an error here is this node's own.
    fn typed(&self, e: Expr, pos: usize) -> Result<Expr> {
        let Some(schema) = self.schema else { return Ok(e) };
        match e.data_type(schema) {
            Ok(_) => Ok(e),
            Err(Error::Type { reason, .. }) => Err(located(self.text, pos, &reason)),
            Err(other) => Err(located(self.text, pos, &other.to_string())),
        }
    }

    /// A term of `and` / `or` (or `not`'s operand), begun at token `at`: checked
    /// to be a boolean when there is a schema.
    fn check_bool(&self, e: &Expr, at: usize, word: &str) -> Result<()> {
        let Some(schema) = self.schema else { return Ok(()) };
        let pos = self.pos(at);
        let t = e.data_type(schema).map_err(|err| located(self.text, pos, &err.to_string()))?;
        if !matches!(t, DataType::Boolean | DataType::Null) {
            return Err(located(self.text, pos, &format!("'{word}' needs a boolean, got {t}")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr> {
        let mut at = self.at;
        let mut terms = vec![self.and()?];
        while self.keyword("or") {
            self.check_bool(terms.last().expect("a term"), at, "or")?;
            at = self.at;
            terms.push(self.and()?);
        }
        if terms.len() > 1 {
            self.check_bool(terms.last().expect("a term"), at, "or")?;
        }
        Ok(balanced(terms, |a, b| a.or(b)))
    }

    fn and(&mut self) -> Result<Expr> {
        let mut at = self.at;
        let mut terms = vec![self.not()?];
        while self.keyword("and") {
            self.check_bool(terms.last().expect("a term"), at, "and")?;
            at = self.at;
            terms.push(self.not()?);
        }
        if terms.len() > 1 {
            self.check_bool(terms.last().expect("a term"), at, "and")?;
        }
        Ok(balanced(terms, |a, b| a.and(b)))
    }

    fn not(&mut self) -> Result<Expr> {
        let bang = self.peek() == &Tok::Op("!");
        if bang {
            self.next();
        }
        if bang || self.keyword("not") {
            let at = self.at;
            let e = self.nested(Self::not)?;
            self.check_bool(&e, at, "not")?;
            return Ok(!e);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let left = self.sum()?;
        // `x is [not] null`.
        let at = self.at;
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("null") {
                return Err(self.error_here("expected 'null' after 'is' here"));
            }
            let e = left.is_null();
            return self.typed(if negated { !e } else { e }, self.pos(at));
        }
        // `x [not] in (v, ...)`, `x [not] between a and b`, `x [not] like 'p'`.
        let negated = self.keyword("not");
        let word_at = self.at;
        let e = if self.keyword("in") {
            let values = self.in_list()?;
            Some(left.clone().is_in(values))
        } else if self.keyword("between") {
            let low = self.sum()?;
            if !self.keyword("and") {
                return Err(self.error_here("expected 'and' in 'between ... and ...' here"));
            }
            let high = self.sum()?;
            // Each bound checked against the value where it is written.
            let low = self.typed(left.clone().ge(low), self.pos(word_at))?;
            let high = self.typed(left.clone().le(high), self.pos(word_at))?;
            Some(low.and(high))
        } else if self.keyword("like") || self.keyword("ilike") {
            let insensitive = matches!(&self.tokens[self.at - 1].0, Tok::Ident(w) if w.eq_ignore_ascii_case("ilike"));
            let pattern_at = self.at;
            let pattern = match self.next() {
                Tok::Str(p) => p,
                t => {
                    self.at = pattern_at;
                    return Err(self.error_here(&format!(
                        "expected a quoted pattern after 'like', found {}",
                        t.describe()
                    )));
                }
            };
            Some(if insensitive { left.clone().ilike(pattern) } else { left.clone().like(pattern) })
        } else {
            None
        };
        if let Some(e) = e {
            let e = self.typed(e, self.pos(word_at))?;
            return Ok(if negated { !e } else { e });
        }
        if negated {
            self.at = at + 1;
            return Err(self.error_here("expected 'in', 'between' or 'like' after 'not' here"));
        }
        let op = match self.peek() {
            Tok::Op(o @ ("==" | "=" | "!=" | "<>" | "<" | "<=" | ">" | ">=")) => *o,
            _ => return Ok(left),
        };
        let op_at = self.pos(self.at);
        self.next();
        let right = self.sum()?;
        let e = match op {
            "==" | "=" => left.eq(right),
            "!=" | "<>" => left.ne(right),
            "<" => left.lt(right),
            "<=" => left.le(right),
            ">" => left.gt(right),
            _ => left.ge(right),
        };
        self.typed(e, op_at)
    }

    /// A chain of `+ -` (or `* /`) is as deep as it is long: past
    /// [`MAX_DEPTH`] terms it is refused here, before typing it would recurse
    /// that deep.
    fn chain_step(&self, terms: &mut usize) -> Result<()> {
        *terms += 1;
        if self.depth + *terms > MAX_DEPTH {
            return Err(
                self.error_here(&format!("the expression nests more than {MAX_DEPTH} levels deep"))
            );
        }
        Ok(())
    }

    fn sum(&mut self) -> Result<Expr> {
        let mut e = self.product()?;
        let mut terms = 0;
        loop {
            let op_at = self.pos(self.at);
            if matches!(self.peek(), Tok::Op("+" | "-")) {
                self.chain_step(&mut terms)?;
            }
            match self.peek() {
                Tok::Op("+") => {
                    self.next();
                    let r = self.product()?;
                    e = self.typed(e + r, op_at)?;
                }
                Tok::Op("-") => {
                    self.next();
                    let r = self.product()?;
                    e = self.typed(e - r, op_at)?;
                }
                _ => return Ok(e),
            }
        }
    }

    fn product(&mut self) -> Result<Expr> {
        let mut e = self.unary()?;
        let mut terms = 0;
        loop {
            let op_at = self.pos(self.at);
            if matches!(self.peek(), Tok::Op("*" | "/")) {
                self.chain_step(&mut terms)?;
            }
            match self.peek() {
                Tok::Op("*") => {
                    self.next();
                    let r = self.unary()?;
                    e = self.typed(e * r, op_at)?;
                }
                Tok::Op("/") => {
                    self.next();
                    let r = self.unary()?;
                    e = self.typed(e / r, op_at)?;
                }
                _ => return Ok(e),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.peek() == &Tok::Op("-") {
            self.next();
            return Ok(match self.peek().clone() {
                Tok::Int(v) => {
                    self.next();
                    Expr::Lit(Lit::Int(v.wrapping_neg()))
                }
                Tok::Float(v) => {
                    self.next();
                    Expr::Lit(Lit::Float(-v))
                }
                _ => {
                    let at = self.pos(self.at - 1);
                    let e = Expr::Lit(Lit::Int(0)) - self.nested(Self::unary)?;
                    self.typed(e, at)?
                }
            });
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr> {
        let at = self.at;
        match self.next() {
            Tok::Int(v) => Ok(Expr::Lit(Lit::Int(v))),
            Tok::Float(v) => Ok(Expr::Lit(Lit::Float(v))),
            Tok::Str(s) => Ok(Expr::Lit(Lit::Str(s))),
            Tok::LParen => {
                let e = self.nested(Self::or)?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::Ident(name) if self.peek() == &Tok::LParen => {
                self.next();
                let e = self.call(&name, at)?;
                self.typed(e, self.pos(at))
            }
            Tok::Ident(name) if matches!(self.peek(), Tok::Str(_)) => {
                let Tok::Str(text) = self.next() else { unreachable!("peeked") };
                let lit = match name.to_ascii_lowercase().as_str() {
                    "date" => Lit::date(&text),
                    "timestamp" => Lit::timestamp(&text),
                    // SQL's `interval '90' day` as well as `interval '90 days'`.
                    "interval" => match self.peek().clone() {
                        Tok::Ident(unit)
                            if text.split_whitespace().count() == 1
                                && interval(&format!("1 {unit}")).is_ok() =>
                        {
                            self.next();
                            interval(&format!("{} {unit}", text.trim())).map_err(Error::Invalid)
                        }
                        _ => interval(&text).map_err(Error::Invalid),
                    },
                    _ => {
                        self.at = at + 1;
                        return Err(self.error_here(&format!(
                            "unexpected string after '{name}' (a typed literal is date '...', timestamp '...' or interval '...')"
                        )));
                    }
                };
                lit.map(Expr::Lit).map_err(|e| {
                    let message = match e {
                        Error::Invalid(m) => m,
                        other => other.to_string(),
                    };
                    located(self.text, self.pos(at + 1), &message)
                })
            }
            Tok::Ident(name)
                if name.eq_ignore_ascii_case("interval") && matches!(self.peek(), Tok::Int(_)) =>
            {
                let Tok::Int(n) = self.next() else { unreachable!("peeked") };
                let unit_at = self.at;
                let unit = match self.next() {
                    Tok::Ident(u) => u,
                    t => {
                        self.at = unit_at;
                        return Err(self.error_here(&format!(
                            "expected a unit (day, month, year, ...) after 'interval {n}', found {}",
                            t.describe()
                        )));
                    }
                };
                interval(&format!("{n} {unit}"))
                    .map(Expr::Lit)
                    .map_err(|m| located(self.text, self.pos(self.at - 1), &m))
            }
            Tok::Ident(name) if name.eq_ignore_ascii_case("case") => {
                let e = self.nested(Self::case)?;
                self.typed(e, self.pos(at))
            }
            Tok::Ident(name) => Ok(match name.to_ascii_lowercase().as_str() {
                "and" | "or" | "not" => {
                    self.at = at;
                    return Err(self.error_here(&format!("expected a value, found '{name}'")));
                }
                "true" => Expr::Lit(Lit::Bool(true)),
                "false" => Expr::Lit(Lit::Bool(false)),
                "null" => Expr::Lit(Lit::Null),
                _ => self.typed(col(name), self.pos(at))?,
            }),
            t => {
                self.at = at;
                Err(self.error_here(&format!("expected a value, found {}", t.describe())))
            }
        }
    }

    /// `case [x] when .. then .. [when .. then ..] [else ..] end`, `case` taken.
    /// With `x`, each `when v` compares `x = v`.
    fn case(&mut self) -> Result<Expr> {
        let subject = if matches!(self.peek(), Tok::Ident(w) if w.eq_ignore_ascii_case("when")) {
            None
        } else {
            Some(self.or()?)
        };
        let mut when = Vec::new();
        while self.keyword("when") {
            let at = self.at;
            let c = self.or()?;
            let c = match &subject {
                Some(x) => self.typed(x.clone().eq(c), self.pos(at))?,
                None => {
                    self.check_bool(&c, at, "when")?;
                    c
                }
            };
            if !self.keyword("then") {
                return Err(self.error_here("expected 'then' here"));
            }
            when.push((c, self.or()?));
        }
        if when.is_empty() {
            return Err(self.error_here("expected 'when' here"));
        }
        let otherwise = if self.keyword("else") { Some(Box::new(self.or()?)) } else { None };
        if !self.keyword("end") {
            return Err(self.error_here("expected 'end' (or 'when', 'else') here"));
        }
        Ok(Expr::Case { when, otherwise })
    }

    /// The literals of `in (...)`: strings, numbers (with a sign), true, false,
    /// null.
    fn in_list(&mut self) -> Result<Vec<Lit>> {
        self.expect(Tok::LParen)?;
        let mut values = Vec::new();
        loop {
            let negative = self.peek() == &Tok::Op("-");
            if negative {
                self.next();
            }
            let value = match (self.peek().clone(), negative) {
                (Tok::Int(v), _) => Lit::Int(if negative { v.wrapping_neg() } else { v }),
                (Tok::Float(v), _) => Lit::Float(if negative { -v } else { v }),
                (Tok::Str(s), false) => Lit::Str(s),
                (Tok::Ident(w), false) if w.eq_ignore_ascii_case("true") => Lit::Bool(true),
                (Tok::Ident(w), false) if w.eq_ignore_ascii_case("false") => Lit::Bool(false),
                (Tok::Ident(w), false) if w.eq_ignore_ascii_case("null") => Lit::Null,
                (t, _) => {
                    return Err(self.error_here(&format!(
                        "expected a literal value in the 'in' list, found {}",
                        t.describe()
                    )));
                }
            };
            self.next();
            values.push(value);
            if self.peek() == &Tok::Comma {
                self.next();
            } else {
                self.expect(Tok::RParen)?;
                return Ok(values);
            }
        }
    }

    fn expect(&mut self, want: Tok) -> Result<()> {
        if self.peek() == &want {
            self.next();
            Ok(())
        } else {
            let found = self.peek().describe();
            Err(self.error_here(&format!("expected {}, found {found}", want.describe())))
        }
    }

    /// A function call, its name taken and the `(` too.
    fn call(&mut self, name: &str, at: usize) -> Result<Expr> {
        let mut args = Vec::new();
        if self.peek() != &Tok::RParen {
            args.push(self.nested(Self::or)?);
            while self.peek() == &Tok::Comma {
                self.next();
                args.push(self.nested(Self::or)?);
            }
        }
        self.expect(Tok::RParen)?;
        let lower = name.to_ascii_lowercase();
        let arity = |n: usize| -> Result<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(located(
                    self.text,
                    self.tokens[at].1,
                    &format!("{lower}() takes {n} argument(s), got {}", args.len()),
                ))
            }
        };
        let pattern = |e: &Expr| match e {
            Expr::Lit(Lit::Str(s)) => Ok(s.clone()),
            _ => Err(located(
                self.text,
                self.tokens[at].1,
                &format!("{lower}()'s second argument must be a quoted string"),
            )),
        };
        match lower.as_str() {
            "is_null" | "isnull" => {
                arity(1)?;
                Ok(args.remove(0).is_null())
            }
            "is_not_null" | "notnull" => {
                arity(1)?;
                Ok(!args.remove(0).is_null())
            }
            "fill_null" | "fillna" => {
                arity(2)?;
                let value = args.pop().expect("two");
                Ok(args.remove(0).fill_null(value))
            }
            "contains" | "starts_with" => {
                arity(2)?;
                let p = pattern(&args[1])?;
                let x = args.remove(0);
                Ok(if lower == "contains" { x.contains(p) } else { x.starts_with(p) })
            }
            _ => match Func::parse(&lower) {
                Some(f) => {
                    let (min, max) = f.arity();
                    if args.len() < min || args.len() > max {
                        arity(if args.len() < min { min } else { max })?;
                    }
                    if f == Func::Round && args.len() == 2 {
                        let negative = |e: &Expr| match e {
                            // `-2` as written: 0 - 2.
                            Expr::Binary { op: BinOp::Sub, left, right } => {
                                match (&**left, &**right) {
                                    (Expr::Lit(Lit::Int(0)), Expr::Lit(Lit::Int(v))) => Some(-*v),
                                    _ => None,
                                }
                            }
                            _ => None,
                        };
                        if let Some(v) = negative(&args[1]) {
                            args[1] = Expr::Lit(Lit::Int(v));
                        }
                        if !matches!(args[1], Expr::Lit(Lit::Int(_))) {
                            return Err(located(
                                self.text,
                                self.tokens[at].1,
                                "round()'s second argument (decimals) must be a whole number",
                            ));
                        }
                    }
                    Ok(Expr::Call(f, args))
                }
                None => Err(located(
                    self.text,
                    self.tokens[at].1,
                    &format!(
                        "unknown function '{name}' (is_null, is_not_null, fill_null, contains, starts_with, coalesce, abs, round, lower, upper, length, year, month, day)"
                    ),
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::lit;
    use crate::parse_expr_for;
    use proptest::prelude::*;

    /// Text made of the filter language's pieces and some that are not in it.
    fn filter_text() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "v",
            "s",
            "b",
            "`s`",
            "1",
            "-2",
            "2.5e3",
            "'x'",
            "\"y\"",
            "'",
            "(",
            ")",
            ",",
            "==",
            "=",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "+",
            "-",
            "*",
            "/",
            "!",
            "and",
            "or",
            "not",
            "in",
            "true",
            "null",
            "is_null(",
            "fill_null(",
            "contains(",
            "starts_with(",
            "nope(",
            "\u{e9}",
            "9999999999999999999",
            ".",
            "#",
            " ",
        ]);
        prop::collection::vec(piece, 0..24).prop_map(|p| p.join(" "))
    }

    proptest! {
        /// Any text: an expression or an error with a caret, never a panic; an
        /// expression prints as text that parses back to itself, and evaluates
        /// on a batch with nulls (or is refused by the type check) without a
        /// panic.
        #[test]
        fn the_filter_parser_never_panics_and_round_trips(text in filter_text()) {
            let batch = arrow::array::RecordBatch::try_from_iter([
                ("v", std::sync::Arc::new(arrow::array::Int64Array::from(vec![Some(1), None, Some(-2)])) as arrow::array::ArrayRef),
                ("s", std::sync::Arc::new(arrow::array::StringArray::from(vec![Some("x"), Some("y"), None])) as _),
                ("b", std::sync::Arc::new(arrow::array::BooleanArray::from(vec![Some(true), None, Some(false)])) as _),
            ]).expect("batch");
            match parse_expr(&text) {
                Err(e) => prop_assert!(e.to_string().contains('^'), "{}", e),
                Ok(e) => {
                    let printed = e.to_string();
                    let again = parse_expr(&printed).expect("printed form parses");
                    prop_assert_eq!(again.to_string(), printed);
                    if e.data_type(&batch.schema()).is_ok() {
                        let _ = e.evaluate(&batch);
                    }
                }
            }
        }
    }

    fn same(a: &str, b: Expr) {
        assert_eq!(parse_expr(a).expect(a).to_string(), b.to_string(), "{a}");
    }

    #[test]
    fn precedence_and_forms() {
        same(
            "v1 > 2 and id1 == 'x' or v3 <= 1.5",
            col("v1").gt(2).and(col("id1").eq("x")).or(col("v3").le(1.5)),
        );
        same(
            "v1 > 2 and (id1 == \"x\" or v3 <= 1.5)",
            col("v1").gt(2).and(col("id1").eq("x").or(col("v3").le(1.5))),
        );
        same("not is_null(v2)", !col("v2").is_null());
        same("a + b * 2 - -3 >= 1e3", (col("a") + col("b") * 2 - lit(-3)).ge(1000.0));
        same("`my col` <> 1", col("my col").ne(1));
        same(
            "contains(id3, '77') AND NOT starts_with(id1, 'id0')",
            col("id3").contains("77").and(!col("id1").starts_with("id0")),
        );
        same("fill_null(v1, 0) = 0", col("v1").fill_null(0).eq(0));
    }

    /// Deep nesting is an error with a message, not a stack overflow (4,000
    /// parentheses, 5,000 `not`s, 5,000 chained `+` aborted the process); long
    /// `and` / `or` chains (a 62 KB `id3 == 'x' or ...` list) parse into balanced
    /// trees and evaluate.
    #[test]
    fn deep_expressions_are_refused_and_long_chains_are_balanced() {
        let parens = format!("{}v1 > 2{}", "(".repeat(4000), ")".repeat(4000));
        let nots = format!("{}v1 > 2", "not ".repeat(5000));
        let minus = format!("v1 > {}2", "- (".repeat(3000));
        let sum = format!("v1 + {} > 2", vec!["v2"; 5000].join(" + "));
        for (text, what) in [
            (&parens, "nests more than 256 levels"),
            (&nots, "nests more than 256 levels"),
            (&minus, "nests more than 256 levels"),
            (&sum, "nests more than 256 levels"),
        ] {
            let e = parse_expr(text).expect_err("refused").to_string();
            assert!(e.contains(what) && e.len() < 300, "{e}");
        }
        let or = vec!["id3 == 'x'"; 2500].join(" or ");
        let and = vec!["v1 > 2"; 2500].join(" and ");
        for text in [&or, &and] {
            let e = parse_expr(text).expect("a long chain parses");
            assert!(tree_depth(&e) <= 14, "depth {}", tree_depth(&e));
        }
        assert!(parse_expr(&format!("{}v1 > 2{}", "(".repeat(200), ")".repeat(200))).is_ok());
        // Typed as it is parsed: refused as soon as a chain is too long, before
        // typing it would recurse as deep (5,000 `+` overflowed the stack).
        let schema = typed_schema();
        for text in [
            format!("i + {} > 2", vec!["i"; 5000].join(" + ")),
            format!("f * {} > 2", vec!["f"; 5000].join(" / ")),
            format!("f > 1 and i + {} > 2", vec!["i"; 300].join(" - ")),
        ] {
            let e = parse_expr_for(&text, &schema).expect_err("refused").to_string();
            assert!(e.contains("nests more than 256 levels") && e.len() < 300, "{e}");
        }
        let fine = format!("i + {} > 2", vec!["i"; 200].join(" + "));
        assert!(parse_expr_for(&fine, &schema).is_ok());
        // Built in Rust, one `or` at a time: balanced the same way.
        let built = (0..20_000).fold(col("v").eq(-1), |e, i| e.or(col("v").eq(i)));
        let e = checked(built).expect("balanced");
        assert!(tree_depth(&e) <= 17, "depth {}", tree_depth(&e));
    }

    #[test]
    fn membership_lists() {
        same("id3 in ('a', 'b')", col("id3").is_in(["a", "b"]));
        same(
            "v not in (1, -2, 2.5)",
            !col("v").is_in([Lit::Int(1), Lit::Int(-2), Lit::Float(2.5)]),
        );
        same("b in (true, null)", col("b").is_in([Lit::Bool(true), Lit::Null]));
        for (text, what) in [
            ("v in (w)", "expected a literal value in the 'in' list, found 'w'"),
            ("v in (1, )", "expected a literal value"),
            ("v in 1", "expected '('"),
            ("v not 1", "expected 'in', 'between' or 'like' after 'not'"),
        ] {
            let e = parse_expr(text).expect_err(text).to_string();
            assert!(e.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn mistakes_point_at_their_position() {
        for (text, at, what) in [
            ("v1 > ", 6, "expected a value"),
            ("v1 > and v2", 6, "expected a value, found 'and'"),
            ("v1 > 2 and (v2 < 3", 19, "expected ')'"),
            ("v1 >> 2", 5, "expected a value"),
            ("v1 > 'abc", 6, "unclosed quote"),
            ("frob(v1)", 1, "unknown function"),
            ("v1 > 2 v2", 8, "unexpected 'v2'"),
            ("v1 # 2", 4, "unexpected character '#'"),
            ("contains(v1, 3)", 1, "quoted string"),
        ] {
            let e = parse_expr(text).expect_err(text).to_string();
            assert!(e.contains(what), "{text}: {e}");
            assert!(e.contains(&format!("position {at}")), "{text}: {e}");
            let caret = e.lines().last().expect("caret line");
            assert_eq!(caret.find('^'), Some(2 + at - 1), "{text}: {e}");
        }
    }

    fn typed_schema() -> Schema {
        use arrow::datatypes::Field;
        Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("d", DataType::Date32, true),
            Field::new("t", DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None), true),
        ])
    }

    #[test]
    fn report_forms_parse_print_and_type() {
        let schema = typed_schema();
        for (text, printed, t) in [
            (
                "d <= date '1998-12-01' - interval 90 day",
                "(d <= (date '1998-12-01' - interval '90 day'))",
                DataType::Boolean,
            ),
            ("d < '1995-01-01'", "(d < '1995-01-01')", DataType::Boolean),
            ("f between 0.05 and 0.07", "((f >= 0.05) and (f <= 0.07))", DataType::Boolean),
            ("s not like 'a%'", "not (s like 'a%')", DataType::Boolean),
            ("s ilike '_B'", "(s ilike '_B')", DataType::Boolean),
            ("s is not null", "not is_null(s)", DataType::Boolean),
            (
                "case when i > 0 then f else 0 end",
                "case when (i > 0) then f else 0 end",
                DataType::Float64,
            ),
            ("case i when 1 then 'one' end", "case when (i == 1) then 'one' end", DataType::Utf8),
            ("coalesce(i, 0)", "coalesce(i, 0)", DataType::Int64),
            ("round(f, -2) + abs(i)", "(round(f, -2) + abs(i))", DataType::Float64),
            ("length(lower(upper(s)))", "length(lower(upper(s)))", DataType::Int64),
            ("year(d) * 100 + month(d)", "((year(d) * 100) + month(d))", DataType::Int64),
            ("d + interval '1 year 2 months'", "(d + interval '14 month')", DataType::Date32),
            ("d - date '1970-01-01'", "(d - date '1970-01-01')", DataType::Int64),
            (
                "timestamp '2020-01-02 03:04:05' > d",
                "(timestamp '2020-01-02 03:04:05' > d)",
                DataType::Boolean,
            ),
        ] {
            let e = parse_expr_for(text, &schema).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(e.to_string(), printed, "{text}");
            assert_eq!(e.data_type(&schema).expect(text), t, "{text}");
            // The printed form reads back as the same expression.
            let again = parse_expr_for(&e.to_string(), &schema).expect(printed);
            assert_eq!(again.to_string(), printed);
        }
    }

    /// Type errors found while parsing point at the part that is wrong: the
    /// operator, the column, the literal, the function.
    #[test]
    fn type_errors_point_at_the_offending_part() {
        let schema = typed_schema();
        for (text, at, what) in [
            ("i + s > 1", 3, "'+' needs numbers"),
            ("f > 1 and i * 2 > s", 17, "cannot compare Int64 with Utf8"),
            ("d <= date '1998-13-01'", 11, "not a date"),
            ("d <= '1998-13-01'", 3, "is not a value of Date32"),
            ("s like 5", 8, "expected a quoted pattern"),
            ("i between 1 and 's'", 3, "cannot compare"),
            ("f > 0 and year(i) > 2", 11, "year() needs a date or timestamp"),
            ("case when i then 1 end", 11, "'when' needs a boolean"),
            ("d > d - interval 3 fortnight", 20, "unknown interval unit 'fortnight'"),
            ("nope > 1", 1, "unknown column 'nope'"),
            ("d > interval 1 day", 3, "cannot compare Date32"),
            ("round(f, 1.5)", 1, "whole number"),
            ("i > 1 and s", 11, "'and' needs a boolean, got Utf8"),
            ("coalesce(i, s) = 1", 1, "coalesce() cannot mix Int64 and Utf8"),
            ("lower(f)", 1, "lower() needs a string"),
            ("case when i > 1 then 's' else 2 end", 1, "do not mix"),
            ("d + 1", 3, "or a date and an interval"),
            ("not f", 5, "'not' needs a boolean"),
            ("d + interval 36 hour", 3, "whole days"),
            ("s like", 7, "expected a quoted pattern"),
            ("d > d - interval 5", 19, "expected a unit"),
            ("t > 'soon'", 3, "is not a value of Timestamp"),
        ] {
            let e = parse_expr_for(text, &schema).expect_err(text).to_string();
            assert!(e.contains(what), "{text}: {e}");
            assert!(e.contains(&format!("position {at}\n")), "{text}: {e}");
            let caret = e.lines().last().expect("caret line");
            assert_eq!(caret.find('^'), Some(2 + at - 1), "{text}: {e}");
        }
    }

    #[test]
    fn aggregations_parse_with_names_and_positions() {
        let schema = typed_schema();
        let aggs = crate::parse_aggs(
            "r = sum(f * (1 - f)), n=count(*), avg(i), i:max, `my n`=count(s)",
            &schema,
        )
        .expect("parses");
        let names: Vec<&str> = aggs.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["r", "n", "avg(i)", "i_max", "my n"]);
        assert_eq!(
            aggs[0].expr.as_ref().map(ToString::to_string).as_deref(),
            Some("(f * (1 - f))")
        );
        assert!(aggs[1].expr.is_none());
        for (text, at, what) in [
            ("x=sum(i + s)", 9, "'+' needs numbers"),
            ("n=cnt(i)", 3, "unknown aggregation 'cnt'"),
            ("a=sum(i), b=mean(nope)", 18, "unknown column 'nope'"),
            ("a=sum(i), sum(*)", 15, "count(*)"),
            ("i:avgg", 3, "unknown aggregation 'avgg'"),
            ("=sum(i)", 1, "name is empty"),
            ("a=sum(i),", 10, "expected an aggregation"),
        ] {
            let e = crate::parse_aggs(text, &schema).expect_err(text).to_string();
            assert!(e.contains(what), "{text}: {e}");
            assert!(e.contains(&format!("position {at}\n")), "{text}: {e}");
        }
    }
}
