//! One module per page; query-string helpers shared by their filters, sort links and pagers.

pub mod datasets;
pub mod evals;
pub mod jobs;
pub mod leaderboard;
pub mod run;
pub mod runs;
pub mod signin;
pub mod submit;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::params::ParamsMap;

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `?…` with `key` set to `value` (removed when empty) and every other parameter kept, except
/// `reset` (a filter change goes back to the first page).
pub fn with_param(query: &ParamsMap, key: &str, value: &str, reset: &[&str]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .into_iter()
        .filter(|(k, _)| k.as_ref() != key && !reset.contains(&k.as_ref()))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if !value.is_empty() {
        pairs.push((key.to_string(), value.to_string()));
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("?{}", joined.join("&"))
}

/// A non-empty query value.
pub fn param(query: &ParamsMap, key: &str) -> Option<String> {
    query.get(key).filter(|v| !v.trim().is_empty())
}

/// A query value parsed, ignoring what does not parse (a hand-edited URL shows the default).
pub fn parsed<T: std::str::FromStr>(query: &ParamsMap, key: &str) -> Option<T> {
    param(query, key).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_param_replaces_one_key_and_resets_paging() {
        let mut q = ParamsMap::new();
        q.insert("status", "running".to_string());
        q.insert("page", "3".to_string());
        let href = with_param(&q, "q", "loss & acc", &["page"]);
        assert_eq!(href, "?status=running&q=loss%20%26%20acc");
        assert_eq!(with_param(&q, "status", "", &[]), "?page=3");
    }
}

/// Previous / next links.
#[component]
pub fn Pager(
    q: leptos_router::params::ParamsMap,
    total: i64,
    page: i64,
    per_page: i64,
) -> impl IntoView {
    let pages = ((total + per_page - 1) / per_page).max(1);
    let prev = (page > 0).then(|| with_param(&q, "page", &(page - 1).to_string(), &[]));
    let next = (page + 1 < pages).then(|| with_param(&q, "page", &(page + 1).to_string(), &[]));
    view! {
        <div class="pager">
            {prev.map(|h| view! { <A href=h>"← previous"</A> })}
            <span class="muted">{format!("page {} of {pages}", page + 1)}</span>
            {next.map(|h| view! { <A href=h>"next →"</A> })}
        </div>
    }
}
