//! MLflow's search filter (`params.lr = '0.1' AND metrics.acc >= 0.5`) and `order_by`, applied
//! to runs in memory: `runs/search` loads the experiments' runs and filters here, which is fine
//! at a team's scale (thousands of runs) and would move into SQL beyond it.

use super::wire::{RUN_NAME_TAG, ms, status_to_mlflow};
use crate::error::AppError;
use crate::store::metrics;
use crucible_types::Run;

/// One `entity.key op value` clause of an MLflow search filter.
#[derive(Debug, PartialEq)]
pub(super) struct Clause {
    entity: Entity,
    key: String,
    op: String,
    value: String,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Entity {
    Param,
    Tag,
    Attribute,
    Metric,
}

/// Parses the basic filter grammar: clauses joined by `AND`, each `entity.key op value`,
/// with `op` one of `= != > >= < <= LIKE` and string values in single or double quotes.
pub(super) fn parse_filter(filter: &str) -> Result<Vec<Clause>, AppError> {
    let bad = |m: String| AppError::invalid("filter", m);
    let mut clauses = Vec::new();
    for part in split_and(filter) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let op_pos = ["!=", ">=", "<=", "=", ">", "<", " LIKE ", " like "]
            .iter()
            .filter_map(|op| part.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, usize::MAX - op.len()))
            .ok_or_else(|| bad(format!("no comparison operator in {part:?}")))?;
        let (lhs, rhs) = (
            part[..op_pos.0].trim(),
            part[op_pos.0 + op_pos.1.len()..].trim(),
        );
        let (entity, key) = lhs
            .split_once('.')
            .ok_or_else(|| bad(format!("{lhs:?} must be entity.key")))?;
        let entity = match entity.to_ascii_lowercase().as_str() {
            "params" | "param" => Entity::Param,
            "tags" | "tag" => Entity::Tag,
            "attributes" | "attribute" | "attr" | "run" => Entity::Attribute,
            "metrics" | "metric" => Entity::Metric,
            other => return Err(bad(format!("unknown entity {other:?}"))),
        };
        let key = key.trim_matches(|c| c == '`' || c == '"').to_string();
        let value = rhs.trim_matches(|c| c == '\'' || c == '"').to_string();
        clauses.push(Clause {
            entity,
            key,
            op: op_pos.1.trim().to_ascii_uppercase(),
            value,
        });
    }
    Ok(clauses)
}

/// Splits on ` AND ` outside quotes.
fn split_and(filter: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quote: Option<char> = None;
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
        } else if c == '\'' || c == '"' {
            quote = Some(c);
        } else if i + 5 <= chars.len() {
            let window: String = chars[i..i + 5].iter().collect();
            if window.eq_ignore_ascii_case(" and ") {
                parts.push(String::new());
                i += 5;
                continue;
            }
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
        i += 1;
    }
    parts
}

fn compare(actual: Option<&str>, op: &str, wanted: &str) -> bool {
    let Some(actual) = actual else {
        return op == "!=";
    };
    let numeric = actual.parse::<f64>().ok().zip(wanted.parse::<f64>().ok());
    let ord = match numeric {
        Some((a, w)) => a.partial_cmp(&w),
        None => Some(actual.cmp(wanted)),
    };
    match op {
        "=" => actual == wanted || ord == Some(std::cmp::Ordering::Equal),
        "!=" => actual != wanted && ord != Some(std::cmp::Ordering::Equal),
        ">" => ord == Some(std::cmp::Ordering::Greater),
        ">=" => matches!(
            ord,
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        ),
        "<" => ord == Some(std::cmp::Ordering::Less),
        "<=" => matches!(
            ord,
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        ),
        "LIKE" => like(actual, wanted),
        _ => false,
    }
}

/// SQL LIKE with `%` (any run) and `_` (one character).
fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let (t, p): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
    go(&t, &p)
}

pub(super) fn matches(run: &Run, latest: &[metrics::LatestPoint], clauses: &[Clause]) -> bool {
    clauses.iter().all(|c| {
        let actual: Option<String> = match c.entity {
            Entity::Param => run.params.get(&c.key).cloned(),
            Entity::Tag if c.key == RUN_NAME_TAG => Some(run.name.clone()),
            Entity::Tag => run.tags.get(&c.key).cloned(),
            Entity::Metric => latest
                .iter()
                .find(|m| m.key == c.key)
                .map(|m| m.value.to_string()),
            Entity::Attribute => match c.key.as_str() {
                "status" => Some(status_to_mlflow(run.status).to_string()),
                "run_name" => Some(run.name.clone()),
                "run_id" => Some(run.id.to_string()),
                "start_time" => Some(ms(run.started_at.unwrap_or(run.created_at)).to_string()),
                _ => None,
            },
        };
        compare(actual.as_deref(), &c.op, &c.value)
    })
}

/// Applies MLflow `order_by` (`attributes.start_time DESC`, `params.lr`, …); default newest first.
pub(super) fn sort_runs(runs: &mut [&Run], order_by: &[String]) {
    let Some(first) = order_by.first() else {
        runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        return;
    };
    let mut words = first.split_whitespace();
    let field = words.next().unwrap_or("");
    let descending = words.next().is_some_and(|w| w.eq_ignore_ascii_case("desc"));
    let key = |r: &Run| -> String {
        match field.split_once('.') {
            Some(("params", k)) => r.params.get(k).cloned().unwrap_or_default(),
            Some(("tags", k)) => r.tags.get(k).cloned().unwrap_or_default(),
            _ if field.ends_with("run_name") => r.name.clone(),
            _ => format!("{:020}", ms(r.started_at.unwrap_or(r.created_at))),
        }
    };
    runs.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        if descending { o.reverse() } else { o }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_into_clauses() {
        let c =
            parse_filter("params.lr = '0.1' and tags.team != \"a and b\" AND metrics.acc >= 0.5")
                .unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[0],
            Clause {
                entity: Entity::Param,
                key: "lr".into(),
                op: "=".into(),
                value: "0.1".into()
            }
        );
        assert_eq!(c[1].value, "a and b");
        assert_eq!((c[2].entity, c[2].op.as_str()), (Entity::Metric, ">="));
        assert!(parse_filter("lr = 1").is_err());
        assert!(parse_filter("foo.lr = 1").is_err());
        assert!(parse_filter("").unwrap().is_empty());
    }

    #[test]
    fn comparisons_are_numeric_when_both_sides_are_numbers() {
        assert!(compare(Some("0.10"), "=", "0.1"));
        assert!(compare(Some("10"), ">", "9"));
        assert!(!compare(Some("10"), "<", "9"));
        assert!(compare(Some("abc"), "LIKE", "a%"));
        assert!(compare(None, "!=", "x"));
        assert!(!compare(None, "=", "x"));
    }
}
