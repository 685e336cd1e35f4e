//! The problems an RL run trains on, resolved from its config: synthetic training-split problems
//! (never in the held-out benchmark) and imported datasets, as eval-harness [`Problem`]s so a
//! rollout is prompted and graded exactly like an eval sample.

use std::collections::HashSet;

use crucible_types::{RlData, RlLevel};
use uuid::Uuid;

use super::RlError;
use crate::data::synthetic::{self, Difficulty, Split};
use crate::eval::{Benchmark, Problem};
use crucible_verify::Task;

/// `count` distinct training-split problems spread round-robin over `levels`.
pub fn synthetic_problems(seed: u64, levels: &[RlLevel], count: usize) -> Vec<Problem> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    let mut index = 0u64;
    // Distinct texts run out at the easiest levels (1 step, 1 digit has a few thousand), so the
    // bound stops the search instead of looping forever.
    while out.len() < count && index < (count as u64 + 1) * 1000 {
        let level = levels[(index % levels.len() as u64) as usize];
        let d = Difficulty {
            steps: level.steps,
            digits: level.digits,
        };
        let p = synthetic::problem(seed, Split::Train, index, d);
        index += 1;
        if seen.insert(p.text.clone()) {
            out.push(Problem {
                id: format!("rl-s{}d{}-{}", d.steps, d.digits, out.len()),
                prompt: p.text,
                task: Task::Math { gold: p.answer },
            });
        }
    }
    out
}

/// The difficulty level or dataset a problem belongs to: its id without the trailing
/// `-<index>` (`rl-s2d1-17` → `rl-s2d1`, `gsm8k-test-3` → `gsm8k-test`), so a run's pass rate
/// can be followed per level.
pub fn level_of(id: &str) -> &str {
    match id.rsplit_once('-') {
        Some((level, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            level
        }
        _ => id,
    }
}

/// Every problem of `data`, in order; `dataset(id)` fetches an imported dataset (the worker asks
/// the server, tests pass rows in).
pub fn resolve(
    data: &[RlData],
    dataset: &mut dyn FnMut(Uuid) -> Result<Benchmark, String>,
) -> Result<Vec<Problem>, RlError> {
    let mut out = Vec::new();
    for d in data {
        match d {
            RlData::Synthetic {
                seed,
                levels,
                problems,
            } => out.extend(synthetic_problems(*seed, levels, *problems)),
            RlData::Dataset { id } => out.extend(
                dataset(*id)
                    .map_err(|reason| RlError::Input {
                        name: "data",
                        reason: format!("dataset {id}: {reason}"),
                    })?
                    .problems,
            ),
        }
    }
    if out.is_empty() {
        return Err(RlError::Input {
            name: "data",
            reason: "the problem sources hold no problems".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_level_is_its_id_without_the_index() {
        let p = synthetic_problems(
            1,
            &[RlLevel {
                steps: 2,
                digits: 1,
            }],
            3,
        );
        assert_eq!(level_of(&p[2].id), "rl-s2d1");
        assert_eq!(level_of("gsm8k-test-12"), "gsm8k-test");
        assert_eq!(level_of("HumanEval/0"), "HumanEval/0");
        assert_eq!(level_of("a-b"), "a-b");
    }

    #[test]
    fn synthetic_problems_are_distinct_training_problems_over_the_levels() {
        let levels = [
            RlLevel {
                steps: 1,
                digits: 1,
            },
            RlLevel {
                steps: 2,
                digits: 2,
            },
        ];
        let problems = synthetic_problems(5, &levels, 40);
        assert_eq!(problems.len(), 40);
        let texts: HashSet<&str> = problems.iter().map(|p| p.prompt.as_str()).collect();
        assert_eq!(texts.len(), 40);
        assert!(
            problems
                .iter()
                .all(|p| Split::of(&p.prompt) == Split::Train)
        );
        let held_out: HashSet<String> =
            crate::eval::load_benchmark(crucible_types::SYNTHETIC, None, None)
                .unwrap()
                .problems
                .into_iter()
                .map(|p| p.prompt)
                .collect();
        assert!(problems.iter().all(|p| !held_out.contains(&p.prompt)));
        assert_eq!(
            problems
                .iter()
                .filter(|p| p.id.starts_with("rl-s2d2"))
                .count(),
            20
        );
        assert_eq!(synthetic_problems(5, &levels, 40), problems, "seeded");
    }

    #[test]
    fn datasets_come_from_the_callback_and_errors_name_them() {
        let id = Uuid::nil();
        let data = [RlData::Dataset { id }];
        let mut fetch = |_| {
            Ok(Benchmark::from_problems(
                "mine",
                synthetic_problems(
                    1,
                    &[RlLevel {
                        steps: 1,
                        digits: 1,
                    }],
                    3,
                ),
            ))
        };
        assert_eq!(resolve(&data, &mut fetch).unwrap().len(), 3);
        let err = resolve(&data, &mut |_| Err("gone".into())).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
