//! An echo upstream for the demo and the tests: it records every request it receives (method,
//! path, query, version, headers in order, body length and SHA-256) and answers with that record as
//! JSON, so a test can see exactly what the gateway forwarded. Bodies are streamed and hashed
//! incrementally, never buffered whole, so that tests can check the gateway streams large bodies.
//! A few special paths produce large downloads, chosen statuses, delays and reflected headers.
//! It is a test fixture: it trusts every caller and must never face a real network.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_lc_rs::digest;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;

/// `/download/{n}` serves at most this many bytes.
const MAX_DOWNLOAD: u64 = 1 << 30;
/// `/download/{n}` chunk size.
const CHUNK: usize = 64 * 1024;
/// The download pattern's period: byte `i` is `(i % 251) as u8`. A prime period makes a chunk
/// that is dropped, duplicated or reordered change the hash.
const PERIOD: usize = 251;
/// Bounds the request log so that a load run through the echo upstream cannot exhaust memory.
const MAX_RECORDED: usize = 100_000;

type EchoBody = BoxBody<Bytes, Infallible>;

/// What the echo upstream saw of one request.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub version: String,
    /// Lowercase names with their values, in the order hyper's `HeaderMap` yields them (received
    /// order, except that repeated names are grouped at their first occurrence).
    pub headers: Vec<(String, String)>,
    pub body_len: u64,
    /// Lowercase hex SHA-256 of the body.
    pub body_sha256: String,
}

#[derive(Default)]
struct State {
    requests: Mutex<VecDeque<RecordedRequest>>,
    count: AtomicUsize,
}

/// The echo upstream; clones share one request log.
#[derive(Clone, Default)]
pub struct EchoUpstream {
    state: Arc<State>,
}

impl std::fmt::Debug for EchoUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoUpstream")
            .field("request_count", &self.request_count())
            .finish_non_exhaustive()
    }
}

impl EchoUpstream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests received, oldest first (only the newest 100 000 are kept).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).iter().cloned().collect()
    }

    /// How many requests were received in total.
    pub fn request_count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    /// Serves HTTP/1.1 and h2c on `listener` until `shutdown` completes, then lets open
    /// connections finish for up to five seconds.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        super::serve_loop("echo upstream", listener, shutdown, move |req| {
            let this = self.clone();
            async move { Ok::<_, Infallible>(this.handle(req).await) }
        })
        .await
    }

    /// Binds `127.0.0.1:0` and serves in a task on the current runtime until the runtime ends.
    pub async fn spawn(self) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(error) = self.serve(listener, std::future::pending()).await {
                tracing::error!(%error, "echo upstream stopped");
            }
        });
        Ok(addr)
    }

    async fn handle(self, req: Request<Incoming>) -> Response<EchoBody> {
        let (parts, mut body) = req.into_parts();
        let mut hasher = digest::Context::new(&digest::SHA256);
        let mut body_len = 0u64;
        let mut body_failed = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        hasher.update(data);
                        body_len += data.len() as u64;
                    }
                }
                Err(error) => {
                    // The client went away or sent a broken body: record what arrived.
                    tracing::debug!(%error, "echo upstream: request body failed");
                    body_failed = true;
                    break;
                }
            }
        }
        let recorded = RecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            version: format!("{:?}", parts.version),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body_len,
            body_sha256: hex(hasher.finish().as_ref()),
        };
        self.record(recorded.clone());
        if body_failed {
            return empty(StatusCode::BAD_REQUEST);
        }

        let path = recorded.path.as_str();
        if let Some(n) = path.strip_prefix("/download/") {
            return match n.parse::<u64>() {
                Ok(len) if len <= MAX_DOWNLOAD => download(len).await,
                _ => empty(StatusCode::BAD_REQUEST),
            };
        }
        if let Some(code) = path.strip_prefix("/status/") {
            let status = code
                .parse::<u16>()
                .ok()
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok());
            return empty(status.unwrap_or(StatusCode::BAD_REQUEST));
        }
        if let Some(ms) = path.strip_prefix("/slow/") {
            let Ok(ms) = ms.parse::<u64>() else {
                return empty(StatusCode::BAD_REQUEST);
            };
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut resp = echo(&recorded);
        if path == "/echo-headers-back" {
            for (name, value) in &parts.headers {
                let echoed = HeaderName::from_bytes(format!("x-echo-{name}").as_bytes());
                if let Ok(echoed) = echoed {
                    resp.headers_mut().append(echoed, value.clone());
                }
            }
        }
        resp
    }

    fn record(&self, request: RecordedRequest) {
        let mut log = lock(&self.state.requests);
        if log.len() >= MAX_RECORDED {
            log.pop_front();
        }
        log.push_back(request);
        self.state.count.fetch_add(1, Ordering::SeqCst);
    }
}

fn echo(recorded: &RecordedRequest) -> Response<EchoBody> {
    // Serializing a struct of strings and integers cannot fail; an empty object is a safe fallback.
    let json = serde_json::to_vec(recorded).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(json)).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn empty(status: StatusCode) -> Response<EchoBody> {
    let mut resp = Response::new(Empty::new().boxed());
    *resp.status_mut() = status;
    resp
}

/// `len` bytes of the pattern, with its SHA-256 in `x-body-sha256` so that a test can check what it
/// received. The hash needs a pass over the whole pattern before the first byte is sent, done on
/// the blocking pool because a gigabyte takes about a second.
async fn download(len: u64) -> Response<EchoBody> {
    let base = pattern_base();
    let hash_base = base.clone();
    let sha256 = tokio::task::spawn_blocking(move || {
        let mut hasher = digest::Context::new(&digest::SHA256);
        let mut body = PatternBody::new(hash_base, len);
        while let Some(chunk) = body.next_chunk() {
            hasher.update(&chunk);
        }
        hex(hasher.finish().as_ref())
    })
    .await;
    let Ok(sha256) = sha256 else {
        return empty(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let mut resp = Response::new(PatternBody::new(base, len).boxed());
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(value) = HeaderValue::from_str(&sha256) {
        headers.insert("x-body-sha256", value);
    }
    resp
}

/// One chunk plus one period of the pattern: every chunk is a zero-copy slice of it.
fn pattern_base() -> Bytes {
    (0..CHUNK + PERIOD)
        .map(|i| (i % PERIOD) as u8)
        .collect::<Vec<_>>()
        .into()
}

/// Streams `len` bytes of the pattern in [`CHUNK`]-sized frames.
struct PatternBody {
    base: Bytes,
    sent: u64,
    len: u64,
}

impl PatternBody {
    fn new(base: Bytes, len: u64) -> Self {
        Self { base, sent: 0, len }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        let remaining = self.len.checked_sub(self.sent).filter(|r| *r > 0)?;
        let n = usize::try_from(remaining).map_or(CHUNK, |r| r.min(CHUNK));
        // Byte i of the stream is base[i % PERIOD] and base repeats with that period, so a chunk
        // is the slice starting at the offset's phase.
        let start = usize::try_from(self.sent % PERIOD as u64).unwrap_or(0);
        self.sent += n as u64;
        Some(self.base.slice(start..start + n))
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.next_chunk().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len.saturating_sub(self.sent))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge the fixture; the log stays consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::Method;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    fn client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn get(path: &str, addr: SocketAddr) -> Response<Incoming> {
        let req = Request::get(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        client().request(req).await.unwrap()
    }

    fn sha256_hex(data: &[u8]) -> String {
        hex(digest::digest(&digest::SHA256, data).as_ref())
    }

    #[tokio::test]
    async fn records_headers_and_hashes_a_5_mib_body() {
        let echo = EchoUpstream::new();
        let addr = echo.clone().spawn().await.unwrap();
        // Not the download pattern, so a mix-up between the two would show.
        let body: Vec<u8> = (0..5u32 << 20)
            .map(|i| (i.wrapping_mul(31) >> 3) as u8)
            .collect();
        let req = Request::builder()
            .method(Method::PUT)
            .uri(format!("http://{addr}/upload/file?x=1&y=%20"))
            .header("X-Custom", "first")
            .header("x-other", "second")
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_TYPE], "application/json");
        let echoed: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();

        let recorded = echo.requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(echo.request_count(), 1);
        let r = &recorded[0];
        assert_eq!(r.method, "PUT");
        assert_eq!(r.path, "/upload/file");
        assert_eq!(r.query.as_deref(), Some("x=1&y=%20"));
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(r.body_len, 5 << 20);
        assert_eq!(r.body_sha256, sha256_hex(&body));
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        let custom = names.iter().position(|n| *n == "x-custom").unwrap();
        let other = names.iter().position(|n| *n == "x-other").unwrap();
        assert!(custom < other, "received order kept: {names:?}");
        assert!(
            r.headers
                .contains(&("x-custom".to_owned(), "first".to_owned()))
        );
        // The response is the same record, headers as [name, value] pairs.
        assert_eq!(echoed["body_sha256"], r.body_sha256.as_str());
        assert!(
            echoed["headers"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(["x-other", "second"]))
        );
    }

    #[tokio::test]
    async fn download_streams_the_pattern_with_its_hash() {
        let echo = EchoUpstream::new();
        let addr = echo.clone().spawn().await.unwrap();
        let len = 3 * CHUNK + 1000;
        let resp = get(&format!("/download/{len}"), addr).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[CONTENT_LENGTH], len.to_string().as_str());
        let header_hash = resp.headers()["x-body-sha256"].to_str().unwrap().to_owned();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(bytes.len(), len);
        assert!(bytes == expected, "pattern differs");
        assert_eq!(header_hash, sha256_hex(&expected));
        assert_eq!(echo.requests()[0].path, format!("/download/{len}"));

        let too_big = get(&format!("/download/{}", MAX_DOWNLOAD + 1), addr).await;
        assert_eq!(too_big.status(), StatusCode::BAD_REQUEST);
        let empty = get("/download/0", addr).await;
        assert_eq!(empty.headers()[CONTENT_LENGTH], "0");
    }

    #[tokio::test]
    async fn status_slow_and_header_reflection() {
        let echo = EchoUpstream::new();
        let addr = echo.clone().spawn().await.unwrap();
        let resp = get("/status/418", addr).await;
        assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
        assert!(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty()
        );
        assert_eq!(
            get("/status/99", addr).await.status(),
            StatusCode::BAD_REQUEST
        );

        let started = std::time::Instant::now();
        let resp = get("/slow/100", addr).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(resp.status(), StatusCode::OK);

        let req = Request::get(format!("http://{addr}/echo-headers-back"))
            .header("x-secret", "s3cret")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client().request(req).await.unwrap();
        assert_eq!(resp.headers()["x-echo-x-secret"], "s3cret");
        assert!(resp.headers().contains_key("x-echo-host"));
        assert_eq!(echo.request_count(), 4);
    }

    #[tokio::test]
    async fn serve_returns_soon_after_shutdown_even_with_an_idle_keep_alive_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let server = tokio::spawn(EchoUpstream::new().serve(listener, shutdown));
        let client = client();
        let req = Request::get(format!("http://{addr}/x"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        resp.into_body().collect().await.unwrap();
        stop.send(()).unwrap();
        // Well inside the five-second grace period: idle connections are closed, not waited for.
        let done = tokio::time::timeout(Duration::from_secs(3), server).await;
        done.unwrap().unwrap().unwrap();
        drop(client);
    }

    #[tokio::test]
    async fn h2c_requests_are_recorded_as_http2() {
        let echo = EchoUpstream::new();
        let addr = echo.clone().spawn().await.unwrap();
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        let req = Request::post(format!("http://{addr}/h2"))
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let r = &echo.requests()[0];
        assert_eq!(r.version, "HTTP/2.0");
        assert_eq!(r.body_len, 5);
        assert_eq!(r.body_sha256, sha256_hex(b"hello"));
    }
}
