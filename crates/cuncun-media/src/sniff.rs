use crate::MediaError;

pub const AUDIO_WAV: &str = "audio/wav";
pub const AUDIO_MPEG: &str = "audio/mpeg";
pub const AUDIO_OGG: &str = "audio/ogg";

/// Largest accepted upload: 50 MiB (about 50 minutes of 128 kbit/s MP3).
pub const MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;

/// Identifies uploaded audio by its content, never by file name or the
/// client's claimed type. Accepts WAV (RIFF/WAVE), MP3 (ID3v2 tag or MPEG
/// audio frame sync) and Ogg (Vorbis, Opus, FLAC or Speex inside); anything
/// else is rejected with an error that says what it looked like.
pub fn sniff_audio(bytes: &[u8]) -> Result<&'static str, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::NotAudio("the file is empty".into()));
    }
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(MediaError::TooLarge {
            size: bytes.len() as u64,
            max: MAX_UPLOAD_BYTES as u64,
        });
    }
    if bytes.starts_with(b"RIFF") {
        if bytes.len() >= 12 && &bytes[8..12] == b"WAVE" {
            return Ok(AUDIO_WAV);
        }
        return Err(MediaError::NotAudio(
            "RIFF container but not WAVE (e.g. AVI or WebP)".into(),
        ));
    }
    if bytes.starts_with(b"OggS") {
        return sniff_ogg(bytes);
    }
    if bytes.starts_with(b"ID3") {
        // ID3v2: "ID3", version (major, revision; never 0xFF), flags, then a
        // 4-byte size whose bytes all have the top bit clear.
        if bytes.len() >= 10
            && bytes[3] != 0xFF
            && bytes[4] != 0xFF
            && bytes[6..10].iter().all(|b| b & 0x80 == 0)
        {
            return Ok(AUDIO_MPEG);
        }
        return Err(MediaError::NotAudio("malformed ID3 tag header".into()));
    }
    if bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] & 0xE0 == 0xE0 {
        return sniff_mpeg_frame(bytes);
    }
    Err(MediaError::NotAudio(describe_unknown(bytes)))
}

fn sniff_ogg(bytes: &[u8]) -> Result<&'static str, MediaError> {
    // Page header is 27 bytes plus a segment table; the first packet of the
    // first page names the codec.
    if bytes.len() < 28 || bytes[4] != 0 {
        return Err(MediaError::NotAudio(
            "truncated or unknown-version Ogg page".into(),
        ));
    }
    let packet = 27 + usize::from(bytes[26]);
    let first = bytes.get(packet..).unwrap_or_default();
    const CODECS: &[&[u8]] = &[b"\x01vorbis", b"OpusHead", b"\x7fFLAC", b"Speex   "];
    if CODECS.iter().any(|c| first.starts_with(c)) {
        return Ok(AUDIO_OGG);
    }
    if first.starts_with(b"\x80theora") {
        return Err(MediaError::NotAudio("Ogg Theora video, not audio".into()));
    }
    Err(MediaError::NotAudio(
        "Ogg container without a known audio codec (Vorbis, Opus, FLAC, Speex)".into(),
    ))
}

/// Checks an MPEG audio frame header, and when the file is long enough, that
/// another frame header follows where this one says it ends: two consecutive
/// frames rule out binary data that merely starts with 0xFFE.
fn sniff_mpeg_frame(bytes: &[u8]) -> Result<&'static str, MediaError> {
    let Some(len) = mpeg_frame_len(bytes) else {
        if bytes.len() >= 2 && bytes[1] & 0x06 == 0 {
            return Err(MediaError::NotAudio(
                "AAC (ADTS) stream; convert to MP3 or Ogg".into(),
            ));
        }
        return Err(MediaError::NotAudio(
            "invalid MPEG audio frame header".into(),
        ));
    };
    match bytes.get(len..) {
        Some(next) if next.len() >= 4 => {
            if mpeg_frame_len(next).is_some() {
                Ok(AUDIO_MPEG)
            } else {
                Err(MediaError::NotAudio(
                    "MPEG frame header not followed by another frame".into(),
                ))
            }
        }
        // Shorter than two frames: a single valid header is all we can check.
        _ => Ok(AUDIO_MPEG),
    }
}

/// Frame length in bytes of the MPEG audio frame starting at `b`, if its
/// header is valid. Free-format (bitrate index 0) is rejected: rare, and its
/// frames cannot be located from the header.
fn mpeg_frame_len(b: &[u8]) -> Option<usize> {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (b[1] >> 3) & 0x03; // 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    let layer = (b[1] >> 1) & 0x03; // 0: reserved, 1: III, 2: II, 3: I
    let bitrate_idx = usize::from(b[2] >> 4);
    let rate_idx = usize::from((b[2] >> 2) & 0x03);
    let padding = usize::from((b[2] >> 1) & 0x01);
    if version == 1 || layer == 0 || bitrate_idx == 0 || bitrate_idx == 15 || rate_idx == 3 {
        return None;
    }
    const V1_L1: [usize; 15] = [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ];
    const V1_L2: [usize; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ];
    const V1_L3: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2_L1: [usize; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ];
    const V2_L23: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let kbps = match (version == 3, layer) {
        (true, 3) => V1_L1,
        (true, 2) => V1_L2,
        (true, _) => V1_L3,
        (false, 3) => V2_L1,
        (false, _) => V2_L23,
    }[bitrate_idx];
    let sample_rate = match version {
        3 => [44100, 48000, 32000],
        2 => [22050, 24000, 16000],
        _ => [11025, 12000, 8000],
    }[rate_idx];
    let bps = kbps * 1000;
    let len = match layer {
        3 => (12 * bps / sample_rate + padding) * 4,
        1 if version != 3 => 72 * bps / sample_rate + padding,
        _ => 144 * bps / sample_rate + padding,
    };
    // A frame must at least hold its own header.
    (len >= 4).then_some(len)
}

/// Names what an unaccepted file looks like, so the operator knows what to fix.
fn describe_unknown(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    let known: &[(&[u8], usize, &str)] = &[
        (b"fLaC", 0, "bare FLAC; wrap it in Ogg or convert to MP3"),
        (b"ftyp", 4, "MP4/M4A/AAC; convert to MP3 or Ogg"),
        (
            b"\x1a\x45\xdf\xa3",
            0,
            "WebM/Matroska; convert to Ogg or MP3",
        ),
        (b"FORM", 0, "AIFF; convert to WAV"),
        (b"#!AMR", 0, "AMR; convert to MP3 or WAV"),
        (b"%PDF", 0, "a PDF document"),
        (b"PK\x03\x04", 0, "a ZIP archive (or Office document)"),
        (b"\x89PNG", 0, "a PNG image"),
        (b"\xff\xd8\xff", 0, "a JPEG image"),
    ];
    for (magic, at, what) in known {
        if bytes.get(*at..*at + magic.len()) == Some(*magic) {
            return format!("looks like {what}");
        }
    }
    let sample = &bytes[..bytes.len().min(512)];
    // Cut at a char boundary may make the last char invalid; tolerate that.
    let texty = match std::str::from_utf8(sample) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&sample[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
    .is_some_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()));
    if texty {
        return "looks like text, not audio".into();
    }
    format!(
        "unrecognized content starting with bytes {}",
        hex::encode(head)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp3_frame() -> Vec<u8> {
        // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes.
        let mut f = vec![0u8; 417];
        f[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x00]);
        f
    }

    #[test]
    fn accepts_known_formats() {
        let mut wav = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        wav.extend_from_slice(&[0; 32]);
        assert_eq!(sniff_audio(&wav).ok(), Some(AUDIO_WAV));

        let id3 = b"ID3\x04\x00\x00\x00\x00\x01\x00rest".to_vec();
        assert_eq!(sniff_audio(&id3).ok(), Some(AUDIO_MPEG));

        let mut two = mp3_frame();
        two.extend(mp3_frame());
        assert_eq!(sniff_audio(&two).ok(), Some(AUDIO_MPEG));

        let mut ogg = b"OggS\x00\x02".to_vec();
        ogg.extend_from_slice(&[0; 20]);
        ogg.push(1); // one segment
        ogg.push(19); // of 19 bytes
        ogg.extend_from_slice(b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0");
        assert_eq!(sniff_audio(&ogg).ok(), Some(AUDIO_OGG));
    }

    #[test]
    fn rejects_with_reason() {
        let msg = |b: &[u8]| {
            sniff_audio(b)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(msg(b"").contains("empty"));
        assert!(msg("紧急通知：请撤离\n".as_bytes()).contains("text"));
        assert!(msg(b"RIFF\0\0\0\0AVI LIST").contains("not WAVE"));
        assert!(msg(b"\0\0\0\x20ftypM4A \0\0\0\0").contains("MP4"));
        assert!(msg(&[0xFF, 0xF1, 0x50, 0x80, 0, 0]).contains("AAC"));
        let mut bad = mp3_frame();
        bad.extend_from_slice(b"not a frame");
        assert!(msg(&bad).contains("not followed"));
        assert!(msg(&[0x00, 0x01, 0x02, 0x03]).contains("00010203"));
    }

    #[test]
    fn rejects_oversize() {
        let big = vec![0u8; MAX_UPLOAD_BYTES + 1];
        assert!(matches!(
            sniff_audio(&big),
            Err(MediaError::TooLarge { .. })
        ));
    }
}
