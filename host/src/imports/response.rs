//! `refract:automation/response`: a webhook run's answer streamed while it runs. The host checks
//! the head and each chunk, counts the bytes against the run's limit and hands the parts to the
//! runtime in order ([`crate::answer`]).

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::parse_json;
use crate::answer::{AnswerPart, MIN_KEEP_ALIVE};
use crate::bindings::response::{Host, StreamError};
use crate::store::RunCtx;

/// `data: ` and the blank line that ends an event.
const EVENT_FRAMING: u64 = 8;

impl Host for RunCtx {
    async fn start(
        &mut self,
        status: u16,
        headers: Vec<(String, String)>,
        keep_alive_ms: Option<u32>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let Some(answer) = self.answer.as_ref() else {
            return Ok(Err(StreamError::NoClient));
        };
        if answer.started {
            return Ok(Err(StreamError::Invalid(
                "the answer has already started".into(),
            )));
        }
        if !(100..=599).contains(&status) {
            return Ok(Err(StreamError::Invalid(format!(
                "status {status} is not between 100 and 599"
            ))));
        }
        if let Some((name, _)) = headers.iter().find(|(n, v)| {
            HeaderName::from_bytes(n.as_bytes()).is_err() || HeaderValue::from_str(v).is_err()
        }) {
            return Ok(Err(StreamError::Invalid(format!(
                "the header {name:?} is not a valid HTTP header"
            ))));
        }
        let size = headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>() as u64;
        let keep_alive =
            keep_alive_ms.map(|ms| Duration::from_millis(ms.into()).max(MIN_KEEP_ALIVE));
        let head = AnswerPart::Head {
            status,
            headers,
            keep_alive,
        };
        Ok(self.answer_part(head, size).await)
    }

    async fn send(&mut self, chunk: String) -> wasmtime::Result<Result<(), StreamError>> {
        if self.answer.is_none() {
            return Ok(Err(StreamError::NoClient));
        }
        // One event is one `data:` line: the guest's JSON, checked and made compact.
        let data = match parse_json("the chunk", &chunk) {
            Ok(value) => value.to_string(),
            Err(e) => return Ok(Err(StreamError::Invalid(e))),
        };
        if !self.answer.as_ref().is_some_and(|a| a.started) {
            let head = AnswerPart::Head {
                status: 200,
                headers: Vec::new(),
                keep_alive: None,
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
            Ok(())
        } else {
            Err(StreamError::Closed)
        }
    }
}
