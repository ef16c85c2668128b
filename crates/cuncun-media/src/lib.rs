//! Audio for emergency messages.
//!
//! * [`Tts`] turns text into WAV; [`EspeakTts`] does it offline with the
//!   `espeak-ng` program (Debian package `espeak-ng`) for Mandarin and English.
//! * [`MediaStore`] keeps audio content-addressed as `<sha256>.<ext>`.
//! * [`TtsCache`] renders through a [`Tts`] once per (engine, language, voice,
//!   text) and reuses the stored file afterwards.
//! * [`routes`] serves `GET`/`HEAD /media/{sha256}` with single-range support,
//!   so terminals fetch audio over HTTP (never inside MQTT) and check the
//!   SHA-256 themselves.
//! * [`sniff_audio`] validates uploaded audio (WAV, MP3, Ogg).

mod cache;
mod error;
mod espeak;
mod http;
mod sniff;
mod store;
mod tts;
mod wav;

pub use cache::{TtsCache, cache_key};
pub use error::MediaError;
pub use espeak::{DEFAULT_TIMEOUT, EspeakTts, MAX_TEXT_BYTES};
pub use http::{ByteRange, RangeRequest, parse_range, routes};
pub use sniff::{AUDIO_MPEG, AUDIO_OGG, AUDIO_WAV, MAX_UPLOAD_BYTES, sniff_audio};
pub use store::{MediaFile, MediaRef, MediaStore, is_valid_sha256};
pub use tts::{Lang, Tts, VoiceOpts};
pub use wav::fix_streamed_wav_header;
