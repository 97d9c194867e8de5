//! Speech for announcements: text spoken by espeak-ng with the bundled prompts' voice, or a
//! recording converted with sox, as an 8 kHz mono 16-bit WAV. Used by `announce set` and the
//! console. Runs programs: call it off the async threads (`spawn_blocking`).

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("cannot run {program} ({source}): install it (apt-get install {package})")]
    Missing {
        program: &'static str,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("{0} failed")]
    Failed(String),
    #[error("the recording is not audio sox can read")]
    NotAudio,
    #[error("the announcement lasts {0:.1} s: keep it between 0.5 and 60 s")]
    Length(f64),
    #[error("a temporary file: {0}")]
    Io(#[from] std::io::Error),
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Result<TempDir, SpeechError> {
    let dir = std::env::temp_dir().join(format!(
        "astreinte-speech-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(TempDir(dir))
}

/// `text` spoken in `voice` ("fr", "en-us"), or the recording at `wav` converted, as WAV bytes
/// (8 kHz mono 16-bit, about −3 dBFS peak), 0.5 to 60 s long.
pub fn announcement_wav(
    text: &str,
    voice: &str,
    wav: Option<&Path>,
) -> Result<Vec<u8>, SpeechError> {
    let dir = temp_dir()?;
    let source = match wav {
        Some(p) => p.to_path_buf(),
        None => {
            let spoken = dir.0.join("spoken.wav");
            let status = Command::new("espeak-ng")
                .args(["-v", voice, "-s", "150", "-w"])
                .arg(&spoken)
                .arg(text)
                .status()
                .map_err(|source| SpeechError::Missing {
                    program: "espeak-ng",
                    package: "espeak-ng",
                    source,
                })?;
            if !status.success() {
                return Err(SpeechError::Failed(format!("espeak-ng ({status})")));
            }
            spoken
        }
    };
    let out = dir.0.join("announcement.wav");
    let status = Command::new("sox")
        .arg(&source)
        .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(&out)
        .args(["gain", "-n", "-3"])
        .status()
        .map_err(|source| SpeechError::Missing {
            program: "sox",
            package: "sox",
            source,
        })?;
    if !status.success() {
        return Err(SpeechError::NotAudio);
    }
    let bytes = std::fs::read(&out)?;
    let reader =
        hound::WavReader::new(std::io::Cursor::new(&bytes)).map_err(|_| SpeechError::NotAudio)?;
    let seconds = f64::from(reader.duration()) / 8000.0;
    if !(0.5..=60.0).contains(&seconds) {
        return Err(SpeechError::Length(seconds));
    }
    Ok(bytes)
}
