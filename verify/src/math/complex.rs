//! Complex values of expressions in which `i` is the imaginary unit: exactly in ℚ(√…)(i) when only
//! field operations and square roots occur, else in floating point.
//!
//! Why: `(1+i)^2` and `2i`, or `\frac{1}{1-i}` and `\frac12 + \frac12 i`, are the same complex
//! number, which treating `i` as an unknown cannot see.

use num_traits::{Signed, ToPrimitive};

use super::exact::Surd;
use super::expr::{Expr, Func};

/// The name the parser gives the imaginary unit.
pub const IMAGINARY_UNIT: &str = "i";

/// `re + im·i` with exact parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gaussian {
    re: Surd,
    im: Surd,
}

impl Gaussian {
    fn real(re: Surd) -> Self {
        Gaussian {
            re,
            im: Surd::integer(0),
        }
    }

    fn add(&self, o: &Gaussian) -> Option<Gaussian> {
        Some(Gaussian {
            re: self.re.add(&o.re)?,
            im: self.im.add(&o.im)?,
        })
    }

    fn neg(&self) -> Gaussian {
        Gaussian {
            re: self.re.neg(),
            im: self.im.neg(),
        }
    }

    fn mul(&self, o: &Gaussian) -> Option<Gaussian> {
        Some(Gaussian {
            re: self.re.mul(&o.re)?.add(&self.im.mul(&o.im)?.neg())?,
            im: self.re.mul(&o.im)?.add(&self.im.mul(&o.re)?)?,
        })
    }

    /// `1/z = z̄ / |z|²`.
    fn recip(&self) -> Option<Gaussian> {
        let norm = self.re.mul(&self.re)?.add(&self.im.mul(&self.im)?)?;
        let inv = norm.recip()?;
        Some(Gaussian {
            re: self.re.mul(&inv)?,
            im: self.im.neg().mul(&inv)?,
        })
    }

    fn powi(&self, n: i64) -> Option<Gaussian> {
        if n < 0 {
            return self.recip()?.powi(n.checked_neg()?);
        }
        if n > 64 {
            return None;
        }
        let mut acc = Gaussian::real(Surd::integer(1));
        for _ in 0..n {
            acc = acc.mul(self)?;
        }
        Some(acc)
    }
}

/// The exact complex value, when `e` uses only `i`, rationals, field operations, integer powers
/// and square roots of rationals.
pub fn gaussian(e: &Expr) -> Option<Gaussian> {
    match e {
        Expr::Var(v) if v == IMAGINARY_UNIT => Some(Gaussian {
            re: Surd::integer(0),
            im: Surd::integer(1),
        }),
        Expr::Num { .. } => Some(Gaussian::real(e.exact()?)),
        Expr::Neg(a) => Some(gaussian(a)?.neg()),
        Expr::Add(xs) => xs
            .iter()
            .try_fold(Gaussian::real(Surd::integer(0)), |acc, x| {
                acc.add(&gaussian(x)?)
            }),
        Expr::Mul(xs) => xs
            .iter()
            .try_fold(Gaussian::real(Surd::integer(1)), |acc, x| {
                acc.mul(&gaussian(x)?)
            }),
        Expr::Div(a, b) => gaussian(a)?.mul(&gaussian(b)?.recip()?),
        Expr::Pow(a, b) => {
            let n = b.exact()?.as_rational()?;
            if !n.is_integer() {
                return None;
            }
            gaussian(a)?.powi(n.to_integer().to_i64()?)
        }
        Expr::Root(index, x) => {
            let q = x.exact()?.as_rational()?;
            if index.exact()?.as_rational()? != num_rational::BigRational::from_integer(2.into()) {
                return None;
            }
            let root = Surd::rational(q.abs()).sqrt()?;
            Some(if q.is_negative() {
                Gaussian {
                    re: Surd::integer(0),
                    im: root,
                }
            } else {
                Gaussian::real(root)
            })
        }
        _ => None,
    }
}

/// A complex number in floating point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct C64 {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

const NAN: C64 = C64 {
    re: f64::NAN,
    im: f64::NAN,
};

impl C64 {
    fn real(re: f64) -> C64 {
        C64 { re, im: 0.0 }
    }
    fn add(self, o: C64) -> C64 {
        C64 {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    fn mul(self, o: C64) -> C64 {
        C64 {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn div(self, o: C64) -> C64 {
        let n = o.re * o.re + o.im * o.im;
        C64 {
            re: (self.re * o.re + self.im * o.im) / n,
            im: (self.im * o.re - self.re * o.im) / n,
        }
    }
    fn exp(self) -> C64 {
        let m = self.re.exp();
        C64 {
            re: m * self.im.cos(),
            im: m * self.im.sin(),
        }
    }
    fn ln(self) -> C64 {
        C64 {
            re: self.re.hypot(self.im).ln(),
            im: self.im.atan2(self.re),
        }
    }
    /// `self^p`, principal branch; integer powers by repeated multiplication.
    fn pow(self, p: C64) -> C64 {
        if p.im == 0.0 && p.re.fract() == 0.0 && p.re.abs() <= 64.0 {
            let mut acc = C64::real(1.0);
            for _ in 0..p.re.abs() as u32 {
                acc = acc.mul(self);
            }
            return if p.re < 0.0 {
                C64::real(1.0).div(acc)
            } else {
                acc
            };
        }
        if self.re == 0.0 && self.im == 0.0 {
            return C64::real(0.0);
        }
        p.mul(self.ln()).exp()
    }
    /// The magnitude, for relative comparisons.
    pub fn abs(self) -> f64 {
        self.re.hypot(self.im)
    }
}

/// The floating-point complex value of `e` with `i` the imaginary unit (NaN parts where undefined).
pub fn eval_complex(e: &Expr) -> C64 {
    match e {
        Expr::Var(v) if v == IMAGINARY_UNIT => C64 { re: 0.0, im: 1.0 },
        Expr::Var(_) | Expr::Infinity => NAN,
        Expr::Num { .. } | Expr::Pi | Expr::E => C64::real(e.eval(&|_| f64::NAN)),
        Expr::Neg(a) => C64::real(-1.0).mul(eval_complex(a)),
        Expr::Add(xs) => xs
            .iter()
            .fold(C64::real(0.0), |acc, x| acc.add(eval_complex(x))),
        Expr::Mul(xs) => xs
            .iter()
            .fold(C64::real(1.0), |acc, x| acc.mul(eval_complex(x))),
        Expr::Div(a, b) => eval_complex(a).div(eval_complex(b)),
        Expr::Pow(a, b) => {
            let base = eval_complex(a);
            if matches!(**a, Expr::E) {
                return eval_complex(b).exp();
            }
            base.pow(eval_complex(b))
        }
        Expr::Root(index, x) => eval_complex(x).pow(C64::real(1.0).div(eval_complex(index))),
        Expr::Log(base, x) => eval_complex(x).ln().div(eval_complex(base).ln()),
        Expr::Call(func, a) => {
            let z = eval_complex(a);
            let iz = C64 {
                re: -z.im,
                im: z.re,
            };
            let minus_iz = C64 {
                re: z.im,
                im: -z.re,
            };
            match func {
                Func::Exp => z.exp(),
                Func::Ln => z.ln(),
                Func::Abs => C64::real(z.abs()),
                // cos z = (e^{iz} + e^{-iz}) / 2, sin z = (e^{iz} − e^{-iz}) / 2i
                Func::Cos => iz.exp().add(minus_iz.exp()).mul(C64::real(0.5)),
                Func::Sin => iz
                    .exp()
                    .add(C64::real(-1.0).mul(minus_iz.exp()))
                    .div(C64 { re: 0.0, im: 2.0 }),
                _ if z.im == 0.0 => C64::real(e.eval(&|_| f64::NAN)),
                _ => NAN,
            }
        }
        Expr::Factorial(_) | Expr::Binom(..) => C64::real(e.eval(&|_| f64::NAN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::parse::parse_expr;

    fn g(s: &str) -> Gaussian {
        gaussian(&parse_expr(s).unwrap()).unwrap()
    }

    #[test]
    fn exact_complex_arithmetic() {
        assert_eq!(g("(1+i)^2"), g("2i"));
        assert_eq!(g(r"\frac{1}{1-i}"), g(r"\frac12+\frac12 i"));
        assert_eq!(g("i^2"), g("-1"));
        assert_eq!(g(r"\sqrt{-4}"), g("2i"));
        assert_ne!(g("3+4i"), g("3-4i"));
    }

    #[test]
    fn floating_complex_forms() {
        let z = eval_complex(&parse_expr(r"2(\cos\frac{\pi}{3} + i\sin\frac{\pi}{3})").unwrap());
        assert!((z.re - 1.0).abs() < 1e-12 && (z.im - 3f64.sqrt()).abs() < 1e-12);
        let w = eval_complex(&parse_expr(r"e^{i\pi}").unwrap());
        assert!((w.re + 1.0).abs() < 1e-12 && w.im.abs() < 1e-12);
    }
}
