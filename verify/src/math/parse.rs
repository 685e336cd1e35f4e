//! LaTeX (and plain-text) math → [`Expr`], by recursive descent.
//!
//! Why our own parser: the verifier must run inside the Rust trainer without Python/sympy, in
//! bounded time, and never panic. Inputs are capped in tokens and nesting depth; anything the
//! grammar does not cover returns `None`, and the caller compares such answers as text.

use num_bigint::BigInt;
use num_rational::BigRational;

use super::expr::{Expr, Func};

/// Most tokens accepted in one expression.
const MAX_TOKENS: usize = 4000;
/// Deepest nesting of groups accepted.
const MAX_DEPTH: usize = 96;
/// Longest digit string accepted in one number literal.
const MAX_DIGITS: usize = 400;

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

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if toks.len() > MAX_TOKENS {
            return None;
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
                let &next = chars.get(start)?;
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
                return None;
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
    Some(toks)
}

/// Parses a decimal literal such as `12`, `0.50` or `.5` into an exact rational.
pub fn parse_decimal(s: &str) -> Option<(BigRational, bool)> {
    let (int_part, frac_part) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let digits = format!("{int_part}{}", frac_part.unwrap_or(""));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let numer: BigInt = digits.parse().ok()?;
    let scale = frac_part.map_or(0, str::len);
    let denom = num_traits::pow(BigInt::from(10), scale);
    Some((BigRational::new(numer, denom), frac_part.is_some()))
}

/// Parses one expression; `None` when the text is not an expression this grammar covers.
pub fn parse_expr(s: &str) -> Option<Expr> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        return None;
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    (p.pos == p.toks.len()).then_some(e)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
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
            Tok::Num(s) => number(&s)?,
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

    /// A function argument: a group, or one factor (`\sin x`, `\ln 2`).
    fn func_arg(&mut self) -> Option<Expr> {
        match self.peek()? {
            Tok::Sym('(') | Tok::Sym('{') => self.atom(),
            _ => self.power(),
        }
    }
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
