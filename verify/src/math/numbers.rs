//! Number literals in the forms answers use: decimals, repeating decimals, number words, and the
//! precision a decimal is written to.
//!
//! Why a module: `0.5`, `0.\overline{3}` and `twelve` are exact numbers, and whether `3.14` is an
//! approximation depends on how many digits it shows; the parser and the comparison both need this.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Zero};

/// Longest digit string accepted in one number literal.
pub const MAX_DIGITS: usize = 400;

/// Parses a decimal literal such as `12`, `0.50`, `.5` or `10.` into an exact rational; the flag is
/// true when a decimal point is written.
pub fn parse_decimal(s: &str) -> Option<(BigRational, bool)> {
    let (int_part, frac_part) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let digits = format!("{int_part}{}", frac_part.unwrap_or(""));
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let numer: BigInt = digits.parse().ok()?;
    let scale = frac_part.map_or(0, str::len);
    let denom = num_traits::pow(BigInt::from(10), scale);
    Some((BigRational::new(numer, denom), frac_part.is_some()))
}

/// The exact value of `literal` followed by the repeating block `period` (`0.1\overline{6}` = 1/6).
pub fn repeating_decimal(literal: &str, period: &str) -> Option<BigRational> {
    if period.is_empty() || period.len() > 64 || !period.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (head, _) = parse_decimal(literal)?;
    let shown = literal.split_once('.').map_or(0, |(_, f)| f.len());
    let block: BigInt = period.parse().ok()?;
    let ten = BigInt::from(10);
    let nines = num_traits::pow(ten.clone(), period.len()) - BigInt::one();
    let tail = BigRational::new(block, nines * num_traits::pow(ten, shown));
    Some(head + tail)
}

/// Digits after the decimal point needed to write `q` exactly; `None` when it never terminates.
pub fn terminating_decimals(q: &BigRational) -> Option<usize> {
    let mut d = q.denom().clone();
    let (mut twos, mut fives) = (0usize, 0usize);
    let (two, five) = (BigInt::from(2), BigInt::from(5));
    while (&d % &two).is_zero() {
        d /= &two;
        twos += 1;
    }
    while (&d % &five).is_zero() {
        d /= &five;
        fives += 1;
    }
    d.is_one().then_some(twos.max(fives))
}

const UNITS: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// Reads an English number word phrase (`seven`, `twenty-one`, `one hundred five`, `two thousand
/// and twelve`) as an integer; `None` for anything else.
pub fn number_words(s: &str) -> Option<u64> {
    let lower = s.trim().to_lowercase().replace('-', " ");
    let words: Vec<&str> = lower.split_whitespace().filter(|w| *w != "and").collect();
    if words.is_empty() || words.len() > 12 {
        return None;
    }
    let (mut total, mut group): (u64, u64) = (0, 0);
    for w in words {
        if let Some(n) = UNITS.iter().position(|u| *u == w) {
            group += n as u64;
        } else if let Some(n) = TENS.iter().position(|t| *t == w) {
            group += 20 + 10 * n as u64;
        } else if w == "hundred" {
            group = group.max(1) * 100;
        } else if let Some(scale) = match w {
            "thousand" => Some(1_000),
            "million" => Some(1_000_000),
            "billion" => Some(1_000_000_000),
            _ => None,
        } {
            total += group.max(1) * scale;
            group = 0;
        } else {
            return None;
        }
    }
    Some(total + group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: i64, d: i64) -> BigRational {
        BigRational::new(n.into(), d.into())
    }

    #[test]
    fn decimals_and_repeating_decimals_are_exact() {
        assert_eq!(parse_decimal(".5"), Some((q(1, 2), true)));
        assert_eq!(parse_decimal("12"), Some((q(12, 1), false)));
        assert_eq!(repeating_decimal("0.", "3"), Some(q(1, 3)));
        assert_eq!(repeating_decimal("0.1", "6"), Some(q(1, 6)));
        assert_eq!(repeating_decimal("0.", "142857"), Some(q(1, 7)));
        assert_eq!(repeating_decimal("1.", "09"), Some(q(12, 11)));
        assert_eq!(repeating_decimal("0.", "x"), None);
    }

    #[test]
    fn precision_of_rationals() {
        assert_eq!(terminating_decimals(&q(1, 8)), Some(3));
        assert_eq!(terminating_decimals(&q(7, 1)), Some(0));
        assert_eq!(terminating_decimals(&q(1, 3)), None);
    }

    #[test]
    fn words() {
        assert_eq!(number_words("seven"), Some(7));
        assert_eq!(number_words("Twenty-One"), Some(21));
        assert_eq!(number_words("one hundred five"), Some(105));
        assert_eq!(number_words("two thousand and twelve"), Some(2012));
        assert_eq!(number_words("a dozen"), None);
        assert_eq!(number_words("Evelyn"), None);
    }
}
