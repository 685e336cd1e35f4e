//! Signing in: a page that takes an API token by hand, and the navigation bar's view of who is
//! signed in. The exchange itself (token or one-time link → session cookie) is the server's
//! `/auth/…` routes: plain form posts, so sign-in works before the bundle has loaded.

use crate::api::{Viewer, fetch_viewer};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// What a failed sign-in says, by the `error` the server redirects back with.
fn sign_in_error(code: &str) -> &'static str {
    match code {
        "token" => "That token is unknown or has been revoked.",
        "link" => "That sign-in link was already used or has expired: paste a token instead.",
        "missing" => "Paste an API token to sign in.",
        _ => "Signing in failed; try again.",
    }
}

/// `/signin`.
#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let error = move || {
        query.read().get("error").map(|code| {
            view! { <p class="error" role="alert" id="signin-error">{sign_in_error(&code)}</p> }
        })
    };
    view! {
        <h1>"Sign in"</h1>
        <form method="post" action="/auth/signin" id="signin" class="form">
            <label>"API token"
                <input type="password" name="token" autocomplete="off" placeholder="crc_…"/>
            </label>
            {error}
            <button type="submit">"Sign in"</button>
        </form>
        <p class="muted">
            "The dashboard shows your team's runs, evals, models, datasets and jobs. "
            <code>"crucible up"</code>" prints a link that signs you in; "
            <code>"crucible token create --team NAME"</code>" makes a token."
        </p>
    }
}

/// The navigation bar's corner: the signed-in team with a sign-out button, or a sign-in link.
#[component]
pub fn ViewerBadge() -> impl IntoView {
    let viewer = Resource::new(|| (), |_| fetch_viewer());
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match viewer.await {
                    Ok(Viewer::SignedIn(team)) => view! {
                        <span class="viewer" id="viewer" data-team=team.name.clone()>
                            {format!("team {}", team.name)}
                            <form method="post" action="/auth/signout" class="signout">
                                <button type="submit" id="signout">"Sign out"</button>
                            </form>
                        </span>
                    }.into_any(),
                    Ok(Viewer::OpenReads) => view! {
                        <span class="viewer" id="viewer">"all teams (read-only) · "<a href="/signin" rel="external">"Sign in"</a></span>
                    }.into_any(),
                    Ok(Viewer::SignedOut) | Err(_) => view! {
                        <span class="viewer" id="viewer"><a href="/signin" rel="external">"Sign in"</a></span>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_its_own_message() {
        let known = ["token", "link", "missing"];
        for code in known {
            assert_ne!(sign_in_error(code), sign_in_error("other"), "{code}");
        }
        assert_ne!(sign_in_error("token"), sign_in_error("link"));
    }
}
