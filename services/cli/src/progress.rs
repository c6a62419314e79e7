//! Upload bodies that report their progress: the bytes are streamed to the HTTP client through
//! a counting wrapper, so the bar moves as the client takes them (not as they are read), drawn
//! on stderr when asked (stderr is a terminal) and hidden otherwise.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncReadExt;

use crate::api::Upload;

/// Bytes per chunk handed to the HTTP client.
const CHUNK: usize = 64 * 1024;

/// A progress bar of `len` bytes labelled `label`: on stderr when `show`, else hidden (it
/// still counts).
pub fn bar(len: u64, label: &str, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}

/// `chunks` with each chunk counted on `bar` as the consumer takes it.
pub fn counted<S, E>(chunks: S, bar: ProgressBar) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    chunks.inspect_ok(move |chunk| bar.inc(chunk.len() as u64))
}

/// `bytes` in chunks of [`CHUNK`].
fn memory_chunks(bytes: Bytes) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let count = bytes.len().div_ceil(CHUNK);
    futures::stream::iter((0..count).map(move |i| {
        let end = ((i + 1) * CHUNK).min(bytes.len());
        Ok(bytes.slice(i * CHUNK..end))
    }))
}

/// The file `file`, read in chunks of [`CHUNK`] as they are asked for.
fn file_chunks(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; CHUNK];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    })
}

/// An upload of `bytes` whose progress shows on `bar`.
pub fn upload_bytes(bytes: Bytes, content_type: &'static str, bar: &ProgressBar) -> Upload {
    let len = bytes.len() as u64;
    Upload {
        body: reqwest::Body::wrap_stream(counted(memory_chunks(bytes), bar.clone())),
        content_type,
        len,
        headers: Vec::new(),
    }
}

/// An upload of the file at `path`, streamed from disk, whose progress shows on a bar
/// labelled `label` (drawn when `show`); the bar is returned to be finished when the answer
/// comes.
pub async fn upload_file(
    path: &Path,
    content_type: &'static str,
    label: &str,
    show: bool,
) -> anyhow::Result<(Upload, ProgressBar)> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let len = file
        .metadata()
        .await
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let bar = bar(len, label, show);
    let body = reqwest::Body::wrap_stream(counted(file_chunks(file), bar.clone()));
    let upload = Upload {
        body,
        content_type,
        len,
        headers: Vec::new(),
    };
    Ok((upload, bar))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn the_bar_counts_every_byte_the_consumer_takes() {
        let bytes = Bytes::from(vec![7u8; CHUNK * 2 + 10]);
        let bar = bar(bytes.len() as u64, "test", false);
        let mut stream = std::pin::pin!(counted(memory_chunks(bytes.clone()), bar.clone()));
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.len(), CHUNK);
        assert_eq!(bar.position(), CHUNK as u64, "counted as taken, not ahead");
        let mut rest = Vec::new();
        while let Some(chunk) = stream.next().await {
            rest.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(bar.position(), bytes.len() as u64);
        assert_eq!([&first[..], &rest[..]].concat(), bytes.to_vec());
    }

    #[tokio::test]
    async fn a_file_streams_whole_in_chunks() {
        let dir = std::env::temp_dir().join(format!("refract-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data.bin");
        let data: Vec<u8> = (0..(CHUNK * 3 + 1)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let bar = bar(data.len() as u64, "file", false);
        let chunks: Vec<Bytes> = counted(file_chunks(file), bar.clone())
            .try_collect()
            .await
            .unwrap();
        assert!(chunks.len() >= 4, "{} chunks", chunks.len());
        assert_eq!(chunks.concat(), data);
        assert_eq!(bar.position(), data.len() as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
