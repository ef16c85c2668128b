use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::{Lang, MediaError, MediaRef, MediaStore, Tts, VoiceOpts, is_valid_sha256};

/// Number of lock stripes; bounds memory while making concurrent renders of
/// the same text wait for one another instead of running the engine twice.
const STRIPES: usize = 16;

/// Cache key: hex SHA-256 over a versioned, length-prefixed encoding of
/// (engine name, language, voice options, text). Length prefixes keep
/// different field splits from colliding ("ab"+"c" vs "a"+"bc").
pub fn cache_key(engine: &str, text: &str, lang: Lang, voice: &VoiceOpts) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(b"cuncun-tts-v1");
    field(engine.as_bytes());
    field(lang.as_str().as_bytes());
    field(&voice.rate_wpm.to_be_bytes());
    field(&voice.amplitude.to_be_bytes());
    field(&[voice.pitch]);
    field(text.as_bytes());
    hex::encode(h.finalize())
}

/// Renders text through a [`Tts`] at most once per cache key; the audio lives
/// in the [`MediaStore`], and `<store root>/tts-index/<key>` holds the media's
/// SHA-256. The index survives restarts, so a repeated alert is served from
/// disk without running the engine.
pub struct TtsCache {
    store: Arc<MediaStore>,
    index_dir: PathBuf,
    stripes: Vec<Mutex<()>>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TtsCache {
    pub fn new(store: Arc<MediaStore>) -> Result<Self, MediaError> {
        let index_dir = store.root().join("tts-index");
        std::fs::create_dir_all(&index_dir)?;
        Ok(Self {
            store,
            index_dir,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        })
    }

    pub fn store(&self) -> &Arc<MediaStore> {
        &self.store
    }

    /// Returns the stored audio for this input, synthesizing it only on a miss.
    pub async fn render(
        &self,
        tts: &dyn Tts,
        text: &str,
        lang: Lang,
        voice: &VoiceOpts,
    ) -> Result<MediaRef, MediaError> {
        let key = cache_key(tts.name(), text, lang, voice);
        let stripe = usize::from_str_radix(&key[..1], 16).unwrap_or(0) % STRIPES;
        let _guard = self.stripes[stripe].lock().await;

        let index_path = self.index_dir.join(&key);
        if let Some(hit) = self.lookup(&index_path).await? {
            tracing::debug!(key, sha256 = hit.sha256, "tts cache hit");
            return Ok(hit);
        }

        let started = Instant::now();
        let wav = tts.synthesize(text, lang, voice).await?;
        let media = self.store.put(wav, "audio/wav").await?;
        tracing::info!(
            engine = tts.name(),
            lang = lang.as_str(),
            key,
            sha256 = media.sha256,
            size = media.size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tts rendered"
        );

        // Index written atomically so a crash never leaves a half-written hash.
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .index_dir
            .join(format!("{key}.{}.{n}.part", std::process::id()));
        tokio::fs::write(&tmp, media.sha256.as_bytes()).await?;
        if let Err(e) = tokio::fs::rename(&tmp, &index_path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Ok(media)
    }

    /// An index entry whose media was deleted, or that is corrupt, is a miss.
    async fn lookup(&self, index_path: &std::path::Path) -> Result<Option<MediaRef>, MediaError> {
        let sha = match tokio::fs::read_to_string(index_path).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let sha = sha.trim();
        if !is_valid_sha256(sha) {
            tracing::warn!(path = %index_path.display(), "corrupt tts index entry; re-rendering");
            return Ok(None);
        }
        self.store.stat(sha).await
    }
}
