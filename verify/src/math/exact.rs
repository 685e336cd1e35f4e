//! Exact arithmetic in the field of rationals extended by square roots (`a + b√2 + c√6 …`).
//!
//! Why: answers such as `\frac{\sqrt{2}}{2}` and `\frac{1}{\sqrt2}` must be judged equal without a
//! float tolerance, and `1000000` must never equal `1000001`. Every operation is capped (term count,
//! radicand size, number of bits) and returns `None` when a cap is hit, so the caller falls back to a
//! numeric comparison instead of spending unbounded time.

use std::collections::BTreeMap;

use num_bigint::{BigInt, BigUint};
use num_integer::{Integer, Roots};
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// Largest square-free radicand kept exactly (products of two radicands are checked against it).
const MAX_RADICAND: u128 = 1_000_000_000_000_000;
/// Most distinct radicands in one value.
const MAX_TERMS: usize = 32;
/// Largest numerator/denominator size in bits.
const MAX_BITS: u64 = 8192;
/// Largest exponent applied to a value with radicals.
const MAX_SURD_POWER: u32 = 64;

/// A number `Σ cᵢ·√rᵢ` with rational `cᵢ` and distinct square-free integer `rᵢ` (`r = 1` is the
/// rational part). The representation is canonical, so equality of values is equality of maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Surd {
    terms: BTreeMap<u64, BigRational>,
}

impl Surd {
    /// The rational number `q`.
    pub fn rational(q: BigRational) -> Self {
        let mut terms = BTreeMap::new();
        if !q.is_zero() {
            terms.insert(1, q);
        }
        Surd { terms }
    }

    /// The integer `n`.
    pub fn integer(n: i64) -> Self {
        Self::rational(BigRational::from_integer(BigInt::from(n)))
    }

    /// The rational value when there is no radical part.
    pub fn as_rational(&self) -> Option<BigRational> {
        match self.terms.len() {
            0 => Some(BigRational::zero()),
            1 => self.terms.get(&1).cloned(),
            _ => None,
        }
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.terms.is_empty()
    }

    /// An `f64` approximation (for display and for mixing with inexact values).
    pub fn to_f64(&self) -> f64 {
        self.terms
            .iter()
            .map(|(r, c)| rational_to_f64(c) * (*r as f64).sqrt())
            .sum()
    }

    fn checked(self) -> Option<Self> {
        if self.terms.len() > MAX_TERMS {
            return None;
        }
        for c in self.terms.values() {
            if c.numer().bits() > MAX_BITS || c.denom().bits() > MAX_BITS {
                return None;
            }
        }
        Some(self)
    }

    /// `self + other`.
    pub fn add(&self, other: &Surd) -> Option<Surd> {
        let mut terms = self.terms.clone();
        for (r, c) in &other.terms {
            let sum = terms.get(r).cloned().unwrap_or_else(BigRational::zero) + c;
            if sum.is_zero() {
                terms.remove(r);
            } else {
                terms.insert(*r, sum);
            }
        }
        Surd { terms }.checked()
    }

    /// `-self`.
    pub fn neg(&self) -> Surd {
        Surd {
            terms: self.terms.iter().map(|(r, c)| (*r, -c)).collect(),
        }
    }

    /// `self · other`, using `√a·√b = g·√(a/g · b/g)` with `g = gcd(a, b)` for square-free `a`, `b`.
    pub fn mul(&self, other: &Surd) -> Option<Surd> {
        let mut out = Surd::rational(BigRational::zero());
        for (a, p) in &self.terms {
            for (b, q) in &other.terms {
                let g = a.gcd(b);
                let radicand = u128::from(a / g) * u128::from(b / g);
                if radicand > MAX_RADICAND {
                    return None;
                }
                let coef = p * q * BigRational::from_integer(BigInt::from(g));
                let term = Surd {
                    terms: BTreeMap::from([(radicand as u64, coef)]),
                };
                out = out.add(&term)?;
            }
        }
        out.checked()
    }

    /// `1 / self`; radicals in the denominator are removed one prime at a time by multiplying
    /// with the conjugate `P − Q√p` of `P + Q√p`.
    pub fn recip(&self) -> Option<Surd> {
        if self.is_zero() {
            return None;
        }
        if self.terms.len() == 1 {
            let (r, c) = self.terms.iter().next()?;
            let denom = c * BigRational::from_integer(BigInt::from(*r));
            return Some(Surd {
                terms: BTreeMap::from([(*r, denom.recip())]),
            });
        }
        let radicand = self.terms.keys().copied().find(|r| *r > 1)?;
        let p = smallest_prime_factor(radicand);
        let mut conjugate = BTreeMap::new();
        for (r, c) in &self.terms {
            let sign = if r % p == 0 { -c } else { c.clone() };
            conjugate.insert(*r, sign);
        }
        let conjugate = Surd { terms: conjugate };
        let reduced = self.mul(&conjugate)?;
        conjugate.mul(&reduced.recip()?)
    }

    /// `self ^ n` for an integer `n`.
    pub fn powi(&self, n: i64) -> Option<Surd> {
        if n < 0 {
            return self.recip()?.powi(n.checked_neg()?);
        }
        let n = u32::try_from(n).ok()?;
        if let Some(q) = self.as_rational() {
            let bits = q.numer().bits().max(q.denom().bits());
            if bits.saturating_mul(u64::from(n)) > MAX_BITS {
                return None;
            }
            return Some(Surd::rational(num_traits::pow(q, n as usize)));
        }
        if n > MAX_SURD_POWER {
            return None;
        }
        let mut acc = Surd::integer(1);
        let mut base = self.clone();
        let mut e = n;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(&base)?;
            }
            e >>= 1;
            if e > 0 {
                base = base.mul(&base)?;
            }
        }
        Some(acc)
    }

    /// `√self` when `self` is a non-negative rational (`√(p/q) = √(pq)/q`), else `None`.
    pub fn sqrt(&self) -> Option<Surd> {
        let q = self.as_rational()?;
        if q.is_negative() {
            return None;
        }
        let pq = (q.numer() * q.denom()).to_biguint()?;
        let (outside, radicand) = split_square(&pq)?;
        let coef = BigRational::new(BigInt::from(outside), q.denom().clone());
        if coef.is_zero() {
            return Some(Surd::rational(coef));
        }
        Some(Surd {
            terms: BTreeMap::from([(radicand, coef)]),
        })
    }

    /// The real `n`-th root when `self` is a rational perfect `n`-th power, else `None`.
    pub fn nth_root(&self, n: u32) -> Option<Surd> {
        if n == 2 {
            return self.sqrt();
        }
        if n == 0 || n > 64 {
            return None;
        }
        let q = self.as_rational()?;
        if q.is_negative() && n.is_multiple_of(2) {
            return None;
        }
        let root_of = |x: &BigInt| -> Option<BigInt> {
            let r = x.abs().nth_root(n);
            (num_traits::pow(r.clone(), n as usize) == x.abs())
                .then(|| if x.is_negative() { -r } else { r })
        };
        let num = root_of(q.numer())?;
        let den = root_of(q.denom())?;
        Some(Surd::rational(BigRational::new(num, den)))
    }
}

/// Converts a rational to `f64` even when numerator and denominator overflow separately.
pub fn rational_to_f64(q: &BigRational) -> f64 {
    if let (Some(n), Some(d)) = (q.numer().to_f64(), q.denom().to_f64())
        && n.is_finite()
        && d.is_finite()
    {
        return n / d;
    }
    let shift = q.numer().bits().max(q.denom().bits()).saturating_sub(900);
    let n = (q.numer() >> shift).to_f64().unwrap_or(f64::NAN);
    let d = (q.denom() >> shift).to_f64().unwrap_or(f64::NAN);
    n / d
}

/// Writes `n = outside² · radicand` with square-free `radicand`; `None` if `n` is too large to factor.
fn split_square(n: &BigUint) -> Option<(BigUint, u64)> {
    if n.is_zero() {
        return Some((BigUint::zero(), 1));
    }
    let root = n.sqrt();
    if &(&root * &root) == n {
        return Some((root, 1));
    }
    let mut m = u128::try_from(n.clone())
        .ok()
        .filter(|m| *m <= MAX_RADICAND)?;
    let mut outside: u128 = 1;
    let mut radicand: u128 = 1;
    let mut p: u128 = 2;
    while p * p <= m && p <= 100_000 {
        let mut count = 0;
        while m % p == 0 {
            m /= p;
            count += 1;
        }
        for _ in 0..count / 2 {
            outside *= p;
        }
        if count % 2 == 1 {
            radicand *= p;
        }
        p += if p == 2 { 1 } else { 2 };
    }
    // What is left has no prime factor ≤ 100000 and is ≤ 10^15, so it is 1, a prime, p·q or p².
    if m > 1 {
        let r = m.sqrt();
        if r * r == m {
            outside *= r;
        } else {
            radicand *= m;
        }
    }
    Some((BigUint::from(outside), u64::try_from(radicand).ok()?))
}

/// The smallest prime factor of `n > 1` (trial division; radicands are capped at 10^15).
fn smallest_prime_factor(n: u64) -> u64 {
    if n.is_multiple_of(2) {
        return 2;
    }
    let mut p = 3;
    while p * p <= n {
        if n.is_multiple_of(p) {
            return p;
        }
        p += 2;
    }
    n
}

/// `n!` for small `n`, exactly.
pub fn factorial(n: &BigRational) -> Option<BigRational> {
    if !n.is_integer() || n.is_negative() {
        return None;
    }
    let n = n.to_integer().to_u32().filter(|n| *n <= 300)?;
    let mut acc = BigInt::one();
    for k in 2..=n {
        acc *= k;
    }
    Some(BigRational::from_integer(acc))
}

/// `C(n, k)` for small non-negative integers, exactly.
pub fn binomial(n: &BigRational, k: &BigRational) -> Option<BigRational> {
    if !n.is_integer() || !k.is_integer() {
        return None;
    }
    let n = n.to_integer().to_i64().filter(|n| (0..=2000).contains(n))?;
    let k = k.to_integer().to_i64()?;
    if k < 0 || k > n {
        return Some(BigRational::zero());
    }
    let k = k.min(n - k);
    let mut acc = BigInt::one();
    for i in 0..k {
        acc = acc * (n - i) / (i + 1);
    }
    Some(BigRational::from_integer(acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> Surd {
        Surd::integer(n)
    }

    #[test]
    fn sqrt_extracts_square_factors() {
        assert_eq!(
            int(8).sqrt().unwrap(),
            int(2).mul(&int(2).sqrt().unwrap()).unwrap()
        );
        assert_eq!(int(144).sqrt().unwrap(), int(12));
        assert!(int(-4).sqrt().is_none());
    }

    #[test]
    fn radicals_multiply_and_rationalise() {
        let r2 = int(2).sqrt().unwrap();
        let r3 = int(3).sqrt().unwrap();
        let r6 = int(6).sqrt().unwrap();
        assert_eq!(r2.mul(&r3).unwrap(), r6);
        // 1/√2 = √2/2
        let half = Surd::rational(BigRational::new(1.into(), 2.into()));
        assert_eq!(r2.recip().unwrap(), r2.mul(&half).unwrap());
        // 1/(1+√2) = √2 − 1
        let d = int(1).add(&r2).unwrap();
        assert_eq!(d.recip().unwrap(), r2.add(&int(-1)).unwrap());
        // 1/(√2+√3) = √3 − √2
        let d = r2.add(&r3).unwrap();
        assert_eq!(d.recip().unwrap(), r3.add(&r2.neg()).unwrap());
    }

    #[test]
    fn powers_and_roots() {
        let r2 = int(2).sqrt().unwrap();
        assert_eq!(r2.powi(2).unwrap(), int(2));
        assert_eq!(int(27).nth_root(3).unwrap(), int(3));
        assert_eq!(int(-8).nth_root(3).unwrap(), int(-2));
        assert!(int(2).nth_root(3).is_none());
        assert!(int(2).powi(100_000).is_none(), "exponent cap must hold");
        assert_eq!(
            int(2).powi(-2).unwrap(),
            Surd::rational(BigRational::new(1.into(), 4.into()))
        );
    }

    #[test]
    fn factorial_and_binomial() {
        let five = BigRational::from_integer(5.into());
        assert_eq!(
            factorial(&five).unwrap(),
            BigRational::from_integer(120.into())
        );
        let two = BigRational::from_integer(2.into());
        assert_eq!(
            binomial(&five, &two).unwrap(),
            BigRational::from_integer(10.into())
        );
    }
}
