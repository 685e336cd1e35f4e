//! LaTeX (and plain-text) math → [`Expr`], by recursive descent.
//!
//! Why our own parser: the verifier must run inside the Rust trainer without Python/sympy, in
//! bounded time, and never panic. Inputs are capped in tokens and nesting depth; anything the
//! grammar does not cover is a [`ParseError`] saying where reading stopped, and the caller
//! compares such answers as text (and reports the error when that comparison fails).

use num_rational::BigRational;
use num_traits::Signed;

use super::expr::{Expr, Func};
use super::numbers::{MAX_DIGITS, parse_decimal, repeating_decimal};

/// Most tokens accepted in one expression.
const MAX_TOKENS: usize = 4000;
/// Deepest nesting of groups accepted.
const MAX_DEPTH: usize = 96;

/// Why a string is not an expression this grammar covers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing to read.
    #[error("empty answer")]
    Empty,
    /// More than the token cap.
    #[error("longer than {MAX_TOKENS} tokens")]
    TooLong,
    /// Groups nested deeper than the cap.
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A number literal longer than the digit cap.
    #[error("a number longer than {MAX_DIGITS} digits")]
    LongNumber,
    /// A trailing backslash.
    #[error("a lone backslash")]
    LoneBackslash,
    /// A LaTeX command the grammar does not know.
    #[error("unknown command \\{0}")]
    UnknownCommand(String),
    /// The text ended inside an expression (an unclosed group, a missing argument).
    #[error("ends before the expression is complete (unclosed group or missing argument)")]
    Incomplete,
    /// A token that cannot stand where it is.
    #[error("unexpected `{0}`")]
    Unexpected(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(String),
    Letter(char),
    Cmd(String),
    Sym(char),
}

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Num(s) => s.clone(),
            Tok::Letter(c) | Tok::Sym(c) => c.to_string(),
            Tok::Cmd(c) => format!("\\{c}"),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Tok>, ParseError> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if toks.len() > MAX_TOKENS {
            return Err(ParseError::TooLong);
        }
        if c.is_whitespace() {
            i += 1;
        } else if c == '\\' {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && chars[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j == start {
                let &next = chars.get(start).ok_or(ParseError::LoneBackslash)?;
                if !matches!(next, ',' | '!' | ';' | ':' | ' ') {
                    toks.push(Tok::Cmd(next.to_string()));
                }
                i = start + 1;
            } else {
                toks.push(Tok::Cmd(chars[start..j].iter().collect()));
                i = j;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            let mut seen_dot = false;
            while i < chars.len() && (chars[i].is_ascii_digit() || (chars[i] == '.' && !seen_dot)) {
                seen_dot |= chars[i] == '.';
                i += 1;
            }
            if i - start > MAX_DIGITS {
                return Err(ParseError::LongNumber);
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() {
            toks.push(Tok::Letter(c));
            i += 1;
        } else {
            toks.push(Tok::Sym(c));
            i += 1;
        }
    }
    Ok(toks)
}

/// Parses one expression, or says why the text is not one this grammar covers.
pub fn try_parse_expr(s: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
        furthest: 0,
        too_deep: false,
    };
    match p.expr() {
        Some(e) if p.pos == p.toks.len() => Ok(e),
        Some(_) => Err(p.error_at(p.pos)),
        None => Err(p.error_at(p.furthest)),
    }
}

/// Parses one expression; `None` when the text is not an expression this grammar covers.
pub fn parse_expr(s: &str) -> Option<Expr> {
    try_parse_expr(s).ok()
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    /// The furthest token position looked at: where a failed parse stopped.
    furthest: usize,
    too_deep: bool,
}

impl Parser {
    fn peek(&mut self) -> Option<&Tok> {
        self.furthest = self.furthest.max(self.pos);
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        self.furthest = self.furthest.max(self.pos);
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// The error for a parse that stopped at token `at`.
    fn error_at(&self, at: usize) -> ParseError {
        if self.too_deep {
            return ParseError::TooDeep;
        }
        match self.toks.get(at) {
            None => ParseError::Incomplete,
            Some(Tok::Cmd(c)) if !known_command(c) => ParseError::UnknownCommand(c.clone()),
            Some(t) => ParseError::Unexpected(t.text()),
        }
    }

    fn eat_sym(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, c: char) -> Option<()> {
        self.eat_sym(c).then_some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.too_deep |= self.depth > MAX_DEPTH;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    fn expr(&mut self) -> Option<Expr> {
        self.enter()?;
        let mut terms = vec![self.term()?];
        loop {
            if self.eat_sym('+') {
                terms.push(self.term()?);
            } else if self.eat_sym('-') {
                terms.push(Expr::Neg(Box::new(self.term()?)));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Some(if terms.len() == 1 {
            terms.pop()?
        } else {
            Expr::Add(terms)
        })
    }

    fn term(&mut self) -> Option<Expr> {
        let mut acc = self.unary()?;
        loop {
            match self.peek() {
                Some(Tok::Sym('*')) => {
                    self.pos += 1;
                    acc = mul(acc, self.unary()?);
                }
                Some(Tok::Cmd(c)) if c == "cdot" || c == "times" => {
                    self.pos += 1;
                    acc = mul(acc, self.unary()?);
                }
                Some(Tok::Sym('/')) => {
                    self.pos += 1;
                    acc = Expr::Div(Box::new(acc), Box::new(self.unary()?));
                }
                Some(Tok::Cmd(c)) if c == "div" => {
                    self.pos += 1;
                    acc = Expr::Div(Box::new(acc), Box::new(self.unary()?));
                }
                Some(Tok::Cmd(c)) if c == "frac" && whole_number(&acc).is_some() => {
                    let frac = self.power()?;
                    acc = mixed_number(acc, frac);
                }
                Some(t) if starts_atom(t) => acc = mul(acc, self.power()?),
                _ => return Some(acc),
            }
        }
    }

    fn unary(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = if self.eat_sym('-') {
            Expr::Neg(Box::new(self.unary()?))
        } else if self.eat_sym('+') {
            self.unary()?
        } else {
            self.power()?
        };
        self.depth -= 1;
        Some(e)
    }

    fn power(&mut self) -> Option<Expr> {
        let base = self.postfix()?;
        if self.eat_sym('^') {
            if self.degree_mark() {
                return Some(degrees_to_radians(base));
            }
            // Plain-text habit wins over LaTeX here: `2^10` is read as 2^{10}.
            let exp = match self.peek()? {
                Tok::Num(_) => self.atom()?,
                _ => self.script()?,
            };
            let mut e = Expr::Pow(Box::new(base), Box::new(exp));
            while self.eat_sym('!') {
                e = Expr::Factorial(Box::new(e));
            }
            return Some(e);
        }
        Some(base)
    }

    /// Consumes `\circ` or `{\circ}` after a `^`: a degree sign.
    fn degree_mark(&mut self) -> bool {
        let circ = Tok::Cmd("circ".into());
        if self.peek() == Some(&circ) {
            self.pos += 1;
            return true;
        }
        let braced = [Tok::Sym('{'), circ, Tok::Sym('}')];
        if self.toks.get(self.pos..self.pos + 3) == Some(&braced[..]) {
            self.pos += 3;
            return true;
        }
        false
    }

    /// A number literal, with a repeating block when `\overline{…}` or `\dot{…}` follows.
    fn number_literal(&mut self, s: &str) -> Option<Expr> {
        let mark = matches!(self.peek(), Some(Tok::Cmd(c)) if c == "overline" || c == "dot");
        if mark && s.contains('.') {
            self.pos += 1;
            let period = self.braced_text()?;
            let value = repeating_decimal(s, &period)?;
            return Some(Expr::Num {
                value,
                decimal: false,
            });
        }
        number(s)
    }

    fn postfix(&mut self) -> Option<Expr> {
        let mut e = self.atom()?;
        while self.eat_sym('!') {
            e = Expr::Factorial(Box::new(e));
        }
        Some(e)
    }

    /// A superscript or a command argument: a braced group, a parenthesised group, or one token
    /// (`\frac12` is `\frac{1}{2}`, `\sqrt23` is `\sqrt{2}·3`).
    fn script(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = match self.peek()? {
            Tok::Sym('{') => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect_sym('}')?;
                e
            }
            Tok::Sym('(') => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect_sym(')')?;
                e
            }
            Tok::Sym('-') => {
                self.pos += 1;
                Expr::Neg(Box::new(self.script()?))
            }
            Tok::Num(s) if s.len() > 1 => {
                let s = s.clone();
                let mut chars = s.chars();
                let first = chars.next()?;
                self.toks[self.pos] = Tok::Num(chars.as_str().to_string());
                number(&first.to_string())?
            }
            _ => self.atom()?,
        };
        self.depth -= 1;
        Some(e)
    }

    fn braced_text(&mut self) -> Option<String> {
        self.expect_sym('{')?;
        let mut out = String::new();
        loop {
            match self.next()? {
                Tok::Sym('}') => return Some(out),
                Tok::Num(s) => out.push_str(&s),
                Tok::Letter(c) | Tok::Sym(c) => out.push(c),
                Tok::Cmd(c) => out.push_str(&c),
            }
        }
    }

    fn subscript_name(&mut self, base: String) -> Option<String> {
        if !self.eat_sym('_') {
            return Some(base);
        }
        let sub = match self.peek()? {
            Tok::Sym('{') => self.braced_text()?,
            Tok::Num(s) => {
                let s = s.clone();
                self.pos += 1;
                s
            }
            Tok::Letter(c) => {
                let c = *c;
                self.pos += 1;
                c.to_string()
            }
            _ => return None,
        };
        Some(format!("{base}_{sub}"))
    }

    fn atom(&mut self) -> Option<Expr> {
        self.enter()?;
        let e = match self.next()? {
            Tok::Num(s) => self.number_literal(&s)?,
            Tok::Letter(c) => {
                let name = self.subscript_name(c.to_string())?;
                match name.as_str() {
                    "e" => Expr::E,
                    _ => Expr::Var(name),
                }
            }
            Tok::Sym('(') => {
                let e = self.expr()?;
                self.expect_sym(')')?;
                e
            }
            Tok::Sym('{') => {
                let e = self.expr()?;
                self.expect_sym('}')?;
                e
            }
            Tok::Sym('[') => {
                let e = self.expr()?;
                self.expect_sym(']')?;
                e
            }
            Tok::Sym('|') => {
                let e = self.expr()?;
                self.expect_sym('|')?;
                Expr::Call(Func::Abs, Box::new(e))
            }
            Tok::Cmd(c) => self.command(&c)?,
            Tok::Sym(_) => return None,
        };
        self.depth -= 1;
        Some(e)
    }

    fn command(&mut self, c: &str) -> Option<Expr> {
        Some(match c {
            "frac" | "cfrac" => {
                let num = self.script()?;
                let den = self.script()?;
                Expr::Div(Box::new(num), Box::new(den))
            }
            "binom" => {
                let n = self.script()?;
                let k = self.script()?;
                Expr::Binom(Box::new(n), Box::new(k))
            }
            "sqrt" => {
                let index = if self.eat_sym('[') {
                    let i = self.expr()?;
                    self.expect_sym(']')?;
                    i
                } else {
                    Expr::int(2)
                };
                Expr::Root(Box::new(index), Box::new(self.script()?))
            }
            "pi" => Expr::Pi,
            "infty" => Expr::Infinity,
            "lfloor" | "lceil" => {
                let e = self.expr()?;
                let close = if c == "lfloor" { "rfloor" } else { "rceil" };
                (self.next()? == Tok::Cmd(close.into())).then_some(())?;
                let f = if c == "lfloor" {
                    Func::Floor
                } else {
                    Func::Ceil
                };
                Expr::Call(f, Box::new(e))
            }
            "log" | "lg" => {
                let base = if self.eat_sym('_') {
                    self.script()?
                } else {
                    Expr::int(10)
                };
                let arg = self.func_arg()?;
                Expr::Log(Box::new(base), Box::new(arg))
            }
            "operatorname" => {
                let name = self.braced_text()?;
                self.function(&name)?
            }
            g if GREEK.contains(&g) => Expr::Var(self.subscript_name(g.to_string())?),
            f => self.function(f)?,
        })
    }

    fn function(&mut self, name: &str) -> Option<Expr> {
        let mut func = Func::from_name(name)?;
        let mut power = None;
        if self.eat_sym('^') {
            let p = self.script()?;
            if p == Expr::Neg(Box::new(Expr::int(1))) {
                func = match func {
                    Func::Sin => Func::Asin,
                    Func::Cos => Func::Acos,
                    Func::Tan => Func::Atan,
                    _ => return None,
                };
            } else {
                power = Some(p);
            }
        }
        let call = Expr::Call(func, Box::new(self.func_arg()?));
        Some(match power {
            Some(p) => Expr::Pow(Box::new(call), Box::new(p)),
            None => call,
        })
    }

    /// A function argument: a group, or a factor with the letters written against it
    /// (`\sin x`, `\ln 2`, `\sin 2x` = sin(2x), but `\sin x \cos x` is a product of two calls).
    fn func_arg(&mut self) -> Option<Expr> {
        if matches!(self.peek()?, Tok::Sym('(') | Tok::Sym('{')) {
            return self.atom();
        }
        let mut arg = self.power()?;
        while matches!(self.peek(), Some(Tok::Letter(_)))
            || matches!(self.peek(), Some(Tok::Cmd(c)) if GREEK.contains(&c.as_str()))
        {
            arg = mul(arg, self.power()?);
        }
        Some(arg)
    }
}

/// The value of a whole-number literal, possibly negated (`2`, `-3`), that could start a mixed number.
fn whole_number(e: &Expr) -> Option<&BigRational> {
    match e {
        Expr::Num {
            value,
            decimal: false,
        } if value.is_integer() => Some(value),
        Expr::Neg(inner) => whole_number(inner),
        _ => None,
    }
}

/// `2\frac{1}{2}` is the mixed number 2½ (a proper fraction of literals after a whole number);
/// anything else after a whole number is a product (`2\frac{\pi}{3}`, `2\frac{3}{2}`).
fn mixed_number(whole: Expr, frac: Expr) -> Expr {
    let proper = match &frac {
        Expr::Div(n, d) => match (whole_number(n), whole_number(d), &**n) {
            (Some(n), Some(d), Expr::Num { .. }) => n.is_positive() && n < d,
            _ => false,
        },
        _ => false,
    };
    if !proper {
        return mul(whole, frac);
    }
    match whole {
        Expr::Neg(w) => Expr::Neg(Box::new(Expr::Add(vec![*w, frac]))),
        w => Expr::Add(vec![w, frac]),
    }
}

/// `x°` as radians, `x·π/180`, so that `\sin 30^\circ = \frac12`.
fn degrees_to_radians(x: Expr) -> Expr {
    Expr::Div(
        Box::new(Expr::Mul(vec![x, Expr::Pi])),
        Box::new(Expr::int(180)),
    )
}

/// True for commands the grammar reads (for error messages).
fn known_command(c: &str) -> bool {
    starts_atom(&Tok::Cmd(c.to_string()))
        || matches!(
            c,
            "cdot" | "times" | "div" | "infty" | "rfloor" | "rceil" | "circ" | "overline" | "dot"
        )
}

fn mul(a: Expr, b: Expr) -> Expr {
    match a {
        Expr::Mul(mut xs) => {
            xs.push(b);
            Expr::Mul(xs)
        }
        a => Expr::Mul(vec![a, b]),
    }
}

fn number(s: &str) -> Option<Expr> {
    let (value, decimal) = parse_decimal(s)?;
    Some(Expr::Num { value, decimal })
}

fn starts_atom(t: &Tok) -> bool {
    match t {
        Tok::Num(_) | Tok::Letter(_) => true,
        Tok::Sym(c) => matches!(c, '(' | '{'),
        Tok::Cmd(c) => {
            matches!(
                c.as_str(),
                "frac"
                    | "cfrac"
                    | "sqrt"
                    | "pi"
                    | "binom"
                    | "log"
                    | "lg"
                    | "lfloor"
                    | "lceil"
                    | "operatorname"
            ) || GREEK.contains(&c.as_str())
                || Func::from_name(c).is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> f64 {
        parse_expr(s)
            .unwrap_or_else(|| panic!("parse {s}"))
            .eval(&|_| f64::NAN)
    }

    #[test]
    fn parses_latex_fractions_roots_and_powers() {
        assert_eq!(val(r"\frac{1}{2}"), 0.5);
        assert_eq!(val(r"\frac12"), 0.5);
        assert_eq!(val(r"\frac1{4}"), 0.25);
        assert!((val(r"\sqrt2") - 2f64.sqrt()).abs() < 1e-12);
        assert!((val(r"3\sqrt{3}") - 3.0 * 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(val(r"\sqrt[3]{27}"), 3.0);
        assert_eq!(val("2^{10}"), 1024.0);
        assert_eq!(val("2^10"), 1024.0, "a bare number exponent is read whole");
        assert_eq!(val("-3^2"), -9.0);
        assert_eq!(val(r"5!"), 120.0);
        assert_eq!(val(r"\binom{5}{2}"), 10.0);
        assert_eq!(val(r"2 \cdot 3 + 4 \times 5"), 26.0);
        assert_eq!(val(r"\log_2 8"), 3.0);
    }

    #[test]
    fn function_arguments_take_the_letters_written_against_them() {
        let at = |s: &str, x: f64| parse_expr(s).unwrap().eval(&|_| x);
        assert!((at(r"\sin 2x", 0.3) - 0.6f64.sin()).abs() < 1e-12);
        assert!((at(r"\cos 2\theta", 0.3) - 0.6f64.cos()).abs() < 1e-12);
        assert!((at(r"\sin x \cos x", 0.3) - 0.3f64.sin() * 0.3f64.cos()).abs() < 1e-12);
    }

    #[test]
    fn mixed_numbers_repeating_decimals_and_degrees() {
        assert_eq!(val(r"2\frac{1}{2}"), 2.5);
        assert_eq!(val(r"-3\frac{1}{2}"), -3.5);
        assert_eq!(
            val(r"2\frac{3}{2}"),
            3.0,
            "an improper fraction after a number is a product"
        );
        assert!((val(r"0.1\overline{6}") - 1.0 / 6.0).abs() < 1e-15);
        assert!((val(r"\sin 30^\circ") - 0.5).abs() < 1e-12);
    }

    #[test]
    fn errors_say_where_reading_stopped() {
        assert_eq!(
            try_parse_expr(r"\frac{1}{2} \foo"),
            Err(ParseError::UnknownCommand("foo".into()))
        );
        assert_eq!(try_parse_expr("5 +"), Err(ParseError::Incomplete));
        assert_eq!(
            try_parse_expr("2 ) 3"),
            Err(ParseError::Unexpected(")".into()))
        );
        assert_eq!(try_parse_expr(""), Err(ParseError::Empty));
    }

    #[test]
    fn parses_variables_and_functions() {
        let e = parse_expr(r"2x^2 + \sin^2 \theta + y_{1}").unwrap();
        let mut vars = std::collections::BTreeSet::new();
        e.variables(&mut vars);
        assert_eq!(vars.into_iter().collect::<Vec<_>>(), ["theta", "x", "y_1"]);
    }

    #[test]
    fn rejects_what_it_does_not_cover() {
        for s in [
            "",
            "(",
            r"\frac{1}",
            "1 +",
            r"\unknowncmd{2}",
            "a ++ ",
            "{{{{",
        ] {
            assert!(parse_expr(s).is_none(), "{s}");
        }
        let deep = "(".repeat(500) + "1" + &")".repeat(500);
        assert!(parse_expr(&deep).is_none(), "depth cap");
    }
}
