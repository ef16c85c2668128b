use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::wav::fix_streamed_wav_header;
use crate::{Lang, MediaError, Tts, VoiceOpts};

/// How long one synthesis may take before the process is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest text accepted, in bytes of UTF-8. Bounds CPU time and output size
/// (an emergency message is a few hundred characters).
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Offline TTS through the `espeak-ng` program (Debian package `espeak-ng`).
///
/// The text never appears on the command line: it is written to the child's
/// stdin (`--stdin`), so a text like `-w /etc/passwd` is just spoken, and no
/// shell is involved. SSML is not enabled (`-m` is not passed).
#[derive(Debug, Clone)]
pub struct EspeakTts {
    program: OsString,
    timeout: Duration,
}

impl Default for EspeakTts {
    fn default() -> Self {
        Self::new()
    }
}

impl EspeakTts {
    /// Uses `espeak-ng` from `PATH` with [`DEFAULT_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            program: OsString::from("espeak-ng"),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Uses another executable (an absolute path, or a name looked up in `PATH`).
    pub fn with_program(mut self, program: impl Into<OsString>) -> Self {
        self.program = program.into();
        self
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The espeak-ng voice used for a language.
    pub fn voice_for(lang: Lang) -> &'static str {
        match lang {
            // Not plain `cmn`: in espeak-ng 1.51 (Debian 12) its dictionary
            // gives many common characters (暴, 色, 警, 标...) as pinyin text,
            // which `cmn` then reads with English rules ("bao four").
            // `cmn-latn-pinyin` reads that pinyin as Mandarin; the cost is
            // that embedded English words are read as pinyin too.
            Lang::Zh => "cmn-latn-pinyin",
            Lang::En => "en",
        }
    }

    fn program_display(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

#[async_trait]
impl Tts for EspeakTts {
    fn name(&self) -> &str {
        // Part of the cache key: change it if `voice_for` or the argument
        // set changes, so old renderings are not reused.
        "espeak-ng"
    }

    async fn synthesize(
        &self,
        text: &str,
        lang: Lang,
        voice: &VoiceOpts,
    ) -> Result<Vec<u8>, MediaError> {
        if text.trim().is_empty() {
            return Err(MediaError::InvalidInput("text is empty".into()));
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(MediaError::InvalidInput(format!(
                "text is {} bytes, the limit is {MAX_TEXT_BYTES}",
                text.len()
            )));
        }
        voice.validate()?;

        let mut cmd = Command::new(&self.program);
        // Every argument is ours; the untrusted text goes through stdin only.
        cmd.arg("-v")
            .arg(Self::voice_for(lang))
            .arg("-s")
            .arg(voice.rate_wpm.to_string())
            .arg("-a")
            .arg(voice.amplitude.to_string())
            .arg("-p")
            .arg(voice.pitch.to_string())
            .arg("-b")
            .arg("1") // input is UTF-8
            .arg("--stdin")
            .arg("--stdout")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out or abandoned synthesis must not leave a process behind.
            .kill_on_drop(true);

        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                MediaError::EngineMissing {
                    program: self.program_display(),
                }
            } else {
                MediaError::Io(e)
            }
        })?;

        // Written from a separate task so a child that fills its stdout pipe
        // before reading all input cannot deadlock us.
        let writer = child.stdin.take().map(|mut stdin| {
            let input = text.as_bytes().to_vec();
            tokio::spawn(async move {
                // A write error means the child exited early; its exit status
                // and stderr below explain why, so the error itself is dropped.
                let _ = stdin.write_all(&input).await;
                let _ = stdin.shutdown().await;
            })
        });

        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out?,
            Err(_) => {
                if let Some(w) = writer {
                    w.abort();
                }
                return Err(MediaError::EngineTimeout {
                    engine: self.name().to_owned(),
                    timeout: self.timeout,
                });
            }
        };
        if let Some(w) = writer {
            let _ = w.await;
        }

        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(500).collect();
        if !output.status.success() {
            return Err(MediaError::EngineFailed {
                engine: self.name().to_owned(),
                status: output.status.to_string(),
                stderr,
            });
        }
        let mut wav = output.stdout;
        if !fix_streamed_wav_header(&mut wav) || wav.len() <= 44 {
            return Err(MediaError::EngineFailed {
                engine: self.name().to_owned(),
                status: format!("produced {} bytes that are not a WAV with audio", wav.len()),
                stderr,
            });
        }
        Ok(wav)
    }
}
