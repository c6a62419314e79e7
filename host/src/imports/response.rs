//! `refract:automation/response`: a webhook run's answer streamed while it runs. The host checks
//! the head and each chunk, counts the bytes against the run's limit and hands the parts to the
//! runtime in order ([`crate::answer`]).

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::parse_json;
use crate::answer::{AnswerPart, MAX_HEAD_BYTES, MAX_HEAD_HEADERS, MIN_KEEP_ALIVE, streams_with};
use crate::bindings::response::{Host, StreamError};
use crate::store::RunCtx;

/// `data: ` and the blank line that end an event as the runtime frames it.
const EVENT_FRAMING: u64 = 8;

impl Host for RunCtx {
    async fn start(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        keep_alive_ms: Option<u32>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        if let Err(e) = self.answer_open() {
            return Ok(Err(e));
        }
        if self.answer.as_ref().is_some_and(|a| a.started) {
            return Ok(Err(StreamError::Invalid(
                "the answer has already started".into(),
            )));
        }
        if !streams_with(status) {
            return Ok(Err(StreamError::Invalid(format!(
                "status {status} cannot carry a streamed answer (200 to 599, not 204, 205 or 304)"
            ))));
        }
        let size: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        if headers.len() > MAX_HEAD_HEADERS || size > MAX_HEAD_BYTES {
            return Ok(Err(StreamError::Invalid(format!(
                "at most {MAX_HEAD_HEADERS} headers of {MAX_HEAD_BYTES} bytes in all"
            ))));
        }
        // As in a webhook's output: headers HTTP cannot carry are dropped, not an error.
        let headers = headers
            .into_iter()
            .filter(|(n, v)| {
                HeaderName::from_bytes(n.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok()
            })
            .collect();
        let keep_alive =
            keep_alive_ms.map(|ms| Duration::from_millis(ms.into()).max(MIN_KEEP_ALIVE));
        let head = AnswerPart::Head {
            status,
            headers,
            keep_alive,
            run_ends_by: self.started + self.limits.wall_time,
        };
        Ok(self.answer_part(head, size as u64).await)
    }

    async fn send(&mut self, chunk: String) -> wasmtime::Result<Result<(), StreamError>> {
        if let Err(e) = self.answer_open() {
            return Ok(Err(e));
        }
        // Refused by its raw size before it is parsed: the host never holds more than the
        // run's remaining budget of a guest's chunk.
        let limit = self.limits.stream_bytes;
        let sent = self.answer.as_ref().map_or(0, |a| a.bytes);
        if sent.saturating_add(chunk.len() as u64 + EVENT_FRAMING) > limit {
            return Ok(Err(StreamError::TooLarge(limit)));
        }
        // One event is one `data:` line: the guest's JSON, checked and made compact.
        let data = match parse_json("the chunk", &chunk) {
            Ok(value) => value.to_string(),
            Err(e) => return Ok(Err(StreamError::Invalid(e))),
        };
        drop(chunk);
        if !self.answer.as_ref().is_some_and(|a| a.started) {
            let head = AnswerPart::Head {
                status: 200,
                headers: Vec::new(),
                keep_alive: None,
                run_ends_by: self.started + self.limits.wall_time,
            };
            if let Err(e) = self.answer_part(head, 0).await {
                return Ok(Err(e));
            }
        }
        let size = data.len() as u64 + EVENT_FRAMING;
        Ok(self.answer_part(AnswerPart::Chunk(data), size).await)
    }
}

impl RunCtx {
    /// `Ok` while the run has a client that has not gone away.
    fn answer_open(&self) -> Result<(), StreamError> {
        match &self.answer {
            None => Err(StreamError::NoClient),
            Some(a) if a.closed => Err(StreamError::Closed),
            Some(_) => Ok(()),
        }
    }

    /// Hands `part` (`size` bytes) to the client once the run's streamed-bytes limit allows it.
    async fn answer_part(&mut self, part: AnswerPart, size: u64) -> Result<(), StreamError> {
        let limit = self.limits.stream_bytes;
        let Some(answer) = self.answer.as_mut() else {
            return Err(StreamError::NoClient);
        };
        if answer.bytes.saturating_add(size) > limit {
            return Err(StreamError::TooLarge(limit));
        }
        answer.bytes += size;
        answer.started = true;
        let sink = answer.sink.clone();
        if self.io("respond", sink.send(part)).await {
            return Ok(());
        }
        if let Some(answer) = self.answer.as_mut() {
            answer.closed = true;
        }
        Err(StreamError::Closed)
    }
}
