//! Hugging Face model ids against a local server that answers the way the hub does (file
//! metadata by a one-byte range request, downloads by range, the repo listing), since no hub can
//! be reached here: the model downloads into the cache once, then resolves offline with no
//! request at all.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crucible_gpu::model::{LoadOptions, MimoModel};
use crucible_worker::hub::{HubConfig, HubError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The commit every revision of the fixture repo resolves to.
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The fixture repo's one model, served from the shipped checkpoint's folder.
const REPO: &str = "crucible/mimo-small";

#[derive(Default)]
struct Seen {
    /// Requests of any kind.
    requests: usize,
    /// Whole-file downloads (ranges that run to the end), by file.
    downloads: HashMap<String, usize>,
    /// Authorization headers sent.
    tokens: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn model_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/crucible-mimo-small")
}

fn note(seen: &Shared, headers: &HeaderMap) {
    let mut seen = seen.lock().unwrap();
    seen.requests += 1;
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        seen.tokens.push(auth.to_str().unwrap().to_string());
    }
}

/// `GET /api/models/{owner}/{name}/revision/{rev}`: the listing, with files the loader must
/// leave alone (a README and another format's weights, which this server does not even serve).
async fn info(
    State(seen): State<Shared>,
    Path((owner, name, _rev)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    note(&seen, &headers);
    if format!("{owner}/{name}") != REPO {
        let files =
            serde_json::json!({ "sha": COMMIT, "siblings": [{ "rfilename": "README.md" }] });
        return axum::Json(files).into_response();
    }
    let mut siblings: Vec<_> = std::fs::read_dir(model_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f != "RECIPE.md")
        .map(|f| serde_json::json!({ "rfilename": f }))
        .collect();
    siblings.push(serde_json::json!({ "rfilename": "README.md" }));
    siblings.push(serde_json::json!({ "rfilename": "pytorch_model.bin" }));
    axum::Json(serde_json::json!({ "sha": COMMIT, "siblings": siblings })).into_response()
}

/// `GET /{owner}/{name}/resolve/{rev}/{file}` with `Range: bytes=a-[b]`, answered 206 with the
/// headers the hub sends (`etag`, `x-repo-commit`, `content-range`).
async fn resolve(
    State(seen): State<Shared>,
    Path((owner, name, _rev, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    note(&seen, &headers);
    let Ok(bytes) = std::fs::read(model_dir().join(&file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if format!("{owner}/{name}") != REPO || file == "RECIPE.md" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .unwrap_or("0-")
        .to_string();
    let (start, end) = range.split_once('-').unwrap();
    let start: usize = start.parse().unwrap();
    let end: usize = if end.is_empty() {
        *seen
            .lock()
            .unwrap()
            .downloads
            .entry(file.clone())
            .or_default() += 1;
        bytes.len() - 1
    } else {
        end.parse().unwrap()
    };
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::ETAG.as_str(), format!("\"{file}-{}\"", bytes.len())),
            ("x-repo-commit", COMMIT.to_string()),
            (
                header::CONTENT_RANGE.as_str(),
                format!("bytes {start}-{end}/{}", bytes.len()),
            ),
        ],
        bytes[start..=end].to_vec(),
    )
        .into_response()
}

/// Starts the fake hub on a thread of its own; returns its URL and what it saw.
fn fake_hub() -> (String, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/api/models/{owner}/{name}/revision/{rev}", get(info))
        .route("/{owner}/{name}/resolve/{rev}/{*file}", get(resolve))
        .with_state(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
    });
    (url, seen)
}

#[test]
fn a_hub_model_downloads_once_then_loads_offline() {
    let (endpoint, seen) = fake_hub();
    let cache = tempfile::tempdir().unwrap();
    let online = HubConfig {
        endpoint,
        cache_dir: cache.path().to_path_buf(),
        token: Some("hf_test_token".into()),
        offline: false,
    };

    let dir = online.model_dir(REPO, None).unwrap();
    assert!(dir.starts_with(cache.path()), "{}", dir.display());
    assert!(
        dir.ends_with(format!("models--crucible--mimo-small/snapshots/{COMMIT}")),
        "the standard cache layout: {}",
        dir.display()
    );
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(model_dir().join(file)).unwrap(),
            "{file}"
        );
    }
    assert!(!dir.join("README.md").exists() && !dir.join("pytorch_model.bin").exists());
    let first = {
        let s = seen.lock().unwrap();
        assert_eq!(s.downloads.len(), 4, "{:?}", s.downloads);
        assert!(s.downloads.values().all(|&n| n == 1), "{:?}", s.downloads);
        assert!(
            !s.tokens.is_empty() && s.tokens.iter().all(|t| t == "Bearer hf_test_token"),
            "{:?}",
            s.tokens
        );
        s.requests
    };

    // Online again: the listing is asked for, no file is fetched again.
    assert_eq!(online.model_dir(REPO, Some("main")).unwrap(), dir);
    {
        let s = seen.lock().unwrap();
        assert!(s.downloads.values().all(|&n| n == 1), "{:?}", s.downloads);
        assert_eq!(s.requests, first + 1, "only the listing");
    }

    // Offline: the cache alone, with no request (the endpoint is not even reachable).
    let offline = HubConfig {
        endpoint: "http://127.0.0.1:9".into(),
        offline: true,
        ..online.clone()
    };
    let before = seen.lock().unwrap().requests;
    let cached = offline.model_dir(REPO, None).unwrap();
    assert_eq!(cached, dir);
    assert_eq!(seen.lock().unwrap().requests, before);
    let model = MimoModel::load(&cached, &LoadOptions::default()).unwrap();
    assert_eq!(model.config().vocab_size, {
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(model_dir().join("config.json")).unwrap())
                .unwrap();
        config["vocab_size"].as_u64().unwrap() as usize
    });

    // Offline, a revision never downloaded is refused with the cache named.
    match offline.model_dir(REPO, Some("v2")) {
        Err(e @ HubError::NotCached { .. }) => {
            assert!(e.to_string().contains("HF_HUB_OFFLINE"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_repo_without_weights_is_refused_before_any_download() {
    let (endpoint, seen) = fake_hub();
    let cache = tempfile::tempdir().unwrap();
    let config = HubConfig {
        endpoint,
        cache_dir: cache.path().to_path_buf(),
        token: None,
        offline: false,
    };
    match config.model_dir("someone/readme-only", None) {
        Err(e @ HubError::NotAModel { .. }) => {
            assert!(e.to_string().contains("safetensors"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let s = seen.lock().unwrap();
    assert!(s.downloads.is_empty());
    assert!(s.tokens.is_empty(), "no token is sent when none is set");
}
