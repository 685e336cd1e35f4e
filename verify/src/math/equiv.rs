//! Deciding whether two parsed answers are the same mathematical object. The gold answer comes
//! first: its shape and precision decide how the answer is read.
//!
//! Rules for two expressions, in order:
//! 1. **A gold written as a decimal number** (`3.14`, `-0.25`, `18.9`) is the one case treated as
//!    an approximation. The answer is right when it equals the gold exactly, or when it is written
//!    more precisely — at least [`Tolerance::extra_digits`] more decimals, or a value that no
//!    finite decimal writes (`\frac13`, `\sqrt2`, `\pi`) — and lies within half a unit of the
//!    gold's last digit (`\pi` for `3.14`; not `3.1`, not `0.54` for `0.5`).
//! 2. Otherwise every written decimal is the exact rational it spells (`0.5 = \frac12`), and values
//!    in ℚ(√…) (and ℚ(√…)(i) when `i` occurs) are compared exactly, so `0.333333 ≠ \frac13` and
//!    `1.41421356 ≠ \sqrt2`.
//! 3. Values exact arithmetic cannot decide (π, e, logarithms, trigonometry) are evaluated in
//!    floating point and must agree to [`Tolerance::identity`] (relative). When a decimal is written
//!    on either side, π and e are treated as unknowns first, so `314.159 ≠ 100\pi` while
//!    `0.5\pi = \frac{\pi}{2}`.
//! 4. Expressions with variables are evaluated at deterministic pseudo-random points of both signs
//!    (so `x ≠ |x|`) and must agree at every point where both are defined — the job HF Math-Verify
//!    does with sympy.

use std::borrow::Cow;
use std::collections::BTreeSet;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::Signed;

use super::answer::{Answer, Unit};
use super::complex::{IMAGINARY_UNIT, eval_complex, gaussian};
use super::exact::rational_to_f64;
use super::expr::Expr;
use super::numbers::terminating_decimals;
use super::parse::parse_expr;

/// Tolerances and sampling for the comparison.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Relative tolerance of the floating-point identity test (π, e, logs, trigonometry, and
    /// expressions with variables): exact forms that agree this closely are the same value.
    pub identity: f64,
    /// Extra decimals, beyond a decimal gold's, an answer must show to be judged by rounding.
    pub extra_digits: usize,
    /// Random points tried for expressions with variables.
    pub sample_points: usize,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            identity: 1e-9,
            extra_digits: 2,
            sample_points: 16,
        }
    }
}

/// Fewest agreeing points needed before two expressions with variables are called equal.
const MIN_VALID_POINTS: usize = 4;

fn close(x: f64, y: f64, tol: f64) -> bool {
    if x.is_nan() || y.is_nan() {
        return false;
    }
    if x.is_infinite() || y.is_infinite() {
        return x == y;
    }
    (x - y).abs() <= tol * x.abs().max(y.abs()) + 1e-12
}

/// A small deterministic generator (splitmix64): verdicts must not change between runs.
struct Points(u64);

impl Points {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value in ±(0.3, 2.7): both signs, away from 0 and from ±1.
    fn next_value(&mut self) -> f64 {
        let magnitude = 0.3 + 2.4 * self.next_unit();
        if self.next_unit() < 0.5 {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// Evaluates `a` and `b` at the same random points and returns the pairs where both are finite.
fn sample(a: &Expr, b: &Expr, tol: &Tolerance) -> Vec<(f64, f64)> {
    let mut vars = BTreeSet::new();
    a.variables(&mut vars);
    b.variables(&mut vars);
    let vars: Vec<String> = vars.into_iter().collect();
    let mut rng = Points(0x00C0_FFEE);
    let mut out = Vec::new();
    for _ in 0..tol.sample_points {
        let values: Vec<f64> = vars.iter().map(|_| rng.next_value()).collect();
        let lookup = |name: &str| {
            vars.iter()
                .position(|v| v == name)
                .map_or(f64::NAN, |i| values[i])
        };
        let (x, y) = (a.eval(&lookup), b.eval(&lookup));
        if x.is_finite() && y.is_finite() {
            out.push((x, y));
        }
    }
    out
}

fn sampled_equal(a: &Expr, b: &Expr, tol: &Tolerance) -> bool {
    let points = sample(a, b, tol);
    points.len() >= MIN_VALID_POINTS
        && points
            .iter()
            .all(|(x, y)| close(*x, *y, tol.identity.max(1e-8)))
}

/// Rule 1: `answer` against a gold written as the decimal `gold`.
fn matches_decimal_gold(gold: &BigRational, answer: &Expr, tol: &Tolerance) -> bool {
    let mut vars = BTreeSet::new();
    answer.variables(&mut vars);
    if !vars.is_empty() {
        return false;
    }
    let digits = terminating_decimals(gold).unwrap_or(0);
    let half_unit = BigRational::new(
        BigInt::from(5),
        num_traits::pow(BigInt::from(10), digits + 1),
    );
    match answer.exact().and_then(|s| s.as_rational()) {
        Some(q) => {
            let precise = terminating_decimals(&q).is_none_or(|d| d >= digits + tol.extra_digits);
            q == *gold || (precise && (q - gold).abs() <= half_unit)
        }
        None => {
            let v = answer.eval(&|_| f64::NAN);
            let g = rational_to_f64(gold);
            v.is_finite() && (v - g).abs() <= rational_to_f64(&half_unit) * (1.0 + 1e-9)
        }
    }
}

/// Rules 2–3 for expressions whose only unknown is the imaginary unit.
fn complex_equal(a: &Expr, b: &Expr, tol: &Tolerance) -> bool {
    if let (Some(x), Some(y)) = (gaussian(a), gaussian(b)) {
        return x == y;
    }
    if a.has_decimal() || b.has_decimal() {
        return false;
    }
    let (x, y) = (eval_complex(a), eval_complex(b));
    let scale = x.abs().max(y.abs());
    let diff = (x.re - y.re).hypot(x.im - y.im);
    diff.is_finite() && diff <= tol.identity * scale + 1e-12
}

/// True when the answer expression denotes the gold's value (or the same function of its variables).
pub fn exprs_equal(gold: &Expr, answer: &Expr, tol: &Tolerance) -> bool {
    if let Some(g) = gold.decimal_value() {
        return matches_decimal_gold(&g, answer, tol);
    }
    if let (Some(x), Some(y)) = (gold.exact(), answer.exact()) {
        return x == y;
    }
    let mut vars = BTreeSet::new();
    gold.variables(&mut vars);
    answer.variables(&mut vars);
    if vars.len() == 1 && vars.contains(IMAGINARY_UNIT) {
        return complex_equal(gold, answer, tol);
    }
    let written_decimal = gold.has_decimal() || answer.has_decimal();
    if vars.is_empty() && !written_decimal {
        return close(
            gold.eval(&|_| f64::NAN),
            answer.eval(&|_| f64::NAN),
            tol.identity,
        );
    }
    let (g, a) = if written_decimal {
        (
            Cow::Owned(gold.constants_as_unknowns()),
            Cow::Owned(answer.constants_as_unknowns()),
        )
    } else {
        (Cow::Borrowed(gold), Cow::Borrowed(answer))
    };
    sampled_equal(&g, &a, tol)
}

/// True when two relations `lhs − rhs = 0` are the same up to a non-zero constant factor.
fn equations_equal(a: &Expr, b: &Expr, tol: &Tolerance) -> bool {
    let points = sample(a, b, tol);
    let ratios: Vec<f64> = points
        .iter()
        .filter(|(_, y)| y.abs() > 1e-9)
        .map(|(x, y)| x / y)
        .collect();
    ratios.len() >= MIN_VALID_POINTS
        && ratios[0].abs() > 1e-12
        && ratios
            .iter()
            .all(|r| close(*r, ratios[0], tol.identity.max(1e-8)))
}

/// `label = value` as the relation `label − value` (when both are expressions).
fn as_equation(label: &str, value: &Answer) -> Option<Expr> {
    match value {
        Answer::Expr(v) => Some(Expr::Add(vec![
            parse_expr(label)?,
            Expr::Neg(Box::new(v.clone())),
        ])),
        _ => None,
    }
}

/// Canonical text for answers compared as words: case, spaces and braces do not matter.
pub fn canonical_text(s: &str) -> String {
    s.replace("\\text", "")
        .replace("\\mathrm", "")
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '{' | '}'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Matches every item of `a` with a distinct equal item of `b`.
fn unordered_equal(a: &[Answer], b: &[Answer], tol: &Tolerance) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if let (Some(x), Some(y)) = (by_label(a), by_label(b)) {
        return x.len() == y.len()
            && x.iter()
                .zip(&y)
                .all(|((l, u), (m, v))| l == m && answers_equal(u, v, tol));
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let hit = (0..b.len()).find(|&j| !used[j] && answers_equal(x, &b[j], tol));
        hit.map(|j| used[j] = true).is_some()
    })
}

fn ordered_equal(a: &[Answer], b: &[Answer], tol: &Tolerance) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| answers_equal(x, y, tol))
}

/// The values of a list of `label = value` items with distinct labels, sorted by label (`x = 2,
/// y = 5` is the pair `(2, 5)` whatever order it is written in).
fn by_label(items: &[Answer]) -> Option<Vec<(String, Answer)>> {
    let mut out: Vec<(String, Answer)> = items
        .iter()
        .map(|i| match i {
            Answer::Labelled { label, value } => Some((canonical_text(label), (**value).clone())),
            _ => None,
        })
        .collect::<Option<_>>()?;
    out.sort_by(|x, y| x.0.cmp(&y.0));
    let distinct = out.windows(2).all(|w| w[0].0 != w[1].0);
    (distinct && out.len() > 1).then_some(out)
}

/// A one-row or one-column matrix as a flat list (so a column vector can match a tuple).
fn as_vector(rows: &[Vec<Answer>]) -> Option<Vec<Answer>> {
    if rows.len() == 1 {
        return Some(rows[0].clone());
    }
    rows.iter()
        .map(|r| (r.len() == 1).then(|| r[0].clone()))
        .collect()
}

/// What a number with a unit may stand for: `p%` is `p` or `p/100`, `d°` is `d` or `d·π/180`.
fn readings(value: &Expr, unit: Unit) -> [Answer; 2] {
    let scaled = match unit {
        Unit::Percent => Expr::Div(Box::new(value.clone()), Box::new(Expr::int(100))),
        Unit::Degree => Expr::Div(
            Box::new(Expr::Mul(vec![value.clone(), Expr::Pi])),
            Box::new(Expr::int(180)),
        ),
    };
    [Answer::Expr(value.clone()), Answer::Expr(scaled)]
}

/// The option letter a bare answer names (`C`, `\text{C}`).
fn letter_of(a: &Answer) -> Option<char> {
    let name = match a {
        Answer::Expr(Expr::Var(v)) => v.as_str(),
        Answer::Text(t) => t.trim(),
        _ => return None,
    };
    let mut chars = name.chars();
    let c = chars.next()?;
    (chars.next().is_none() && ('A'..='E').contains(&c)).then_some(c)
}

/// True when the answer `b` is equivalent to the gold `a`.
pub fn answers_equal(a: &Answer, b: &Answer, tol: &Tolerance) -> bool {
    use Answer as A;
    match (a, b) {
        (A::Expr(x), A::Expr(y)) => exprs_equal(x, y, tol),
        (A::Tuple(x), A::Tuple(y)) => ordered_equal(x, y, tol),
        (A::Tuple(x), A::List(y)) => match by_label(y) {
            Some(labelled) => {
                let values: Vec<Answer> = labelled.into_iter().map(|(_, v)| v).collect();
                ordered_equal(x, &values, tol)
            }
            None => ordered_equal(x, y, tol),
        },
        (A::List(x), A::Tuple(y))
        | (A::Set(x), A::Set(y) | A::List(y))
        | (A::List(x), A::Set(y) | A::List(y) | A::Union(y))
        | (A::Union(x), A::Union(y) | A::List(y)) => unordered_equal(x, y, tol),
        (
            A::Interval {
                left_closed: lc1,
                low: l1,
                high: h1,
                right_closed: rc1,
            },
            A::Interval {
                left_closed: lc2,
                low: l2,
                high: h2,
                right_closed: rc2,
            },
        ) => lc1 == lc2 && rc1 == rc2 && answers_equal(l1, l2, tol) && answers_equal(h1, h2, tol),
        (
            A::Interval {
                left_closed: false,
                low,
                high,
                right_closed: false,
            },
            A::Tuple(t),
        )
        | (
            A::Tuple(t),
            A::Interval {
                left_closed: false,
                low,
                high,
                right_closed: false,
            },
        ) => t.len() == 2 && answers_equal(low, &t[0], tol) && answers_equal(high, &t[1], tol),
        (A::Matrix(x), A::Matrix(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(r, s)| ordered_equal(r, s, tol))
        }
        (A::Matrix(m), A::Tuple(t)) | (A::Tuple(t), A::Matrix(m)) => {
            as_vector(m).is_some_and(|v| ordered_equal(&v, t, tol))
        }
        (A::Equation(x), A::Equation(y)) => equations_equal(x, y, tol),
        (A::Labelled { label: l, value: v }, A::Labelled { label: m, value: w }) => {
            answers_equal(v, w, tol)
                || as_equation(l, v)
                    .zip(as_equation(m, w))
                    .is_some_and(|(x, y)| equations_equal(&x, &y, tol))
        }
        (A::Labelled { label, value }, A::Equation(e))
        | (A::Equation(e), A::Labelled { label, value }) => {
            as_equation(label, value).is_some_and(|x| equations_equal(&x, e, tol))
        }
        (A::Labelled { value, .. }, other) => answers_equal(value, other, tol),
        (other, A::Labelled { value, .. }) => answers_equal(other, value, tol),
        (A::Quantity { value: x, unit: u }, A::Quantity { value: y, unit: v }) => {
            u == v && exprs_equal(x, y, tol)
        }
        (A::Quantity { value, unit }, other) => readings(value, *unit)
            .iter()
            .any(|r| answers_equal(r, other, tol)),
        (other, A::Quantity { value, unit }) => readings(value, *unit)
            .iter()
            .any(|r| answers_equal(other, r, tol)),
        (A::Choice { letter: x, .. }, A::Choice { letter: y, .. }) => x == y,
        (A::Choice { letter, content }, other) => {
            letter_of(other) == Some(*letter)
                || content
                    .as_ref()
                    .is_some_and(|c| answers_equal(c, other, tol))
        }
        (other, A::Choice { letter, content }) => {
            letter_of(other) == Some(*letter)
                || content
                    .as_ref()
                    .is_some_and(|c| answers_equal(other, c, tol))
        }
        (A::Set(x), other) if x.len() == 1 => answers_equal(&x[0], other, tol),
        (other, A::Set(y)) if y.len() == 1 => answers_equal(other, &y[0], tol),
        (A::Text(x), A::Text(y)) => canonical_text(x) == canonical_text(y),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::answer::ShapeOptions;
    use crate::math::normalize::normalize;

    fn eq(a: &str, b: &str) -> bool {
        let opts = ShapeOptions {
            ordered_lists: false,
        };
        let pa = Answer::parse(&normalize(a), opts);
        let pb = Answer::parse(&normalize(b), opts);
        answers_equal(&pa, &pb, &Tolerance::default())
    }

    #[test]
    fn exact_rationals_and_radicals() {
        assert!(eq(r"\frac{1}{2}", "0.5"));
        assert!(eq(r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt2}"));
        assert!(eq(r"\sqrt{8}", r"2\sqrt{2}"));
        assert!(eq(r"\frac{1}{\sqrt{3}+\sqrt{2}}", r"\sqrt3-\sqrt2"));
        assert!(eq("025", "25"));
        assert!(!eq("1000000", "1000001"), "integers are decided exactly");
        assert!(!eq(r"\frac{1}{3}", "0.3333"));
        assert!(
            !eq(r"\frac{1}{3}", "0.33333333"),
            "a decimal is exact: it never stands for an exact gold it only approximates"
        );
        assert!(eq(r"\frac{1}{3}", r"0.\overline{3}"));
        assert!(!eq(r"\sqrt{2}", "1.41421356"));
        assert!(!eq(r"100\pi", "314.159"));
        assert!(!eq(r"\sqrt{2}", r"\sqrt{3}"));
    }

    #[test]
    fn transcendental_values_numerically() {
        assert!(eq(r"\frac{\pi}{2}", r"\frac12\pi"));
        assert!(eq(r"2\pi", r"\pi+\pi"));
        assert!(!eq(r"\pi", "3.14"));
        assert!(eq("3.14", r"\pi"), "a decimal gold is an approximation");
        assert!(eq("3.14", "3.1416"));
        assert!(!eq("3.14", "3.1"));
        assert!(!eq("0.5", "0.54"), "one more digit is a different answer");
        assert!(eq("0.33", r"\frac13"));
        assert!(eq(r"\frac{\pi}{2}", r"0.5\pi"));
        assert!(eq(r"e^{2}", r"e\cdot e"));
        assert!(eq(r"\log_2 8", "3"));
    }

    #[test]
    fn symbolic_by_random_points() {
        assert!(eq("x^2-1", "(x-1)(x+1)"));
        assert!(eq(r"\frac{x}{2}", "0.5x"));
        assert!(eq(r"\sin^2 x + \cos^2 x", "1"));
        assert!(!eq("x^2+1", "(x+1)^2"));
        assert!(!eq("|x|", "x"), "points of both signs");
        assert!(eq("|x|", r"\sqrt{x^2}"));
        assert!(!eq("x+1", "y+1"));
        assert!(eq("y = 2x+3", "2x+3"));
        assert!(eq("x + y = 3", "2x + 2y = 6"));
        assert!(!eq("x + y = 3", "x - y = 3"));
    }

    #[test]
    fn structures() {
        assert!(eq(r"\{1,2,3\}", r"\{3,2,1\}"));
        assert!(eq("1, 2, 3", "3, 1, 2"));
        assert!(!eq("(1, 2)", "(2, 1)"));
        assert!(!eq("(2, 5)", r"\{2, 5\}"), "a set is not an ordered pair");
        assert!(eq("(2, 5)", "(a, b) = (2, 5)"));
        assert!(eq("(2, 5)", "y = 5, x = 2"));
        assert!(!eq("(2, 5)", "x = 5, y = 2"));
        assert!(eq(r"\{3\}", "3"));
        assert!(eq(r"(-\infty, 3]", r"x \le 3"));
        assert!(eq(r"(-\infty, 2) \cup (5, \infty)", "x < 2, x > 5"));
        assert!(eq("y = 2x + 3", "2x - y + 3 = 0"));
        assert!(eq(r"\frac{5}{2}", r"2\frac{1}{2}"));
        assert!(eq(r"\frac{\pi}{2}", r"90^\circ"));
        assert!(eq("0.5", r"50\%"));
        assert!(eq("12", r"\textbf{(D) } 12"));
        assert!(eq("5", "five"));
        assert!(eq("2i", "(1+i)^2"));
        assert!(eq(r"\left(3, \frac{\pi}{2}\right)", r"(3, \pi/2)"));
        assert!(eq(r"(-\infty, 3]", r"(-\infty,3]"));
        assert!(!eq(r"(-\infty, 3]", r"(-\infty,3)"));
        assert!(eq(r"(1,2) \cup (3,4)", r"(3,4)\cup(1,2)"));
        assert!(eq(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", "(1, 2)"));
        assert!(eq(
            r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
            r"\begin{bmatrix}1&2\\3&4\end{bmatrix}"
        ));
        assert!(!eq(
            r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
            r"\begin{pmatrix}1&2\\4&3\end{pmatrix}"
        ));
        assert!(eq(r"3 \pm \sqrt{2}", r"3+\sqrt2, 3-\sqrt2"));
        assert!(eq(r"\text{Evelyn}", "evelyn"));
        assert!(!eq(r"\text{Evelyn}", "Devon"));
    }
}
