//! String-level clean-up of a LaTeX/plain-text answer before it is parsed.
//!
//! Why: models and datasets write the same answer in many surface forms (`\dfrac`, `\left(`, `$…$`,
//! `5\text{ cm}`, `30^\circ`, `50\%`, `1{,}000`, `2.50`). Removing that noise first keeps the parser
//! small and gives people a readable canonical form when they debug a verdict.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Longest answer we look at; longer text is cut (answers are short, garbage can be huge).
pub const MAX_ANSWER_CHARS: usize = 2000;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("static regex {pattern}: {e}"))
}

static DELIM_SIZE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|Biggl|Biggr|big|Big|bigg|Bigg)([^a-zA-Z]|$)",
    )
});
static EMPTY_DELIM: LazyLock<Regex> = LazyLock::new(|| re(r"\\(?:left|right)\s*\."));
static SPACING: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\\\|\\[,;:! ]|\\q?quad\b|\\displaystyle\b|~"));
static COMMA: LazyLock<Regex> = LazyLock::new(|| re(r"\s*,\s*"));
static DEGREES: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|\\circ\b|\\degree\b|°|\\(?:text|mbox|mathrm)\{\s*degrees?\s*\}|\s(?:degrees?)$)",
    )
});
static PERCENT: LazyLock<Regex> =
    LazyLock::new(|| re(r"\s*(?:\\%|%|\\(?:text|mbox)\{\s*percent\s*\}|\spercent\b)"));
static THOUSANDS_THIN: LazyLock<Regex> = LazyLock::new(|| re(r"(\d),\\!\s*(\d)"));
static THIN_GROUP: LazyLock<Regex> = LazyLock::new(|| re(r"(\d)\\,(\d{3})"));
static BASE_SUBSCRIPT: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d+)_\{?\d+\}?"));
static REALS: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\\mathbb\s*\{?R\}?|\\(?:text|mbox)\{\s*all real numbers\s*\}|^all real numbers$")
});
static CONNECTIVE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\(?:text|textrm|mbox)\{\s*(?:and|or)\s*\}|\s+(?:and|or)\s+"));
static TEXT_WRAPPER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\\(?:text|textrm|textup|textnormal|mbox|mathrm|textit)\s*\{([^{}]*)\}(\s*\^\s*\{?[23]\}?)?",
    )
});
static BOLD_WRAPPER: LazyLock<Regex> =
    LazyLock::new(|| re(r"\\(?:textbf|mathbf|boldsymbol|bm|mathit)\s*\{([^{}]*)\}"));
static TRAILING_UNIT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(.*?[\d}])\s*(?:square units|sq\.? units|units?|cm|centimeters?|meters?|km|kilometers?|mm|inches|inch|feet|foot|ft|yards?|miles?|mph|seconds?|minutes?|hours?|days?|weeks?|months?|years?|dollars?|cents?|pounds?|ounces?|grams?|kg|liters?|gallons?|people|students|ways|points|hrs?|mins?|secs?|km/h|m/s|mph|square feet|square meters|square inches|square centimeters|cubic feet|cubic meters|cubic inches|cubic centimeters)(?:\s*\^\s*\{?[23]\}?)?$",
    )
});
static THOUSANDS: LazyLock<Regex> = LazyLock::new(|| re(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$"));
static SQRT_DIGIT: LazyLock<Regex> = LazyLock::new(|| re(r"\\sqrt\s*(\d)"));
static FRAC_DIGITS: LazyLock<Regex> = LazyLock::new(|| re(r"\\frac\s*(\d)\s*(\d)"));
static PLAIN_FUNC: LazyLock<Regex> =
    LazyLock::new(|| re(r"(^|[^a-zA-Z\\])(sqrt|sin|cos|tan|ln|log|exp)\s*\("));
static PLAIN_PI: LazyLock<Regex> = LazyLock::new(|| re(r"(^|[^a-zA-Z\\])pi\b"));
static INFINITY_WORD: LazyLock<Regex> = LazyLock::new(|| re(r"\\inf\b|\binfinity\b|\binf\b|∞"));
static DECIMAL: LazyLock<Regex> = LazyLock::new(|| re(r"\d*\.\d+|\d+\."));
static WHITESPACE: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));

/// Cuts `s` to at most `max` characters without splitting a character.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Strips math-mode delimiters around the whole answer (`$…$`, `\(…\)`, `\[…\]`).
fn strip_math_delimiters(mut s: &str) -> &str {
    loop {
        let t = s.trim();
        let inner = t
            .strip_prefix("$$")
            .and_then(|x| x.strip_suffix("$$"))
            .or_else(|| t.strip_prefix('$').and_then(|x| x.strip_suffix('$')))
            .or_else(|| t.strip_prefix("\\(").and_then(|x| x.strip_suffix("\\)")))
            .or_else(|| t.strip_prefix("\\[").and_then(|x| x.strip_suffix("\\]")));
        match inner {
            Some(i) => s = i,
            None => return t,
        }
    }
}

/// Drops `\text{unit}` annotations but keeps text that carries the answer (`\text{(C)}`, a name).
fn unwrap_text(s: &str) -> String {
    let whole = TEXT_WRAPPER.replace_all(s, "").trim().is_empty();
    TEXT_WRAPPER
        .replace_all(s, |c: &Captures| {
            let content = c.get(1).map_or("", |m| m.as_str());
            let unit_like = content
                .chars()
                .all(|ch| ch.is_alphabetic() || matches!(ch, ' ' | '.' | '/'));
            // `\mathrm{i}` and `\mathrm{e}` are the imaginary unit and Euler's number.
            let constant = matches!(content, "i" | "e");
            if !whole && unit_like && !constant {
                String::new()
            } else {
                format!("{content}{}", c.get(2).map_or("", |m| m.as_str()))
            }
        })
        .into_owned()
}

/// Removes trailing zeros of decimals (`2.50` → `2.5`, `3.0` → `3`), except before a repeating
/// block (`0.\overline{3}`, `0.10\overline{6}` keep every written digit).
fn trim_decimal_zeros(s: &str) -> String {
    DECIMAL
        .replace_all(s, |c: &Captures| {
            let m = &c[0];
            let after = &s[c.get(0).map_or(s.len(), |g| g.end())..];
            if after.starts_with("\\overline") || after.starts_with("\\dot") {
                return m.to_string();
            }
            let t = m.trim_end_matches('0').trim_end_matches('.');
            if t.is_empty() {
                "0".to_string()
            } else {
                t.to_string()
            }
        })
        .into_owned()
}

/// Closes groups left open and drops closers that match nothing (`\frac{1}{2` → `\frac{1}{2}`),
/// so a malformed answer is still read; escaped `\{` `\}` are set braces and are left alone.
fn balance_braces(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut depth = 0usize;
    let mut escaped = false;
    for c in s.chars() {
        match c {
            '{' if !escaped => depth += 1,
            '}' if !escaped => {
                if depth == 0 {
                    continue;
                }
                depth -= 1;
            }
            _ => {}
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out.extend(std::iter::repeat_n('}', depth));
    out
}

/// The canonical form of an answer string: percent signs become a trailing `%`, degree signs
/// `^\circ`, `\mathbb{R}` the interval `(-\infty, \infty)`.
pub fn normalize(raw: &str) -> String {
    let s = truncate_chars(raw, MAX_ANSWER_CHARS);
    let mut s = balance_braces(strip_math_delimiters(s));
    for (from, to) in [
        ("\u{2212}", "-"),
        ("\u{2013}", "-"),
        ("\u{00d7}", "\\times "),
        ("\u{00b7}", "\\cdot "),
        ("\u{03c0}", "\\pi "),
        ("\u{221a}", "\\sqrt"),
        ("\u{2264}", "\\le "),
        ("\u{2265}", "\\ge "),
        ("\\dfrac", "\\frac"),
        ("\\tfrac", "\\frac"),
        ("\\dbinom", "\\binom"),
        ("\\tbinom", "\\binom"),
        ("\\lbrace", "\\{"),
        ("\\langle", "("),
        ("\\rangle", ")"),
        ("\\rbrace", "\\}"),
        ("\\lvert", "|"),
        ("\\rvert", "|"),
        ("\\vert", "|"),
        ("\\varnothing", "\\emptyset"),
        ("\\leqslant", "\\le"),
        ("\\geqslant", "\\ge"),
        ("\\leq", "\\le"),
        ("\\geq", "\\ge"),
        ("\\neq", "\\ne"),
        ("\\lt", "<"),
        ("\\gt", ">"),
        ("\u{2260}", "\\ne "),
        ("{,}", ""),
        ("\\$", ""),
        ("$", ""),
    ] {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    s = THOUSANDS_THIN.replace_all(&s, "$1$2").into_owned();
    // `1\,000\,000`: each pass joins every other group, so repeat (a few passes suffice).
    for _ in 0..4 {
        if !THIN_GROUP.is_match(&s) {
            break;
        }
        s = THIN_GROUP.replace_all(&s, "$1$2").into_owned();
    }
    if let Some((exact, _)) = s.split_once("\\approx")
        && !exact.trim().is_empty()
    {
        s = exact.to_string();
    }
    s = BASE_SUBSCRIPT.replace_all(&s, "$1").into_owned();
    s = EMPTY_DELIM.replace_all(&s, "").into_owned();
    s = DELIM_SIZE.replace_all(&s, "$1").into_owned();
    s = SPACING
        .replace_all(
            &s,
            |c: &Captures| if &c[0] == "\\\\" { "\\\\" } else { " " },
        )
        .into_owned();
    s = DEGREES.replace_all(&s, "^\\circ").into_owned();
    s = PERCENT.replace_all(&s, "%").into_owned();
    s = REALS.replace_all(&s, "(-\\infty, \\infty)").into_owned();
    s = CONNECTIVE.replace_all(&s, ",").into_owned();
    s = BOLD_WRAPPER.replace_all(&s, "$1").into_owned();
    s = unwrap_text(&s);
    s = WHITESPACE.replace_all(s.trim(), " ").into_owned();
    s = s.trim_end_matches(['.', ' ']).trim_start().to_string();
    if let Some(c) = TRAILING_UNIT.captures(&s) {
        s = c[1].to_string();
    }
    if THOUSANDS.is_match(&s) {
        s = s.replace(',', "");
    }
    s = COMMA.replace_all(&s, ", ").into_owned();
    s = SQRT_DIGIT.replace_all(&s, "\\sqrt{$1}").into_owned();
    s = FRAC_DIGITS.replace_all(&s, "\\frac{$1}{$2}").into_owned();
    s = PLAIN_FUNC.replace_all(&s, "$1\\$2(").into_owned();
    s = INFINITY_WORD.replace_all(&s, "\\infty").into_owned();
    s = PLAIN_PI.replace_all(&s, "$1\\pi ").into_owned();
    s = trim_decimal_zeros(&s);
    s.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn each_rule() {
        let cases = [
            (r"$\dfrac{1}{2}$", r"\frac{1}{2}"),
            (r"\tfrac12", r"\frac{1}{2}"),
            (r"\sqrt2", r"\sqrt{2}"),
            (r"\left( 3, \frac{\pi}{2} \right)", r"( 3, \frac{\pi}{2} )"),
            (r"5\text{ cm}^2", "5"),
            (r"5 \mbox{ inches}", "5"),
            (r"12 dollars", "12"),
            (r"\text{Evelyn}", "Evelyn"),
            (r"\text{(C)}", "(C)"),
            (r"30^\circ", r"30^\circ"),
            (r"30^{\circ}", r"30^\circ"),
            ("30°", r"30^\circ"),
            (r"\frac{270}7\text{ degrees}", r"\frac{270}7^\circ"),
            (r"50\%", "50%"),
            ("50 percent", "50%"),
            (r"10,\!080", "10080"),
            (r"11,\! 111,\! 100", "11111100"),
            (r"52_8", "52"),
            (r"1\,000\,000", "1000000"),
            (r"\frac{\sqrt{2}}{2} \approx 0.707", r"\frac{\sqrt{2}}{2}"),
            (r"2+3\mathrm{i}", "2+3i"),
            (r"\langle 1, 2 \rangle", "( 1, 2 )"),
            (r"4210_{5}", "4210"),
            (r"\mathbb{R}", r"(-\infty, \infty)"),
            (r"\frac{1}{2", r"\frac{1}{2}"),
            (r"\sqrt{2}}", r"\sqrt{2}"),
            (r"x \leqslant 3", r"x \le 3"),
            (r"1{,}000", "1000"),
            ("1,000,000", "1000000"),
            ("1,2", "1, 2"),
            ("2.50", "2.5"),
            ("3.0", "3"),
            ("10.", "10"),
            (r"\$18.90", "18.9"),
            (r"(-\infty, 3]", r"(-\infty, 3]"),
            (r"(-inf, 3)", r"(-\infty, 3)"),
            ("2 \\text{ and } 3", "2, 3"),
            ("x = 3.", "x = 3"),
            ("sqrt(2)/2", r"\sqrt(2)/2"),
            ("(3, pi/2)", r"(3, \pi /2)"),
            ("2pi", r"2\pi"),
            (r"\left\{1,2\right\}", r"\{1, 2\}"),
            (
                r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
                r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "input {input:?}");
        }
    }

    #[test]
    fn long_input_is_cut() {
        let s = "9".repeat(100_000);
        assert!(normalize(&s).len() <= super::MAX_ANSWER_CHARS);
    }
}
