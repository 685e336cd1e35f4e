//! Deciding whether two parsed answers are the same mathematical object.
//!
//! Order of tests for expressions: exact (rationals and square roots, decisive when neither side
//! is written as a decimal), then floating point with a relative tolerance, then — when variables
//! occur — evaluation of both trees at pseudo-random points, as HF Math-Verify does with sympy.

use std::collections::BTreeSet;

use super::answer::Answer;
use super::expr::Expr;

/// Tolerances and sampling for the comparison.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Relative tolerance when either side contains a written decimal (an approximation).
    pub approximate: f64,
    /// Relative tolerance for exact-looking values that exact arithmetic cannot decide (π, e, logs).
    pub exact: f64,
    /// Random points tried for expressions with variables.
    pub sample_points: usize,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            approximate: 1e-6,
            exact: 1e-9,
            sample_points: 12,
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
        let values: Vec<f64> = vars.iter().map(|_| 0.3 + 2.4 * rng.next_unit()).collect();
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

/// True when the two expressions denote the same value (or the same function of their variables).
pub fn exprs_equal(a: &Expr, b: &Expr, tol: &Tolerance) -> bool {
    let approximate = a.is_approximate() || b.is_approximate();
    let rel = if approximate {
        tol.approximate
    } else {
        tol.exact
    };
    let mut vars = BTreeSet::new();
    a.variables(&mut vars);
    b.variables(&mut vars);
    if vars.is_empty() {
        if !approximate && let (Some(x), Some(y)) = (a.exact(), b.exact()) {
            return x == y;
        }
        return close(a.eval(&|_| f64::NAN), b.eval(&|_| f64::NAN), rel);
    }
    let points = sample(a, b, tol);
    points.len() >= MIN_VALID_POINTS && points.iter().all(|(x, y)| close(*x, *y, rel.max(1e-8)))
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
            .all(|r| close(*r, ratios[0], tol.exact.max(1e-8)))
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
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let hit = (0..b.len()).find(|&j| !used[j] && answers_equal(x, &b[j], tol));
        hit.map(|j| used[j] = true).is_some()
    })
}

fn ordered_equal(a: &[Answer], b: &[Answer], tol: &Tolerance) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| answers_equal(x, y, tol))
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

/// True when two parsed answers are equivalent.
pub fn answers_equal(a: &Answer, b: &Answer, tol: &Tolerance) -> bool {
    use Answer as A;
    match (a, b) {
        (A::Expr(x), A::Expr(y)) => exprs_equal(x, y, tol),
        (A::Tuple(x), A::Tuple(y)) => ordered_equal(x, y, tol),
        (A::Set(x), A::Set(y) | A::Tuple(y))
        | (A::Tuple(x), A::Set(y))
        | (A::Union(x), A::Union(y)) => unordered_equal(x, y, tol),
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
            eq(r"\frac{1}{3}", "0.33333333"),
            "decimals are compared with a relative tolerance"
        );
        assert!(!eq(r"\sqrt{2}", r"\sqrt{3}"));
    }

    #[test]
    fn transcendental_values_numerically() {
        assert!(eq(r"\frac{\pi}{2}", r"\frac12\pi"));
        assert!(eq(r"2\pi", r"\pi+\pi"));
        assert!(!eq(r"\pi", "3.14"));
        assert!(eq(r"e^{2}", r"e\cdot e"));
        assert!(eq(r"\log_2 8", "3"));
    }

    #[test]
    fn symbolic_by_random_points() {
        assert!(eq("x^2-1", "(x-1)(x+1)"));
        assert!(eq(r"\frac{x}{2}", "0.5x"));
        assert!(eq(r"\sin^2 x + \cos^2 x", "1"));
        assert!(!eq("x^2+1", "(x+1)^2"));
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
