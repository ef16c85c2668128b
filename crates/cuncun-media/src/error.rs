use std::time::Duration;

/// Everything that can go wrong in this crate. Messages are meant to be shown
/// to an operator as-is, so each names what was wrong and, where there is one,
/// the fix.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("{program} not found: apt-get install espeak-ng")]
    EngineMissing { program: String },

    #[error("TTS engine {engine} failed ({status}): {stderr}")]
    EngineFailed {
        engine: String,
        status: String,
        stderr: String,
    },

    #[error("TTS engine {engine} did not finish within {timeout:?}")]
    EngineTimeout { engine: String, timeout: Duration },

    #[error("invalid TTS input: {0}")]
    InvalidInput(String),

    #[error("invalid media id {0:?}: expected 64 hexadecimal characters (a SHA-256)")]
    InvalidHash(String),

    #[error("unsupported content type {0:?}: accepted are audio/wav, audio/mpeg, audio/ogg")]
    UnsupportedContentType(String),

    #[error("file too large: {size} bytes, the limit is {max} bytes")]
    TooLarge { size: u64, max: u64 },

    #[error("not a supported audio file (WAV, MP3, Ogg): {0}")]
    NotAudio(String),

    #[error("media I/O: {0}")]
    Io(#[from] std::io::Error),
}
