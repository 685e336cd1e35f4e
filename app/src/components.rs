//! Small pieces every page uses: loading and error states, status badges, score cells, times.

use chrono::{DateTime, Utc};
use leptos::prelude::*;

/// A server function's failure, shown in place of the content.
#[component]
pub fn ErrorBox(message: String) -> impl IntoView {
    view! { <p class="error" role="alert">{message}</p> }
}

/// Placeholder while a resource loads.
#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="muted">"Loading…"</p> }
}

/// A status word as a coloured badge (`running`, `finished`, `failed`, …).
#[component]
pub fn Badge(text: String) -> impl IntoView {
    let class = format!("badge {text}");
    let status = text.clone();
    view! { <span class=class data-status=status>{text}</span> }
}

/// One model output as the sample browser and the rollout view show it.
pub struct CompletionCells {
    /// Sample (rollout) index within its problem.
    pub idx: i32,
    /// The answer the verifier extracted, where it reports one.
    pub extracted: Option<String>,
    /// The verifier's verdict.
    pub verdict: String,
    /// Reward, where one was computed.
    pub reward: Option<f64>,
    /// Right or wrong, where graded (colours the row).
    pub correct: Option<bool>,
    /// Generated tokens.
    pub tokens: i32,
    /// Cut off by the token budget.
    pub truncated: bool,
    /// The text.
    pub completion: String,
}

/// The completions of one prompt: eval samples and RL rollouts share this table.
#[component]
pub fn CompletionTable(rows: Vec<CompletionCells>, show_extracted: bool) -> impl IntoView {
    view! {
        <table class="grid-table">
            <thead><tr>
                <th>"#"</th>
                {show_extracted.then(|| view! { <th>"extracted"</th> })}
                <th>"verdict"</th><th>"reward"</th><th>"tokens"</th><th>"truncated"</th><th>"completion"</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|c| view! {
                    <tr class=match c.correct { Some(true) => "right", Some(false) => "wrong", None => "" }>
                        <td>{c.idx}</td>
                        {show_extracted.then(|| view! { <td>{c.extracted.unwrap_or_default()}</td> })}
                        <td>{c.verdict}</td>
                        <td>{c.reward.map(|r| format!("{r:.2}")).unwrap_or_default()}</td>
                        <td>{c.tokens}</td>
                        <td>{if c.truncated { "yes" } else { "" }}</td>
                        <td><pre class="completion">{c.completion}</pre></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// `2026-11-28 10:42:03` in UTC: stable between server render and hydration.
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Same as [`when`] for optional times.
pub fn when_opt(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(when).unwrap_or_default()
}

/// `12 s`, `5 min`, `3 h`, `2 d`: how long ago `then` was at `now`.
pub fn age(now: &DateTime<Utc>, then: &DateTime<Utc>) -> String {
    let s = (*now - *then).num_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86400),
    }
}

/// A score with its 95% interval: `0.412 [0.380, 0.445]`.
pub fn score_with_ci(value: f64, low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{value:.3} [{l:.3}, {h:.3}]"),
        _ => format!("{value:.3}"),
    }
}

/// Shortens an id for tables (the full id is in the link).
pub fn short(id: &uuid::Uuid) -> String {
    id.to_string()[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ages_pick_the_largest_whole_unit() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let ago = |s: i64| age(&now, &(now - chrono::Duration::seconds(s)));
        assert_eq!(ago(5), "5 s");
        assert_eq!(ago(125), "2 min");
        assert_eq!(ago(7300), "2 h");
        assert_eq!(ago(200_000), "2 d");
        // A clock slightly ahead never shows a negative age.
        assert_eq!(ago(-3), "0 s");
    }

    #[test]
    fn scores_show_their_interval_when_known() {
        assert_eq!(
            score_with_ci(0.5, Some(0.25), Some(0.75)),
            "0.500 [0.250, 0.750]"
        );
        assert_eq!(score_with_ci(0.5, None, Some(0.75)), "0.500");
    }
}
