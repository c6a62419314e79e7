//! WebSocket upgrades to an HTTP upstream: the handshake sent by the gateway itself, then the
//! two upgraded connections spliced. (In process, the request reaches the backend's
//! `WebSocketUpgrade` as it came, so nothing here is needed.)

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use refract_http::ApiError;

use super::forward::unavailable;
use super::routes::Route;
use super::upstream::Instances;
use crate::error::upstream_timeout;

pub(super) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A WebSocket upgrade to an HTTP upstream: the handshake goes to the backend over its own
/// connection (reqwest cannot carry an upgrade); once the backend answers 101, the client's
/// and the backend's upgraded connections are spliced byte for byte until either side closes.
pub(super) async fn forward_upgrade(
    route: Route,
    instances: &Instances,
    mut parts: axum::http::request::Parts,
) -> Result<Response, ApiError> {
    let service = route.service.name();
    let down = |what: &dyn std::fmt::Display| {
        tracing::warn!(service, error = %what, "upstream WebSocket upgrade failed");
        unavailable()
    };
    let client_side = parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| down(&"the client connection cannot be upgraded"))?;
    let deadline = tokio::time::Instant::now() + route.timeout;
    let mut connected = None;
    for i in instances.order() {
        let url = reqwest::Url::parse(&instances.urls[i]).map_err(|e| down(&e))?;
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return Err(down(&"the upstream URL has no host"));
        };
        if url.scheme() != "http" {
            return Err(down(&"WebSocket upgrades reach http:// upstreams only"));
        }
        let connect = tokio::net::TcpStream::connect((host, port));
        match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => return Err(upstream_timeout(service, route.timeout)),
            Ok(Ok(stream)) => {
                connected = Some((stream, format!("{host}:{port}")));
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(service, url = %url, error = %e, "upstream unreachable");
                instances.failed(i);
            }
        }
    }
    let (stream, authority) = connected.ok_or_else(unavailable)?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| down(&e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = path_and_query.parse().map_err(|e| down(&e))?;
    if let Ok(h) = HeaderValue::from_str(&authority) {
        parts.headers.insert(header::HOST, h);
    }
    let req = Request::from_parts(parts, http_body_util::Empty::<bytes::Bytes>::new());
    let answer = tokio::time::timeout_at(deadline, sender.send_request(req)).await;
    let mut res = match answer {
        Err(_) => return Err(upstream_timeout(service, route.timeout)),
        Ok(res) => res.map_err(|e| down(&e))?,
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(res.map(Body::new));
    }
    let backend_side = hyper::upgrade::on(&mut res);
    tokio::spawn(async move {
        let (Ok(client), Ok(backend)) = tokio::join!(client_side, backend_side) else {
            return;
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut backend = hyper_util::rt::TokioIo::new(backend);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    });
    let (head, _) = res.into_parts();
    Ok(Response::from_parts(head, Body::empty()))
}
