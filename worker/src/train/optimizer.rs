//! AdamW with decoupled weight decay, written over candle tensors so that its moments can be
//! saved and restored exactly (candle-nn's optimizer keeps them private).

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::TrainError;
use super::params::Parameters;
use crucible_types::train::AdamWConfig;

/// First and second moment estimates of every variable, plus the update count.
pub struct AdamW {
    config: AdamWConfig,
    /// Updates taken so far (the bias correction's `t`).
    step: u64,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

/// Gradients of one optimizer step, summed over the micro-batches, by variable name.
pub type Gradients = BTreeMap<String, Tensor>;

impl AdamW {
    /// Zero moments for every variable of `params`.
    pub fn new(config: AdamWConfig, params: &Parameters) -> Result<Self, TrainError> {
        let mut moments = BTreeMap::new();
        for (name, var) in params.iter() {
            let zeros = var.as_tensor().zeros_like()?;
            moments.insert(name.clone(), (zeros.clone(), zeros));
        }
        Ok(Self {
            config,
            step: 0,
            moments,
        })
    }

    /// Restores saved moments (see [`Self::state`]).
    pub fn restore(
        config: AdamWConfig,
        step: u64,
        moments: BTreeMap<String, (Tensor, Tensor)>,
    ) -> Self {
        Self {
            config,
            step,
            moments,
        }
    }

    /// Updates taken so far, and the moments by variable name.
    pub fn state(&self) -> (u64, &BTreeMap<String, (Tensor, Tensor)>) {
        (self.step, &self.moments)
    }

    /// One update of every variable with a gradient, at learning rate `lr`, after scaling the
    /// gradients by `grad_scale` (the clipping factor).
    pub fn step(
        &mut self,
        params: &Parameters,
        grads: &Gradients,
        lr: f64,
        grad_scale: f64,
    ) -> Result<(), TrainError> {
        self.step += 1;
        let c = &self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        for (name, var) in params.iter() {
            let Some(grad) = grads.get(name) else {
                continue;
            };
            let (m, v) = self
                .moments
                .get_mut(name)
                .ok_or_else(|| TrainError::Invalid(format!("no optimizer state for `{name}`")))?;
            let g = (grad * grad_scale)?;
            *m = ((&*m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = (&*m / bias1)?.div(&(((&*v / bias2)?.sqrt()? + c.eps)?))?;
            apply(var, &update, lr, decays(var).then_some(c.weight_decay))?;
        }
        Ok(())
    }
}

/// Whether a variable is decayed: matrices are, norms and biases are not.
fn decays(var: &Var) -> bool {
    var.rank() >= 2
}

/// `θ ← θ − lr·(update + wd·θ)`.
fn apply(var: &Var, update: &Tensor, lr: f64, weight_decay: Option<f64>) -> Result<(), TrainError> {
    let theta = var.as_tensor();
    let mut step = update.clone();
    if let Some(wd) = weight_decay {
        step = (step + (theta * wd)?)?;
    }
    var.set(&(theta - (step * lr)?)?)?;
    Ok(())
}

/// Adds the gradients a `backward` pass stored for `params` into `grads` (summing across
/// micro-batches); variables the loss did not reach get no entry.
pub fn accumulate(
    grads: &mut Gradients,
    params: &Parameters,
    store: &GradStore,
) -> Result<(), TrainError> {
    for (name, var) in params.iter() {
        if let Some(g) = store.get(var.as_tensor()) {
            let sum = match grads.remove(name) {
                Some(acc) => (acc + g)?,
                None => g.clone(),
            };
            grads.insert(name.clone(), sum);
        }
    }
    Ok(())
}

/// Global L2 norm of all gradients, summed in name order.
pub fn grad_norm(grads: &Gradients) -> Result<f64, TrainError> {
    let mut sum = 0f64;
    for g in grads.values() {
        sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    Ok(sum.sqrt())
}

/// The factor that brings `norm` down to `max_norm` (1 when below, or when clipping is off).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_only_shrinks() {
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert!((clip_scale(4.0, 1.0) - 0.25).abs() < 1e-6);
        assert_eq!(clip_scale(4.0, 0.0), 1.0);
    }
}
