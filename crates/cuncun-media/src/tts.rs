use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::MediaError;

/// Languages the platform announces in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Mandarin Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    /// Stable short code; part of the TTS cache key, so never change it.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// Engine-neutral voice settings. Values use espeak-ng's scales because they
/// are the concrete ones we have; another engine maps them onto its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct VoiceOpts {
    /// Speaking rate in words per minute, 80..=450.
    pub rate_wpm: u16,
    /// Loudness, 0..=200 (100 is the engine's normal).
    pub amplitude: u16,
    /// Pitch, 0..=99 (50 is normal).
    pub pitch: u8,
}

impl Default for VoiceOpts {
    fn default() -> Self {
        // Slightly slower than espeak-ng's 175 wpm: announcements go through
        // outdoor loudspeakers, where intelligibility beats speed.
        Self {
            rate_wpm: 150,
            amplitude: 100,
            pitch: 50,
        }
    }
}

impl VoiceOpts {
    /// Rejects values outside the documented ranges instead of clamping, so
    /// the cache key always describes what was actually rendered.
    pub fn validate(&self) -> Result<(), MediaError> {
        if !(80..=450).contains(&self.rate_wpm) {
            return Err(MediaError::InvalidInput(format!(
                "rate_wpm {} outside 80..=450",
                self.rate_wpm
            )));
        }
        if self.amplitude > 200 {
            return Err(MediaError::InvalidInput(format!(
                "amplitude {} outside 0..=200",
                self.amplitude
            )));
        }
        if self.pitch > 99 {
            return Err(MediaError::InvalidInput(format!(
                "pitch {} outside 0..=99",
                self.pitch
            )));
        }
        Ok(())
    }
}

/// A text-to-speech engine. Implementations must be usable offline.
#[async_trait]
pub trait Tts: Send + Sync {
    /// Stable engine identifier; part of the cache key, so change it when the
    /// engine's output for the same input changes meaningfully.
    fn name(&self) -> &str;

    /// Renders `text` to a complete WAV file (RIFF/WAVE) in memory.
    async fn synthesize(
        &self,
        text: &str,
        lang: Lang,
        voice: &VoiceOpts,
    ) -> Result<Vec<u8>, MediaError>;
}
