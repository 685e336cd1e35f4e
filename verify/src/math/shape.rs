//! The shapes an answer can take, apart from how they are read (`answer.rs`) and compared
//! (`equiv.rs`): the relation reader (`relations.rs`) builds them too.

use super::expr::Expr;

/// A unit that changes what a number means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// `p%`: the number `p` or the fraction `p/100`.
    Percent,
    /// `d°`: the number `d` or the angle `d·π/180` in radians.
    Degree,
}

/// A parsed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Expr(Expr),
    /// Ordered items: `(a, b)`, `[a, b, c]`.
    Tuple(Vec<Answer>),
    /// Unordered items written as a set: `\{a, b\}`.
    Set(Vec<Answer>),
    /// A bare list `a, b` (or `a \text{ or } b`, or the two values of `a \pm b`): unordered
    /// against a set or another list, in order against a tuple.
    List(Vec<Answer>),
    Interval {
        left_closed: bool,
        low: Box<Answer>,
        high: Box<Answer>,
        right_closed: bool,
    },
    /// `I₁ \cup I₂ …` (unordered).
    Union(Vec<Answer>),
    Matrix(Vec<Vec<Answer>>),
    /// A relation that is not `variable = value`, kept as `lhs − rhs`.
    Equation(Expr),
    /// `variable = value` (`x = 3`, `y = 2x + 3`, `(a, b) = (2, 5)`): the value is the answer,
    /// the label says which unknown it is.
    Labelled {
        label: String,
        value: Box<Answer>,
    },
    /// A number with a percent or degree sign.
    Quantity {
        value: Expr,
        unit: Unit,
    },
    /// A lettered option, possibly with its text: `(D)`, `(D) 12`.
    Choice {
        letter: char,
        content: Option<Box<Answer>>,
    },
    /// Anything else, compared as case-insensitive text without spaces.
    Text(String),
}

/// True for a label such as `x`, `x_1`, `\\alpha`, `f(x)` or a tuple of them `(a, b)`.
pub fn is_simple_variable(s: &str) -> bool {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('(').and_then(|x| x.strip_suffix(')'))
        && inner.contains(',')
    {
        return inner.split(',').all(|v| {
            let v = v.trim();
            !v.contains('(') && is_simple_variable(v)
        });
    }
    let mut chars = s.chars();
    let plain = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && (s.len() == 1 || s[1..].starts_with('_') || s[1..].starts_with('('));
    let greek = s.starts_with('\\') && s[1..].chars().all(|c| c.is_ascii_alphabetic());
    let named = ["f(x)", "p(x)", "y", "x", "k", "n"].contains(&s);
    (plain && s.len() <= 8) || greek || named
}
