mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use cuncun_media::{Lang, MediaError, MediaStore, Tts, TtsCache, VoiceOpts, cache_key};

/// Counts calls and returns a tiny WAV that depends on the input.
struct CountingTts {
    calls: AtomicUsize,
}

#[async_trait]
impl Tts for CountingTts {
    fn name(&self) -> &str {
        "counting-fake"
    }

    async fn synthesize(
        &self,
        text: &str,
        lang: Lang,
        voice: &VoiceOpts,
    ) -> Result<Vec<u8>, MediaError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let payload = format!("{}|{}|{:?}", lang.as_str(), text, voice);
        let mut w = b"RIFF\0\0\0\0WAVEdata".to_vec();
        w.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        w.extend_from_slice(payload.as_bytes());
        Ok(w)
    }
}

fn fake() -> CountingTts {
    CountingTts {
        calls: AtomicUsize::new(0),
    }
}

#[tokio::test]
async fn second_render_is_a_hit() {
    let dir = common::TempDir::new("cache");
    let store = Arc::new(MediaStore::new(dir.path().join("media")).expect("store"));
    let cache = TtsCache::new(store.clone()).expect("cache");
    let tts = fake();
    let v = VoiceOpts::default();

    let a = cache
        .render(&tts, "暴雨橙色预警", Lang::Zh, &v)
        .await
        .expect("render");
    let b = cache
        .render(&tts, "暴雨橙色预警", Lang::Zh, &v)
        .await
        .expect("render");
    assert_eq!(a, b);
    assert_eq!(tts.calls.load(Ordering::SeqCst), 1);
    assert_eq!(a.content_type, "audio/wav");
    assert_eq!(a.file_name, format!("{}.wav", a.sha256));
    assert!(store.get_path(&a.sha256).await.expect("path").is_some());

    // Every part of the key matters.
    cache
        .render(&tts, "暴雨橙色预警", Lang::En, &v)
        .await
        .expect("render");
    cache
        .render(&tts, "暴雨红色预警", Lang::Zh, &v)
        .await
        .expect("render");
    let slow = VoiceOpts {
        rate_wpm: 120,
        ..v.clone()
    };
    cache
        .render(&tts, "暴雨橙色预警", Lang::Zh, &slow)
        .await
        .expect("render");
    assert_eq!(tts.calls.load(Ordering::SeqCst), 4);

    // The index is on disk: a restarted process still hits.
    let cache2 = TtsCache::new(store.clone()).expect("cache");
    let c = cache2
        .render(&tts, "暴雨橙色预警", Lang::Zh, &v)
        .await
        .expect("render");
    assert_eq!(c, a);
    assert_eq!(tts.calls.load(Ordering::SeqCst), 4);

    // Media deleted behind the cache's back: rendered again, not a dangling ref.
    std::fs::remove_file(store.root().join(&a.file_name)).expect("rm");
    let d = cache2
        .render(&tts, "暴雨橙色预警", Lang::Zh, &v)
        .await
        .expect("render");
    assert_eq!(d, a);
    assert_eq!(tts.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn concurrent_renders_run_the_engine_once() {
    let dir = common::TempDir::new("cache-conc");
    let store = Arc::new(MediaStore::new(dir.path()).expect("store"));
    let cache = Arc::new(TtsCache::new(store).expect("cache"));
    let tts = Arc::new(fake());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (cache, tts) = (cache.clone(), tts.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .render(tts.as_ref(), "same", Lang::En, &VoiceOpts::default())
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("render");
    }
    assert_eq!(tts.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn key_is_unambiguous() {
    let v = VoiceOpts::default();
    assert_ne!(
        cache_key("ab", "c", Lang::En, &v),
        cache_key("a", "bc", Lang::En, &v)
    );
    assert_eq!(
        cache_key("e", "t", Lang::Zh, &v),
        cache_key("e", "t", Lang::Zh, &v)
    );
}

#[tokio::test]
async fn store_put_is_idempotent_and_validated() {
    let dir = common::TempDir::new("store");
    let store = MediaStore::new(dir.path()).expect("store");
    let bytes = b"ID3\x04\0\0\0\0\0\0audio".to_vec();
    let a = store.put(bytes.clone(), "audio/mpeg").await.expect("put");
    let b = store.put(bytes.clone(), "audio/mp3").await.expect("put");
    assert_eq!(a, b);
    assert_eq!(a.file_name, format!("{}.mp3", a.sha256));
    assert_eq!(a.size, bytes.len() as u64);
    let on_disk = std::fs::read(store.root().join(&a.file_name)).expect("read");
    assert_eq!(on_disk, bytes);
    // No temp files left behind.
    assert_eq!(
        std::fs::read_dir(store.root().join("tmp"))
            .expect("tmp")
            .count(),
        0
    );

    let upper = a.sha256.to_ascii_uppercase();
    let opened = store.open(&upper).await.expect("open").expect("present");
    assert_eq!(opened.media, a);

    assert!(matches!(
        store.put(b"<html>".to_vec(), "text/html").await,
        Err(MediaError::UnsupportedContentType(_))
    ));
    assert!(matches!(
        store.get_path("../../etc/passwd").await,
        Err(MediaError::InvalidHash(_))
    ));
    assert!(store.open(&"0".repeat(64)).await.expect("open").is_none());
}
