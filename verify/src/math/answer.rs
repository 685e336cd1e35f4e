//! The shape of a normalised answer: a single expression, a tuple, a set, a bare list, an
//! interval, a union of intervals, a matrix, an equation, a labelled value, a quantity in percent
//! or degrees, a lettered choice, or plain text.
//!
//! Why: `(1, 2)` and `(2, 1)` differ while `\{1, 2\}` and `\{2, 1\}` do not; `x = 3` means `3`;
//! `3 \pm \sqrt2` means two values; `x \le 3` is the interval `(-\infty, 3]`; `50\%` may stand
//! for `0.5`. Shape decides which comparison applies.

use std::sync::LazyLock;

use regex::Regex;

use super::expr::Expr;
use super::numbers::number_words;
use super::parse::parse_expr;
use super::relations::{membership, relation_chain};
pub use super::shape::{Answer, Unit, is_simple_variable};

/// Most items kept in one tuple/set/matrix (bounds the pairwise matching cost).
const MAX_ITEMS: usize = 64;
/// Deepest nesting of structures (`((1,2),(3,4))`).
const MAX_NESTING: usize = 8;

/// Options for reading answer structure.
#[derive(Clone, Copy, Debug)]
pub struct ShapeOptions {
    /// Treat a bare comma list `a, b` as ordered (a tuple) rather than as a list.
    pub ordered_lists: bool,
}

static CHOICE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\(([A-E])\)\s*(.*)$").unwrap_or_else(|e| panic!("static regex: {e}"))
});

/// Splits at top-level occurrences of `sep` (outside (), [], {}).
fn split_top(s: &str, sep: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth: i32 = 0;
    let mut start = 0;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && s.is_char_boundary(i) && s[i..].starts_with(sep) {
            parts.push(s[start..i].to_string());
            i += sep.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(s[start..].to_string());
    parts
}

/// True when the bracket opened at byte 0 closes at the last byte.
fn outer_group_spans_all(s: &str) -> bool {
    let mut depth = 0;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 && i + 1 != s.len() {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// True when `s` holds a run of three or more letters that is not a LaTeX command: a word such
/// as a name or `odd`, which must not be read as a product of variables.
fn has_word(s: &str) -> bool {
    let mut run = 0;
    let mut in_command = false;
    for c in s.chars() {
        if c == '\\' {
            in_command = true;
            run = 0;
        } else if c.is_ascii_alphabetic() {
            if !in_command {
                run += 1;
                if run >= 3 {
                    return true;
                }
            }
        } else {
            in_command = false;
            run = 0;
        }
    }
    false
}

/// True when `s` is an expression without unknowns.
fn is_constant(s: &str) -> bool {
    parse_expr(s).is_some_and(|e| {
        let mut vars = std::collections::BTreeSet::new();
        e.variables(&mut vars);
        vars.is_empty()
    })
}

impl Answer {
    /// Reads the shape of a normalised answer string.
    pub fn parse(s: &str, opts: ShapeOptions) -> Answer {
        Self::parse_at(s.trim(), opts, 0)
    }

    fn items(parts: Vec<String>, opts: ShapeOptions, depth: usize) -> Option<Vec<Answer>> {
        if parts.len() > MAX_ITEMS {
            return None;
        }
        let mut out = Vec::with_capacity(parts.len());
        for p in &parts {
            // The two values of an item `a \pm b` are two items of the enclosing list or set.
            match Self::parse_at(p.trim(), opts, depth + 1) {
                Answer::List(values) => out.extend(values),
                item => out.push(item),
            }
        }
        (out.len() <= MAX_ITEMS).then_some(out)
    }

    fn parse_at(s: &str, opts: ShapeOptions, depth: usize) -> Answer {
        let text = || Answer::Text(s.to_string());
        if depth > MAX_NESTING || s.is_empty() {
            return text();
        }
        let unions = split_top(s, "\\cup");
        if unions.len() > 1 {
            return Self::items(unions, opts, depth).map_or_else(text, Answer::Union);
        }
        if let Some(m) = Self::matrix(s, opts, depth) {
            return m;
        }
        if let Some(inner) = s.strip_prefix("\\{").and_then(|x| x.strip_suffix("\\}")) {
            let parts = split_top(inner, ",");
            return Self::items(parts, opts, depth).map_or_else(text, Answer::Set);
        }
        if let Some(c) = CHOICE.captures(s) {
            let letter = c[1].chars().next().unwrap_or('A');
            let rest = c[2].trim();
            let content =
                (!rest.is_empty()).then(|| Box::new(Self::parse_at(rest, opts, depth + 1)));
            return Answer::Choice { letter, content };
        }
        let first = s.as_bytes()[0];
        let last = s.as_bytes()[s.len() - 1];
        if matches!(first, b'(' | b'[') && matches!(last, b')' | b']') && outer_group_spans_all(s) {
            let parts = split_top(&s[1..s.len() - 1], ",");
            if parts.len() >= 2 {
                let is_interval = parts.len() == 2
                    && (first != b'('
                        || last != b')'
                        || parts.iter().any(|p| p.contains("\\infty")));
                let Some(mut items) = Self::items(parts, opts, depth) else {
                    return text();
                };
                if is_interval {
                    let high = items.pop().map(Box::new);
                    let low = items.pop().map(Box::new);
                    if let (Some(low), Some(high)) = (low, high) {
                        return Answer::Interval {
                            left_closed: first == b'[',
                            low,
                            high,
                            right_closed: last == b']',
                        };
                    }
                }
                return Answer::Tuple(items);
            }
        }
        let parts = split_top(s, ",");
        if parts.len() > 1 {
            return match Self::items(parts, opts, depth) {
                Some(items) if opts.ordered_lists => Answer::Tuple(items),
                Some(items) => Answer::List(items),
                None => text(),
            };
        }
        if s.matches("\\pm").count() == 1 {
            let plus = Self::parse_at(&s.replace("\\pm", "+"), opts, depth + 1);
            let minus = Self::parse_at(&s.replace("\\pm", "-"), opts, depth + 1);
            return Answer::List(vec![plus, minus]);
        }
        if let Some(set) = membership(s) {
            return Self::parse_at(set, opts, depth + 1);
        }
        if let Some(relation) = relation_chain(s) {
            return relation;
        }
        let sides = split_top(s, "=");
        if sides.len() > 1 && sides.iter().all(|side| is_constant(side)) {
            // Worked arithmetic (`2 + 3 = 5`, `\frac{6}{12} = \frac12`): the last side is the answer.
            return Self::parse_at(sides[sides.len() - 1].trim(), opts, depth + 1);
        }
        if sides.len() > 1 {
            let (labels, value) = sides.split_at(sides.len() - 1);
            if labels.iter().all(|l| is_simple_variable(l)) {
                return Answer::Labelled {
                    label: labels[0].trim().to_string(),
                    value: Box::new(Self::parse_at(value[0].trim(), opts, depth + 1)),
                };
            }
            if sides.len() == 2
                && let (Some(l), Some(r)) = (parse_expr(&sides[0]), parse_expr(&sides[1]))
            {
                return Answer::Equation(Expr::Add(vec![l, Expr::Neg(Box::new(r))]));
            }
            return text();
        }
        if let Some(q) = Self::quantity(s) {
            return q;
        }
        if let Some(n) = number_words(s) {
            return Answer::Expr(Expr::int(i64::try_from(n).unwrap_or(i64::MAX)));
        }
        if has_word(s) {
            return text();
        }
        match parse_expr(s) {
            Some(e) => Answer::Expr(e),
            None => text(),
        }
    }

    /// `50%` or `90^\circ` (normalisation writes every percent and degree sign this way).
    fn quantity(s: &str) -> Option<Answer> {
        let (number, unit) = if let Some(n) = s.strip_suffix('%') {
            (n, Unit::Percent)
        } else {
            (s.strip_suffix("^\\circ")?, Unit::Degree)
        };
        if number.contains("^\\circ") || number.contains('%') {
            return None;
        }
        let value = parse_expr(number)?;
        // `\sin 30^\circ` is a value computed from an angle, not an angle.
        value.exact()?;
        Some(Answer::Quantity { value, unit })
    }

    fn matrix(s: &str, opts: ShapeOptions, depth: usize) -> Option<Answer> {
        // `\left[\begin{array}…\end{array}\right]`: brackets drawn around the environment.
        let bare = [("(", ")"), ("[", "]")]
            .iter()
            .find_map(|(l, r)| s.strip_prefix(l)?.strip_suffix(r))
            .map(str::trim)
            .filter(|inner| inner.starts_with("\\begin{"))
            .unwrap_or(s);
        let rest = bare.strip_prefix("\\begin{")?;
        let (env, body) = rest.split_once('}')?;
        if !env.ends_with("matrix") && env != "array" {
            return None;
        }
        let body = body.strip_suffix(&format!("\\end{{{env}}}"))?;
        let body = if env == "array" {
            body.trim_start().strip_prefix('{')?.split_once('}')?.1
        } else {
            body
        };
        let rows: Vec<Vec<Answer>> = body
            .split("\\\\")
            .filter(|r| !r.trim().is_empty())
            .map(|r| Self::items(r.split('&').map(str::to_string).collect(), opts, depth))
            .collect::<Option<_>>()?;
        if rows.is_empty() || rows.len() > MAX_ITEMS {
            return None;
        }
        Some(Answer::Matrix(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(s: &str) -> Answer {
        Answer::parse(
            s,
            ShapeOptions {
                ordered_lists: false,
            },
        )
    }

    #[test]
    fn reads_shapes() {
        assert!(matches!(shape("(1, 2)"), Answer::Tuple(v) if v.len() == 2));
        assert!(matches!(
            shape("(1, 2]"),
            Answer::Interval {
                left_closed: false,
                right_closed: true,
                ..
            }
        ));
        assert!(matches!(shape(r"(-\infty, 2)"), Answer::Interval { .. }));
        assert!(matches!(shape(r"\{1, 2, 3\}"), Answer::Set(v) if v.len() == 3));
        assert!(matches!(shape("1, 2, 3"), Answer::List(v) if v.len() == 3));
        assert!(matches!(shape(r"(1, 2) \cup (3, \infty)"), Answer::Union(v) if v.len() == 2));
        assert!(
            matches!(shape(r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"), Answer::Matrix(r) if r.len() == 2)
        );
        assert!(matches!(shape("x = 3"), Answer::Labelled { .. }));
        assert!(
            matches!(shape("(a, b) = (2, 5)"), Answer::Labelled { value, .. } if matches!(*value, Answer::Tuple(_)))
        );
        assert!(matches!(shape("x + y = 3"), Answer::Equation(_)));
        assert!(matches!(shape(r"3 \pm \sqrt{2}"), Answer::List(v) if v.len() == 2));
        assert!(matches!(shape("Evelyn"), Answer::Text(_)));
        assert!(matches!(shape("twelve"), Answer::Expr(_)));
        assert!(matches!(shape(r"2\sqrt{x}"), Answer::Expr(_)));
        assert!(matches!(
            shape("x > 3"),
            Answer::Interval {
                left_closed: false,
                ..
            }
        ));
        assert!(matches!(
            shape("50%"),
            Answer::Quantity {
                unit: Unit::Percent,
                ..
            }
        ));
        assert!(matches!(
            shape(r"90^\circ"),
            Answer::Quantity {
                unit: Unit::Degree,
                ..
            }
        ));
        assert!(matches!(
            shape("(D) 12"),
            Answer::Choice {
                letter: 'D',
                content: Some(_)
            }
        ));
        assert!(matches!(
            shape("(C)"),
            Answer::Choice {
                letter: 'C',
                content: None
            }
        ));
    }
}
