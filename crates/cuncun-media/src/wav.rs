/// Rewrites the RIFF and `data` chunk sizes of a WAV file to match its actual
/// length. Returns `false` (and leaves the bytes alone) if it is not RIFF/WAVE.
///
/// `espeak-ng --stdout` cannot seek back, so it writes placeholder sizes
/// (0x7ffff024); some players on terminals then read past the end or refuse
/// the file. Fixing the header in memory avoids a temporary file.
pub fn fix_streamed_wav_header(wav: &mut [u8]) -> bool {
    if wav.len() < 12 || &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return false;
    }
    let Ok(riff_size) = u32::try_from(wav.len() - 8) else {
        // Over 4 GiB cannot be a valid WAV anyway; leave it to the caller.
        return true;
    };
    wav[4..8].copy_from_slice(&riff_size.to_le_bytes());

    let mut pos = 12usize;
    while pos + 8 <= wav.len() {
        let id = [wav[pos], wav[pos + 1], wav[pos + 2], wav[pos + 3]];
        let declared = u32::from_le_bytes([wav[pos + 4], wav[pos + 5], wav[pos + 6], wav[pos + 7]]);
        let body = pos + 8;
        let remaining = wav.len() - body;
        if &id == b"data" {
            if declared as usize > remaining {
                // `remaining` fits u32 because the whole file does (checked above).
                let actual = remaining as u32;
                wav[pos + 4..pos + 8].copy_from_slice(&actual.to_le_bytes());
            }
            return true;
        }
        // Chunks are padded to an even length.
        let next = body
            .saturating_add(declared as usize)
            .saturating_add((declared & 1) as usize);
        if next <= pos {
            break;
        }
        pos = next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_placeholder_sizes() {
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&0x7fff_f024u32.to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&[0u8; 16]);
        w.extend_from_slice(b"data");
        w.extend_from_slice(&0x7fff_f000u32.to_le_bytes());
        w.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        assert!(fix_streamed_wav_header(&mut w));
        assert_eq!(&w[4..8], &((w.len() - 8) as u32).to_le_bytes());
        assert_eq!(&w[40..44], &6u32.to_le_bytes());
    }

    #[test]
    fn leaves_non_wav_alone() {
        let mut b = b"hello world, not a wav".to_vec();
        let before = b.clone();
        assert!(!fix_streamed_wav_header(&mut b));
        assert_eq!(b, before);
    }
}
