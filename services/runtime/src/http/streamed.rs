//! A webhook answer streamed while its run goes on (`$http` `chunk`, the `response` import;
//! `spec/http-api.md` §6.1): server-sent events, one `data:` line per chunk the run sends, a
//! keep-alive event after each silence of the interval it asked for, and last its output
//! (unless `{}`) or its error. A stream silent for [`IDLE_CLOSE`] is closed, and so is one
//! still open past its run's wall clock and [`REPORT_GRACE`]; the run goes on, and its next
//! chunk learns that the client is gone.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use refract_host::{AnswerPart, RunOutcome, RunReport};
use refract_http::ApiError;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::answer;
use crate::error::RuntimeError;
use crate::run::output_value;

/// Silence after which a streamed answer without keep-alives is closed (http-api §1.9).
pub(super) const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// The data of a keep-alive event.
const KEEP_ALIVE: &str = r#"{"keepAlive":true}"#;
/// Time after the run's wall clock for its end to be reported before its stream is closed.
pub(super) const REPORT_GRACE: Duration = Duration::from_secs(10);
/// Bytes of a failure's error body kept for the last event (an error's details are bounded by
/// the run's output limit, 1 MiB by default).
const ERROR_BYTES: usize = 4 << 20;

type Run = JoinHandle<Result<RunReport, RuntimeError>>;

/// The streamed answer that `first` (the head, as the host sends it) starts: the run's next
/// `parts` as events, then its end.
pub(super) fn answer(
    first: AnswerPart,
    parts: mpsc::Receiver<AnswerPart>,
    run: Run,
    slug: &str,
) -> Response {
    let (status, headers, keep_alive, ends_by, pending) = match first {
        AnswerPart::Head {
            status,
            headers,
            keep_alive,
            run_ends_by,
        } => (status, headers, keep_alive, Some(run_ends_by), None),
        AnswerPart::Chunk(data) => (200, Vec::new(), None, None, Some(data)),
    };
    // The host always sends its head first; a stream without one ends soon.
    let ends_by = ends_by.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std);
    let events = Events {
        parts,
        pending,
        run: Some(run),
        keep_alive,
        slug: slug.to_owned(),
        ends_at: ends_by + REPORT_GRACE,
    };
    let body = futures::stream::unfold(events, Events::next);
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut headers = answer::guest_headers(headers.iter());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    // Proxies in front of the platform (nginx) must not hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    *response.headers_mut() = headers;
    response
}

/// The state of a streamed answer between two events.
struct Events {
    parts: mpsc::Receiver<AnswerPart>,
    /// A chunk received before its turn.
    pending: Option<String>,
    /// The run, until it has ended.
    run: Option<Run>,
    keep_alive: Option<Duration>,
    slug: String,
    ends_at: tokio::time::Instant,
}

impl Events {
    /// The next event, `None` once the run's last one is out or the stream went silent.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if let Some(data) = self.pending.take() {
            return Some((Ok(event(&data)), self));
        }
        loop {
            let run = self.run.as_mut()?;
            let quiet = self.keep_alive.map_or(IDLE_CLOSE, |k| k.min(IDLE_CLOSE));
            // Parts first: every chunk the run sent is out before its end.
            let data = tokio::select! {
                biased;
                Some(part) = self.parts.recv() => match part {
                    AnswerPart::Chunk(data) => data,
                    // The host sends one head, first; another would change nothing now.
                    AnswerPart::Head { .. } => continue,
                },
                ended = run => {
                    self.run = None;
                    last_event(ended, &self.slug).await?
                }
                () = tokio::time::sleep(quiet) => match self.keep_alive {
                    Some(_) => KEEP_ALIVE.to_owned(),
                    None => return None,
                },
                () = tokio::time::sleep_until(self.ends_at) => return None,
            };
            return Some((Ok(event(&data)), self));
        }
    }
}

/// One server-sent event carrying `data` (compact JSON: one line).
fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The last event of a run that ended: its output unless `{}` or none, else its error as the
/// webhook would have answered it (`{error, message, details}`).
async fn last_event(
    ended: Result<Result<RunReport, RuntimeError>, tokio::task::JoinError>,
    slug: &str,
) -> Option<String> {
    let result = match ended {
        Err(join) => return Some(error_body(ApiError::internal(join).into_response()).await),
        Ok(result) => result,
    };
    if let Ok(RunReport {
        outcome: RunOutcome::Ok(output),
        ..
    }) = &result
    {
        let value = output_value(&output.body);
        return (value != json!({})).then(|| value.to_string());
    }
    Some(error_body(answer::respond(result, slug, answer::webhook_output)).await)
}

async fn error_body(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), ERROR_BYTES)
        .await
        .unwrap_or_default();
    // The error bodies are compact JSON already; parsing again guarantees one line.
    serde_json::from_slice::<Value>(&bytes)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| json!({"error": "InternalError"}).to_string())
}
