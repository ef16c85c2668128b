use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::MediaError;

/// Content types the store accepts, with their file extensions. Closed on
/// purpose: media is served publicly from our origin, so nothing that a
/// browser would render as a page (HTML, SVG) may ever be stored.
const TYPES: &[(&str, &str)] = &[
    ("audio/wav", "wav"),
    ("audio/mpeg", "mp3"),
    ("audio/ogg", "ogg"),
];

/// A stored media file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// Lowercase hex SHA-256 of the bytes; also the public id in `/media/{sha256}`.
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    /// `<sha256>.<ext>` inside the store's root.
    pub file_name: String,
}

/// An opened media file, positioned at its start.
#[derive(Debug)]
pub struct MediaFile {
    pub file: tokio::fs::File,
    pub media: MediaRef,
}

/// Content-addressed media files under one directory: `<root>/<sha256>.<ext>`.
/// `<root>/tmp/` holds partial writes (same filesystem, so rename is atomic).
#[derive(Debug)]
pub struct MediaStore {
    root: PathBuf,
    tmp: PathBuf,
}

/// True for exactly 64 hex digits (either case).
pub fn is_valid_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn normalize_hash(sha256: &str) -> Result<String, MediaError> {
    if is_valid_sha256(sha256) {
        Ok(sha256.to_ascii_lowercase())
    } else {
        Err(MediaError::InvalidHash(sha256.chars().take(80).collect()))
    }
}

/// Maps a content type (parameters and common aliases allowed) to the
/// canonical type and extension.
fn canonical_type(content_type: &str) -> Result<(&'static str, &'static str), MediaError> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let canonical = match essence.as_str() {
        "audio/wav" | "audio/wave" | "audio/x-wav" | "audio/vnd.wave" => "audio/wav",
        "audio/mpeg" | "audio/mp3" => "audio/mpeg",
        "audio/ogg" | "application/ogg" => "audio/ogg",
        _ => return Err(MediaError::UnsupportedContentType(content_type.to_owned())),
    };
    TYPES
        .iter()
        .find(|(ct, _)| *ct == canonical)
        .map(|&(ct, ext)| (ct, ext))
        .ok_or_else(|| MediaError::UnsupportedContentType(content_type.to_owned()))
}

/// Makes temporary names unique within the process; the pid covers other
/// processes sharing the directory.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl MediaStore {
    /// Opens (creating if needed) a store rooted at `root`, e.g. `<data_dir>/media`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, MediaError> {
        let root = root.into();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        Ok(Self { root, tmp })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stores `bytes` as `<sha256>.<ext>` and describes it. Idempotent: storing
    /// the same bytes again returns the existing file without rewriting it.
    /// The file appears atomically (temp file, fsync, rename), so readers never
    /// see a partial file and a crash leaves at most a stray file in `tmp/`.
    pub async fn put(&self, bytes: Vec<u8>, content_type: &str) -> Result<MediaRef, MediaError> {
        let (ct, ext) = canonical_type(content_type)?;
        if bytes.is_empty() {
            return Err(MediaError::InvalidInput("empty media file".into()));
        }
        let root = self.root.clone();
        let tmp = self.tmp.clone();
        // Hashing and fsync are blocking work; keep them off the async workers.
        tokio::task::spawn_blocking(move || put_blocking(&root, &tmp, &bytes, ct, ext))
            .await
            .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
    }

    /// Path of the stored file, if present. Errors only on an invalid hash.
    pub async fn get_path(&self, sha256: &str) -> Result<Option<PathBuf>, MediaError> {
        Ok(self
            .stat(sha256)
            .await?
            .map(|m| self.root.join(m.file_name)))
    }

    /// Describes the stored file, if present.
    pub async fn stat(&self, sha256: &str) -> Result<Option<MediaRef>, MediaError> {
        let sha = normalize_hash(sha256)?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || existing(&root, &sha))
            .await
            .map_err(|e| MediaError::Io(std::io::Error::other(e)))?
    }

    /// Opens the stored file for reading, if present. The size in the returned
    /// [`MediaRef`] is taken from the open handle, so it matches what is read.
    pub async fn open(&self, sha256: &str) -> Result<Option<MediaFile>, MediaError> {
        let Some(mut media) = self.stat(sha256).await? else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(self.root.join(&media.file_name)).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        media.size = file.metadata().await?.len();
        Ok(Some(MediaFile { file, media }))
    }
}

fn existing(root: &Path, sha: &str) -> Result<Option<MediaRef>, MediaError> {
    for &(ct, ext) in TYPES {
        let file_name = format!("{sha}.{ext}");
        match std::fs::metadata(root.join(&file_name)) {
            Ok(meta) if meta.is_file() => {
                return Ok(Some(MediaRef {
                    sha256: sha.to_owned(),
                    size: meta.len(),
                    content_type: ct.to_owned(),
                    file_name,
                }));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

fn put_blocking(
    root: &Path,
    tmp_dir: &Path,
    bytes: &[u8],
    ct: &'static str,
    ext: &'static str,
) -> Result<MediaRef, MediaError> {
    let sha = hex::encode(Sha256::digest(bytes));
    // The same bytes cannot honestly be two types, so whichever was stored
    // first wins.
    if let Some(found) = existing(root, &sha)? {
        return Ok(found);
    }
    let file_name = format!("{sha}.{ext}");
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp_path = tmp_dir.join(format!("{sha}.{}.{n}.part", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp_path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp_path, root.join(&file_name))?;
        // Persist the rename itself.
        std::fs::File::open(root)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e.into());
    }
    Ok(MediaRef {
        sha256: sha,
        size: bytes.len() as u64,
        content_type: ct.to_owned(),
        file_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_types() {
        assert_eq!(
            canonical_type("audio/x-wav").ok(),
            Some(("audio/wav", "wav"))
        );
        assert_eq!(
            canonical_type("Audio/MPEG; charset=x").ok(),
            Some(("audio/mpeg", "mp3"))
        );
        assert!(canonical_type("text/html").is_err());
        assert!(canonical_type("image/svg+xml").is_err());
    }

    #[test]
    fn hash_validation() {
        assert!(is_valid_sha256(&"a".repeat(64)));
        assert!(!is_valid_sha256(&"a".repeat(63)));
        assert!(!is_valid_sha256(&format!("{}/", "a".repeat(63))));
        assert!(!is_valid_sha256("../../etc/passwd"));
    }
}
