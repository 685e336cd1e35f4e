//! Run artifacts — the files a run logs beside its metrics (plots, configs, sample dumps,
//! checkpoints) — kept in an object store through the `object_store` crate: a local folder by
//! default (`CRUCIBLE_ARTIFACTS`), the way teams run MLflow with `--artifacts-destination`.
//!
//! Uploads stream through in parts (never a whole file in memory), are bounded, and are atomic:
//! the object appears only when its last part is written, so a half-uploaded file is never listed
//! or served. On local disk every file is fsynced before it is published.

use crate::error::{AppError, Result};
use axum::body::Body;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::sync::Arc;
use uuid::Uuid;

/// Default cap on one artifact: room for a 7B checkpoint shard, not for a runaway upload.
pub const DEFAULT_MAX_ARTIFACT_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// Longest artifact path, in characters.
pub const MAX_PATH_CHARS: usize = 1024;
/// Parts uploaded at once to a remote store.
const UPLOAD_CONCURRENCY: usize = 4;

/// One entry of a listing, relative to the folder listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactEntry {
    /// The entry's name inside the folder listed.
    pub name: String,
    /// A folder (it has artifacts below it).
    pub is_dir: bool,
    /// Size in bytes (files only).
    pub size: Option<u64>,
}

/// Where artifacts live, and the cap on one upload.
#[derive(Debug)]
pub struct Artifacts {
    store: Arc<dyn ObjectStore>,
    /// What the store was opened from, for the logs.
    location: String,
    /// Largest artifact accepted, in bytes.
    pub max_bytes: u64,
}

/// Why the artifact store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names a store Crucible cannot open yet.
    #[error("artifact store {0:?}: only file:///absolute/path and memory:// are supported")]
    Unsupported(String),
    /// The store refused to open.
    #[error("artifact store {url:?}: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
    /// The local folder could not be created.
    #[error("artifact folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
}

impl Artifacts {
    /// Opens the store at `url`: `file:///abs/path` (fsynced local files) or `memory://` (tests,
    /// throwaway servers).
    pub fn open(url: &str, max_bytes: u64) -> std::result::Result<Self, OpenError> {
        let store: Arc<dyn ObjectStore> = if let Some(path) = url.strip_prefix("file://") {
            std::fs::create_dir_all(path).map_err(|source| OpenError::Folder {
                path: path.to_string(),
                source,
            })?;
            let local =
                LocalFileSystem::new_with_prefix(path).map_err(|source| OpenError::Store {
                    url: url.to_string(),
                    source,
                })?;
            Arc::new(local.with_fsync(true))
        } else if url == "memory://" {
            Arc::new(InMemory::new())
        } else {
            return Err(OpenError::Unsupported(url.to_string()));
        };
        Ok(Self {
            store,
            location: url.to_string(),
            max_bytes,
        })
    }

    /// The store's URL.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Where the run's artifacts live in the store.
    fn run_root(run_id: Uuid) -> StorePath {
        StorePath::from(format!("runs/{run_id}"))
    }

    fn key(run_id: Uuid, path: &str) -> StorePath {
        StorePath::from(format!("runs/{run_id}/{path}"))
    }

    /// Streams `body` into the run's artifact `path` (checked by [`check_path`]), replacing any
    /// earlier file there once the upload is complete; returns the bytes written. An upload over
    /// [`Artifacts::max_bytes`], or one whose body breaks off, leaves nothing behind.
    pub async fn put(&self, run_id: Uuid, path: &str, body: Body) -> Result<u64> {
        let upload = self
            .store
            .put_multipart(&Self::key(run_id, path))
            .await
            .map_err(storage)?;
        let mut writer = WriteMultipart::new(upload);
        let mut chunks = body.into_data_stream();
        let mut written: u64 = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(AppError::invalid(
                        "body",
                        format!("the upload broke off: {e}"),
                    ));
                }
            };
            written += chunk.len() as u64;
            if written > self.max_bytes {
                let _ = writer.abort().await;
                return Err(AppError::TooLarge(format!(
                    "an artifact is at most {} bytes",
                    self.max_bytes
                )));
            }
            if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                let _ = writer.abort().await;
                return Err(storage(e));
            }
            writer.put(chunk);
        }
        writer.finish().await.map_err(storage)?;
        Ok(written)
    }

    /// The run's artifact `path` as a stream of bytes, with its size; "not found" when absent.
    pub async fn get(
        &self,
        run_id: Uuid,
        path: &str,
    ) -> Result<(
        u64,
        impl Stream<Item = object_store::Result<bytes::Bytes>> + use<>,
    )> {
        match self.store.get(&Self::key(run_id, path)).await {
            Ok(found) => Ok((found.meta.size, found.into_stream())),
            Err(object_store::Error::NotFound { .. }) => {
                Err(AppError::NotFound(format!("artifact {path:?}")))
            }
            Err(e) => Err(storage(e)),
        }
    }

    /// Every file of the run, by path: what the run page lists.
    pub async fn list_all(&self, run_id: Uuid) -> Result<Vec<crucible_types::ArtifactInfo>> {
        let root = Self::run_root(run_id);
        let prefix = format!("{root}/");
        let objects: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&root))
            .try_collect()
            .await
            .map_err(storage)?;
        let mut files: Vec<crucible_types::ArtifactInfo> = objects
            .into_iter()
            .map(|m| crucible_types::ArtifactInfo {
                path: m
                    .location
                    .as_ref()
                    .strip_prefix(&prefix)
                    .unwrap_or_default()
                    .to_string(),
                size: m.size,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The entries of the run's artifact folder `dir` (`""`: the top), folders and files by name.
    pub async fn list(&self, run_id: Uuid, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let prefix = if dir.is_empty() {
            Self::run_root(run_id)
        } else {
            Self::key(run_id, dir)
        };
        let listing = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(storage)?;
        let name = |p: &StorePath| p.filename().unwrap_or_default().to_string();
        let mut entries: Vec<ArtifactEntry> = listing
            .common_prefixes
            .iter()
            .map(|p| ArtifactEntry {
                name: name(p),
                is_dir: true,
                size: None,
            })
            .chain(listing.objects.iter().map(|o| ArtifactEntry {
                name: name(&o.location),
                is_dir: false,
                size: Some(o.size),
            }))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

/// The content type a browser needs to show an artifact inline (the run page's previews);
/// anything else downloads as bytes.
pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("json") => "application/json",
        Some("txt" | "log" | "md" | "jsonl" | "csv" | "yaml" | "yml") => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

/// A storage failure: logged with its cause, answered as a plain 500.
fn storage(e: object_store::Error) -> AppError {
    AppError::Internal(format!("artifact store: {e}"))
}

/// Checks an artifact path a client sent (`field` names it in the error): relative, `/`
/// separated, at most 1024 characters, no empty, `.` or `..` segment, no `\`, `#` or control
/// character (a path the store would read differently, or one that could climb out of the run).
pub fn check_path(field: &str, path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(AppError::invalid(
            field,
            format!("artifact path {path:?} {why}"),
        ))
    };
    if path.is_empty() || path.chars().count() > MAX_PATH_CHARS {
        return bad("must have 1 to 1024 characters");
    }
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("must be relative, with no empty, `.` or `..` part");
    }
    if path
        .chars()
        .any(|c| c == '\\' || c == '#' || c.is_control())
    {
        return bad("must not contain `\\`, `#` or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_run() {
        for ok in ["model.safetensors", "plots/loss.png", "a b/c-d_e.json"] {
            assert!(check_path("path", ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(1025);
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../b",
            "a//b",
            "a/",
            "./a",
            "a\\b",
            "a#1",
            "a\nb",
            &long,
        ] {
            assert!(check_path("path", bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_upload_is_listed_only_once_complete_and_within_the_cap() {
        let artifacts = Artifacts::open("memory://", 10).unwrap();
        let run = Uuid::new_v4();
        let n = artifacts
            .put(run, "plots/a.txt", Body::from("hello"))
            .await
            .unwrap();
        assert_eq!(n, 5);
        let too_big = artifacts
            .put(run, "big.bin", Body::from(vec![0u8; 11]))
            .await;
        assert!(matches!(too_big, Err(AppError::TooLarge(_))), "{too_big:?}");
        assert_eq!(
            artifacts.list(run, "").await.unwrap(),
            vec![ArtifactEntry {
                name: "plots".into(),
                is_dir: true,
                size: None
            }],
            "the refused upload is not there"
        );
        assert_eq!(
            artifacts.list(run, "plots").await.unwrap(),
            vec![ArtifactEntry {
                name: "a.txt".into(),
                is_dir: false,
                size: Some(5)
            }]
        );
        let (size, stream) = artifacts.get(run, "plots/a.txt").await.unwrap();
        let bytes: Vec<u8> = stream.map(|c| c.unwrap().to_vec()).concat().await;
        assert_eq!((size, bytes.as_slice()), (5, &b"hello"[..]));
        assert!(matches!(
            artifacts.get(Uuid::new_v4(), "plots/a.txt").await,
            Err(AppError::NotFound(_))
        ));
        assert_eq!(
            artifacts.list_all(run).await.unwrap(),
            vec![crucible_types::ArtifactInfo {
                path: "plots/a.txt".into(),
                size: 5
            }]
        );
    }
}
