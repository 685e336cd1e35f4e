//! Expression trees for math answers, with exact and floating-point evaluation.
//!
//! Why a tree: equivalence must see through notation (`\frac{1}{2}` vs `0.5` vs `1/2`,
//! `x^2-1` vs `(x-1)(x+1)`), which string comparison cannot.

use std::collections::BTreeSet;

use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};

use super::exact::{Surd, binomial, factorial, rational_to_f64};

/// A named function that takes one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Exp,
    Abs,
    Floor,
    Ceil,
}

impl Func {
    /// Looks a function up by its LaTeX command or plain name.
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "sec" => Func::Sec,
            "csc" => Func::Csc,
            "cot" => Func::Cot,
            "arcsin" | "asin" => Func::Asin,
            "arccos" | "acos" => Func::Acos,
            "arctan" | "atan" => Func::Atan,
            "sinh" => Func::Sinh,
            "cosh" => Func::Cosh,
            "tanh" => Func::Tanh,
            "ln" => Func::Ln,
            "exp" => Func::Exp,
            _ => return None,
        })
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Sec => 1.0 / x.cos(),
            Func::Csc => 1.0 / x.sin(),
            Func::Cot => 1.0 / x.tan(),
            Func::Asin => x.asin(),
            Func::Acos => x.acos(),
            Func::Atan => x.atan(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Tanh => x.tanh(),
            Func::Ln => x.ln(),
            Func::Exp => x.exp(),
            Func::Abs => x.abs(),
            Func::Floor => x.floor(),
            Func::Ceil => x.ceil(),
        }
    }
}

/// The unknown that stands for π in [`Expr::constants_as_unknowns`] (no parsed name looks like it).
const PI_UNKNOWN: &str = "#pi";
/// The unknown that stands for e in [`Expr::constants_as_unknowns`].
const E_UNKNOWN: &str = "#e";

/// A math expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number literal; `decimal` marks a written decimal point (an approximation).
    Num {
        value: BigRational,
        decimal: bool,
    },
    /// π.
    Pi,
    /// Euler's number (a lone `e`).
    E,
    /// ∞.
    Infinity,
    /// A free variable such as `x`, `x_1` or `\alpha`.
    Var(String),
    Neg(Box<Expr>),
    Add(Vec<Expr>),
    Mul(Vec<Expr>),
    Div(Box<Expr>, Box<Expr>),
    Pow(Box<Expr>, Box<Expr>),
    /// `index`-th root (`\sqrt[index]{radicand}`).
    Root(Box<Expr>, Box<Expr>),
    /// Logarithm `log_base(x)`.
    Log(Box<Expr>, Box<Expr>),
    Call(Func, Box<Expr>),
    Factorial(Box<Expr>),
    Binom(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// An integer literal.
    pub fn int(n: i64) -> Expr {
        Expr::Num {
            value: BigRational::from_integer(n.into()),
            decimal: false,
        }
    }

    /// The free variables, sorted.
    pub fn variables(&self, out: &mut BTreeSet<String>) {
        self.walk(&mut |e| {
            if let Expr::Var(v) = e {
                out.insert(v.clone());
            }
        });
    }

    /// True when a number is written with a decimal point somewhere in the expression.
    pub fn has_decimal(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| found |= matches!(e, Expr::Num { decimal: true, .. }));
        found
    }

    /// The value when the whole expression is one decimal literal, possibly negated (`-0.25`).
    pub fn decimal_value(&self) -> Option<BigRational> {
        match self {
            Expr::Num {
                value,
                decimal: true,
            } => Some(value.clone()),
            Expr::Neg(a) => a.decimal_value().map(|v| -v),
            _ => None,
        }
    }

    /// The same tree with π and e as unknowns, so that a written decimal can never stand for them
    /// (`0.5\pi` still equals `\frac{\pi}{2}`, `3.14159` never equals `\pi`).
    pub fn constants_as_unknowns(&self) -> Expr {
        let map = |a: &Expr| Box::new(a.constants_as_unknowns());
        match self {
            Expr::Pi => Expr::Var(PI_UNKNOWN.to_string()),
            Expr::E => Expr::Var(E_UNKNOWN.to_string()),
            Expr::Num { .. } | Expr::Infinity | Expr::Var(_) => self.clone(),
            Expr::Neg(a) => Expr::Neg(map(a)),
            Expr::Call(f, a) => Expr::Call(*f, map(a)),
            Expr::Factorial(a) => Expr::Factorial(map(a)),
            Expr::Add(xs) => Expr::Add(xs.iter().map(Expr::constants_as_unknowns).collect()),
            Expr::Mul(xs) => Expr::Mul(xs.iter().map(Expr::constants_as_unknowns).collect()),
            Expr::Div(a, b) => Expr::Div(map(a), map(b)),
            Expr::Pow(a, b) => Expr::Pow(map(a), map(b)),
            Expr::Root(a, b) => Expr::Root(map(a), map(b)),
            Expr::Log(a, b) => Expr::Log(map(a), map(b)),
            Expr::Binom(a, b) => Expr::Binom(map(a), map(b)),
        }
    }

    fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Num { .. } | Expr::Pi | Expr::E | Expr::Infinity | Expr::Var(_) => vec![],
            Expr::Neg(a) | Expr::Call(_, a) | Expr::Factorial(a) => vec![a],
            Expr::Add(xs) | Expr::Mul(xs) => xs.iter().collect(),
            Expr::Div(a, b)
            | Expr::Pow(a, b)
            | Expr::Root(a, b)
            | Expr::Log(a, b)
            | Expr::Binom(a, b) => {
                vec![a, b]
            }
        }
    }

    fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            f(e);
            stack.extend(e.children());
        }
    }

    /// The exact value when the expression is built from rationals and square roots only.
    pub fn exact(&self) -> Option<Surd> {
        match self {
            Expr::Num { value, .. } => Some(Surd::rational(value.clone())),
            Expr::Pi | Expr::E | Expr::Infinity | Expr::Var(_) | Expr::Log(..) => None,
            Expr::Neg(a) => Some(a.exact()?.neg()),
            Expr::Add(xs) => xs
                .iter()
                .try_fold(Surd::integer(0), |acc, x| acc.add(&x.exact()?)),
            Expr::Mul(xs) => xs
                .iter()
                .try_fold(Surd::integer(1), |acc, x| acc.mul(&x.exact()?)),
            Expr::Div(a, b) => a.exact()?.mul(&b.exact()?.recip()?),
            Expr::Pow(a, b) => {
                let base = a.exact()?;
                let exp = b.exact()?.as_rational()?;
                let num = exp.numer().to_i64()?;
                let den = exp.denom().to_u32()?;
                base.nth_root(den)?.powi(num)
            }
            Expr::Root(index, x) => {
                let n = index.exact()?.as_rational()?;
                if !n.is_integer() {
                    return None;
                }
                x.exact()?.nth_root(n.to_integer().to_u32()?)
            }
            Expr::Call(func, a) => {
                let q = a.exact()?.as_rational()?;
                let v = match func {
                    Func::Abs => q.abs(),
                    Func::Floor => q.floor(),
                    Func::Ceil => q.ceil(),
                    _ => return None,
                };
                Some(Surd::rational(v))
            }
            Expr::Factorial(a) => Some(Surd::rational(factorial(&a.exact()?.as_rational()?)?)),
            Expr::Binom(n, k) => Some(Surd::rational(binomial(
                &n.exact()?.as_rational()?,
                &k.exact()?.as_rational()?,
            )?)),
        }
    }

    /// The floating-point value with `vars` giving each variable's value (NaN when undefined).
    pub fn eval(&self, vars: &dyn Fn(&str) -> f64) -> f64 {
        match self {
            Expr::Num { value, .. } => rational_to_f64(value),
            Expr::Pi => std::f64::consts::PI,
            Expr::E => std::f64::consts::E,
            Expr::Infinity => f64::INFINITY,
            Expr::Var(v) => vars(v),
            Expr::Neg(a) => -a.eval(vars),
            Expr::Add(xs) => xs.iter().map(|x| x.eval(vars)).sum(),
            Expr::Mul(xs) => xs.iter().map(|x| x.eval(vars)).product(),
            Expr::Div(a, b) => a.eval(vars) / b.eval(vars),
            Expr::Pow(a, b) => real_pow(a.eval(vars), b, vars),
            Expr::Root(index, x) => {
                let n = index.eval(vars);
                let v = x.eval(vars);
                if v < 0.0 && n.fract() == 0.0 && (n as i64) % 2 != 0 {
                    -(-v).powf(1.0 / n)
                } else {
                    v.powf(1.0 / n)
                }
            }
            Expr::Log(base, x) => x.eval(vars).ln() / base.eval(vars).ln(),
            Expr::Call(func, a) => func.apply(a.eval(vars)),
            Expr::Factorial(a) => gamma_factorial(a.eval(vars)),
            Expr::Binom(n, k) => {
                let (n, k) = (n.eval(vars), k.eval(vars));
                gamma_factorial(n) / (gamma_factorial(k) * gamma_factorial(n - k))
            }
        }
    }
}

/// `a^b` over the reals, taking odd roots of negative bases (`(-8)^{1/3} = -2`).
fn real_pow(a: f64, b: &Expr, vars: &dyn Fn(&str) -> f64) -> f64 {
    if a < 0.0
        && let Some(q) = b.exact().and_then(|s| s.as_rational())
        && !q.is_integer()
        && let (Some(n), Some(d)) = (q.numer().to_f64(), q.denom().to_i64())
        && d % 2 != 0
    {
        let magnitude = (-a).powf(n / d as f64);
        return if (q.numer() % 2u8).is_zero() {
            magnitude
        } else {
            -magnitude
        };
    }
    a.powf(b.eval(vars))
}

/// Factorial for non-negative integers in floating point (NaN elsewhere).
fn gamma_factorial(n: f64) -> f64 {
    if n < 0.0 || n.fract() != 0.0 {
        return f64::NAN;
    }
    if n > 170.0 {
        return f64::INFINITY;
    }
    (2..=n as u64).map(|k| k as f64).product()
}
