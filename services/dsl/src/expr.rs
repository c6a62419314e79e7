//! The expression language (`automation-dsl.md` §4.4–4.5): a recursive-descent parser into
//! a serializable tree, parsed once when a document is saved. Evaluation is in [`crate::eval`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SyntaxError;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A literal (string, number, boolean, null, bare word).
    Lit(#[serde(with = "crate::program::json_value")] Value),
    /// The bare word `undefined`.
    Undefined,
    /// `{{path}}` with its segments (names, or expressions inside `[]`).
    Var(Vec<PathSeg>),
    /// `not x` / `!x`.
    Not(Box<Expr>),
    /// A binary operation.
    Bin(Op, Box<Expr>, Box<Expr>),
    /// `x exists` (`false`) / `x not exists` (`true`).
    Exists(Box<Expr>, bool),
    /// `x matches regex(...)` / `x not matches regex(...)`.
    Regex(Box<Expr>, RegexBody, bool),
    /// `name(args)` with an optional `.field`.
    Call(String, Vec<Expr>, Option<String>),
}

/// One segment of a variable inside an expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PathSeg {
    /// `.name` (or the first name).
    Name(String),
    /// `[expr]`.
    Index(Box<Expr>),
}

/// The body of `regex(...)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RegexBody {
    /// Literal pattern text (`/pat/flags` or a bare pattern).
    Text(String),
    /// Exactly one `{{path}}`: its string value is the pattern.
    Var(Vec<PathSeg>),
}

/// A binary operator (`automation-dsl.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `and` / `&&`.
    And,
    /// `or` / `||`.
    Or,
    /// `==` / `=`: JS loose equality.
    LooseEq,
    /// `!=`: JS loose inequality.
    LooseNe,
    /// `===`.
    StrictEq,
    /// `!==`.
    StrictNe,
    /// `matches`.
    Matches,
    /// `not matches`.
    NotMatches,
    /// `in`.
    In,
    /// `not in`.
    NotIn,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Rem,
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "in",
    "not",
    "matches",
    "equals",
    "exists",
    "true",
    "false",
    "null",
    "undefined",
];

/// Parses an expression; the error text says where it fails (`InvalidExpressionSyntax`).
pub fn parse(input: &str) -> Result<Expr, SyntaxError> {
    parse_text(input).map_err(SyntaxError::new)
}

fn parse_text(input: &str) -> Result<Expr, String> {
    let chars: Vec<char> = input.trim().chars().collect();
    if chars.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser {
        c: chars,
        i: 0,
        depth: 0,
    };
    let e = p.boolean()?;
    p.ows();
    if p.i < p.c.len() {
        return Err(p.err("unexpected text"));
    }
    Ok(e)
}

/// Nesting deeper than this is refused, so a hostile expression cannot overflow the stack.
const MAX_DEPTH: usize = 64;

struct Parser {
    c: Vec<char>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn err(&self, what: &str) -> String {
        let rest: String = self.c[self.i.min(self.c.len())..].iter().take(20).collect();
        format!("{what} at character {} ({rest:?})", self.i)
    }

    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn at(&self, s: &str) -> bool {
        s.chars()
            .enumerate()
            .all(|(k, ch)| self.c.get(self.i + k) == Some(&ch))
    }

    /// Skips whitespace; returns whether there was any.
    fn ows(&mut self) -> bool {
        let start = self.i;
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
        self.i > start
    }

    /// A case-insensitive keyword with a word boundary after it.
    fn keyword(&self, kw: &str) -> bool {
        let n = kw.chars().count();
        if self.i + n > self.c.len() {
            return false;
        }
        let word: String = self.c[self.i..self.i + n].iter().collect();
        word.eq_ignore_ascii_case(kw)
            && !self
                .c
                .get(self.i + n)
                .is_some_and(|&c| c.is_alphanumeric() || c == '_')
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.keyword(kw) {
            self.i += kw.chars().count();
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        Ok(())
    }

    /// `WS op WS` at the current position: consumes it and returns what `op` matched, or
    /// restores the position.
    fn binary_op<T: Copy>(&mut self, ops: &[(&str, T)]) -> Option<T> {
        let save = self.i;
        if !self.ows() {
            return None;
        }
        for (text, op) in ops {
            let word = text.chars().next().is_some_and(char::is_alphabetic);
            let matched = if word {
                self.keyword_seq(text)
            } else {
                self.at(text).then(|| text.chars().count())
            };
            if let Some(n) = matched {
                let after = self.i + n;
                if self.c.get(after).is_some_and(|c| c.is_whitespace()) {
                    self.i = after;
                    self.ows();
                    return Some(*op);
                }
            }
        }
        self.i = save;
        None
    }

    /// Words separated by whitespace (`not equals`), case-insensitive; the char count matched.
    fn keyword_seq(&self, text: &str) -> Option<usize> {
        let save = self.i;
        let mut j = self.i;
        for (n, word) in text.split(' ').enumerate() {
            if n > 0 {
                let start = j;
                while self.c.get(j).is_some_and(|c| c.is_whitespace()) {
                    j += 1;
                }
                if j == start {
                    return None;
                }
            }
            let probe = Parser {
                c: self.c.clone(),
                i: j,
                depth: 0,
            };
            if !probe.keyword(word) {
                return None;
            }
            j += word.chars().count();
        }
        Some(j - save)
    }

    fn boolean(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let left = self.equality()?;
        let r = if let Some(op) = self.binary_op(&[
            ("and", Op::And),
            ("&&", Op::And),
            ("or", Op::Or),
            ("||", Op::Or),
        ]) {
            let right = self.boolean()?;
            Expr::Bin(op, Box::new(left), Box::new(right))
        } else {
            left
        };
        self.depth -= 1;
        Ok(r)
    }

    fn equality(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let left = self.relational()?;
        // `matches regex(...)` runs to the end of the input.
        let save = self.i;
        if let Some(neg) = self.binary_op(&[("not matches", true), ("matches", false)]) {
            if self.at("regex(") {
                let body = self.regex_body()?;
                self.depth -= 1;
                return Ok(Expr::Regex(Box::new(left), body, neg));
            }
            self.i = save;
        }
        let save = self.i;
        if self.ows() {
            if self.eat_keyword("exists") {
                self.depth -= 1;
                return Ok(Expr::Exists(Box::new(left), false));
            }
            if let Some(n) = self.keyword_seq("not exists") {
                self.i += n;
                self.depth -= 1;
                return Ok(Expr::Exists(Box::new(left), true));
            }
        }
        self.i = save;
        let ops = [
            ("===", Op::StrictEq),
            ("==", Op::LooseEq),
            ("!==", Op::StrictNe),
            ("!=", Op::StrictNe),
            ("=", Op::LooseEq),
            ("not equals", Op::LooseNe),
            ("equals", Op::LooseEq),
            ("not matches", Op::NotMatches),
            ("matches", Op::Matches),
            ("not in", Op::NotIn),
            ("in", Op::In),
        ];
        let r = if let Some(op) = self.binary_op(&ops) {
            let right = self.equality()?;
            Expr::Bin(op, Box::new(left), Box::new(right))
        } else {
            left
        };
        self.depth -= 1;
        Ok(r)
    }

    fn regex_body(&mut self) -> Result<RegexBody, String> {
        let start = self.i + "regex(".len();
        let end = self
            .c
            .iter()
            .rposition(|&c| c == ')')
            .filter(|&e| e >= start)
            .ok_or_else(|| self.err("regex( without )"))?;
        if self.c[end + 1..].iter().any(|c| !c.is_whitespace()) {
            return Err(self.err("regex(...) must end the expression"));
        }
        let body: String = self.c[start..end].iter().collect();
        self.i = self.c.len();
        let trimmed = body.trim();
        if trimmed.starts_with("{{")
            && trimmed.ends_with("}}")
            && trimmed.matches("{{").count() == 1
        {
            let mut p = Parser {
                c: trimmed.chars().collect(),
                i: 0,
                depth: 0,
            };
            if let Ok(Expr::Var(segs)) = p.variable()
                && p.i == p.c.len()
            {
                return Ok(RegexBody::Var(segs));
            }
        }
        Ok(RegexBody::Text(body))
    }

    fn relational(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let left = self.unary()?;
        let ops = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)];
        let r = if let Some(op) = self.binary_op(&ops) {
            let right = self.relational()?;
            Expr::Bin(op, Box::new(left), Box::new(right))
        } else {
            left
        };
        self.depth -= 1;
        Ok(r)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.enter()?;
        let r = if self.peek() == Some('!') && !self.at("!=") {
            self.i += 1;
            self.ows();
            Expr::Not(Box::new(self.unary()?))
        } else {
            self.arithmetic()?
        };
        self.depth -= 1;
        Ok(r)
    }

    /// An arithmetic operator after optional whitespace, or the position restored.
    fn arith_op(&mut self, ops: &[(char, Op)]) -> Option<Op> {
        let save = self.i;
        self.ows();
        if let Some(c) = self.peek() {
            for (ch, op) in ops {
                // `%}` closes a block; `==`-like operators are not arithmetic.
                if c == *ch && !(c == '%' && self.c.get(self.i + 1) == Some(&'}')) {
                    self.i += 1;
                    self.ows();
                    return Some(*op);
                }
            }
        }
        self.i = save;
        None
    }

    fn arithmetic(&mut self) -> Result<Expr, String> {
        let (mut left, mut arith) = self.term()?;
        while let Some(op) = self.arith_op(&[('+', Op::Add), ('-', Op::Sub)]) {
            let (right, r_arith) = self.term()?;
            if !arith || !r_arith {
                return Err(self.err("strings and literals are not arithmetic operands"));
            }
            left = Expr::Bin(op, Box::new(left), Box::new(right));
            arith = true;
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<(Expr, bool), String> {
        let (mut left, mut arith) = self.factor()?;
        while let Some(op) = self.arith_op(&[('*', Op::Mul), ('/', Op::Div), ('%', Op::Rem)]) {
            let (right, r_arith) = self.factor()?;
            if !arith || !r_arith {
                return Err(self.err("strings and literals are not arithmetic operands"));
            }
            left = Expr::Bin(op, Box::new(left), Box::new(right));
            arith = true;
        }
        Ok((left, arith))
    }

    /// A primary; the flag says whether it may be an arithmetic operand.
    fn factor(&mut self) -> Result<(Expr, bool), String> {
        self.enter()?;
        let r = self.factor_inner();
        self.depth -= 1;
        r
    }

    fn factor_inner(&mut self) -> Result<(Expr, bool), String> {
        let Some(c) = self.peek() else {
            return Err(self.err("expected a value"));
        };
        if self.at("{{") {
            return Ok((self.variable()?, true));
        }
        if self.at("{%") {
            self.i += 2;
            self.ows();
            let e = self.boolean()?;
            self.ows();
            if !self.at("%}") {
                return Err(self.err("expected %}"));
            }
            self.i += 2;
            return Ok((e, true));
        }
        if c == '(' {
            self.i += 1;
            self.ows();
            let e = self.boolean()?;
            self.ows();
            if self.peek() != Some(')') {
                return Err(self.err("expected )"));
            }
            self.i += 1;
            return Ok((e, true));
        }
        if c.is_ascii_digit()
            || (c == '-' && self.c.get(self.i + 1).is_some_and(char::is_ascii_digit))
        {
            return Ok((self.number()?, true));
        }
        if c == '\'' || c == '"' {
            let end = (self.i + 1..self.c.len())
                .find(|&j| self.c[j] == c || self.c[j] == '\n')
                .filter(|&j| self.c[j] == c)
                .ok_or_else(|| self.err("unterminated string"))?;
            let s: String = self.c[self.i + 1..end].iter().collect();
            self.i = end + 1;
            return Ok((Expr::Lit(Value::String(s)), false));
        }
        if c.is_alphabetic() || c == '_' {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                self.i += 1;
            }
            let word: String = self.c[start..self.i].iter().collect();
            if self.peek() == Some('(') {
                return Ok((self.call(word)?, true));
            }
            let lower = word.to_ascii_lowercase();
            return match lower.as_str() {
                "true" => Ok((Expr::Lit(Value::Bool(true)), false)),
                "false" => Ok((Expr::Lit(Value::Bool(false)), false)),
                "null" => Ok((Expr::Lit(Value::Null), false)),
                "undefined" => Ok((Expr::Undefined, false)),
                w if KEYWORDS.contains(&w) => {
                    self.i = start;
                    Err(self.err("expected a value, found a keyword"))
                }
                _ => Ok((Expr::Lit(Value::String(word)), false)),
            };
        }
        Err(self.err("expected a value"))
    }

    fn number(&mut self) -> Result<Expr, String> {
        let start = self.i;
        if self.peek() == Some('-') {
            self.i += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.peek() == Some('.') && self.c.get(self.i + 1).is_some_and(char::is_ascii_digit) {
            self.i += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            return Err(self.err("malformed number"));
        }
        let text: String = self.c[start..self.i].iter().collect();
        let n: f64 = text.parse().map_err(|_| self.err("malformed number"))?;
        Ok(Expr::Lit(crate::value::num(n)))
    }

    fn call(&mut self, name: String) -> Result<Expr, String> {
        self.i += 1; // (
        let mut args = Vec::new();
        self.ows();
        if self.peek() == Some(')') {
            self.i += 1;
        } else {
            loop {
                self.ows();
                args.push(self.boolean()?);
                self.ows();
                match self.peek() {
                    Some(',') => self.i += 1,
                    Some(')') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.err("expected , or ) in a function call")),
                }
            }
        }
        let mut field = None;
        if self.peek() == Some('.')
            && self
                .c
                .get(self.i + 1)
                .is_some_and(|c| c.is_alphabetic() || *c == '_')
        {
            self.i += 1;
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                self.i += 1;
            }
            field = Some(self.c[start..self.i].iter().collect());
        }
        Ok(Expr::Call(name, args, field))
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("expected a variable name"));
        }
        Ok(self.c[start..self.i].iter().collect())
    }

    fn variable(&mut self) -> Result<Expr, String> {
        self.i += 2; // {{
        self.ows();
        let mut segs = vec![PathSeg::Name(self.name()?)];
        loop {
            match self.peek() {
                Some('.') => {
                    self.i += 1;
                    segs.push(PathSeg::Name(self.name()?));
                }
                Some('[') => {
                    self.i += 1;
                    self.ows();
                    let e = self.boolean()?;
                    self.ows();
                    if self.peek() != Some(']') {
                        return Err(self.err("expected ]"));
                    }
                    self.i += 1;
                    segs.push(PathSeg::Index(Box::new(e)));
                }
                _ => break,
            }
        }
        self.ows();
        if !self.at("}}") {
            return Err(self.err("expected }}"));
        }
        self.i += 2;
        Ok(Expr::Var(segs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(name: &str) -> Expr {
        Expr::Var(vec![PathSeg::Name(name.into())])
    }

    #[test]
    fn boolean_operators_group_to_the_right() {
        let e = parse("false and true or true").unwrap();
        assert_eq!(
            e,
            Expr::Bin(
                Op::And,
                Box::new(Expr::Lit(json!(false))),
                Box::new(Expr::Bin(
                    Op::Or,
                    Box::new(Expr::Lit(json!(true))),
                    Box::new(Expr::Lit(json!(true)))
                ))
            )
        );
    }

    #[test]
    fn comparison_operators_need_whitespace() {
        assert!(parse("{{n}}==7").is_err());
        assert!(parse("{{n}} == 7").is_ok());
        assert!(parse("{{n}} ==7").is_err());
    }

    #[test]
    fn arithmetic_has_precedence_and_no_string_operands() {
        let e = parse("1 + 2 * 3").unwrap();
        assert!(matches!(e, Expr::Bin(Op::Add, _, _)));
        assert!(parse("'a' + 'b'").is_err());
        assert!(parse("{{a}}+1").is_ok());
        assert!(parse("2abc").is_err());
    }

    #[test]
    fn keywords_need_a_word_boundary() {
        assert_eq!(parse("orange").unwrap(), Expr::Lit(json!("orange")));
        assert!(parse("and").is_err());
        assert!(matches!(
            parse("{{a}} NOT EQUALS 1").unwrap(),
            Expr::Bin(Op::LooseNe, _, _)
        ));
    }

    #[test]
    fn exists_regex_calls_and_nested_paths() {
        assert_eq!(
            parse("{{a}} not exists").unwrap(),
            Expr::Exists(Box::new(var("a")), true)
        );
        assert!(matches!(parse("{{a}} matches regex(/^a(b)$/i)").unwrap(),
            Expr::Regex(_, RegexBody::Text(t), false) if t == "/^a(b)$/i"));
        assert!(matches!(
            parse("{{a}} matches regex({{p}})").unwrap(),
            Expr::Regex(_, RegexBody::Var(_), false)
        ));
        assert!(
            matches!(parse("date({{w}}).hour").unwrap(), Expr::Call(n, a, Some(f)) if n == "date" && a.len() == 1 && f == "hour")
        );
        assert!(matches!(parse("{{rows[{{i}}].x}}").unwrap(), Expr::Var(s) if s.len() == 3));
        assert!(parse("{{my-var}}").is_err());
        assert!(parse("").is_err());
        assert!(
            parse("(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1")
                .is_err()
        );
    }

    #[test]
    fn newlines_are_whitespace() {
        assert!(parse("{{a}}\n==\n1").is_ok());
    }
}
