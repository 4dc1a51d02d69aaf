//! Hostile input, grouped by threat (issue 4): one canonical interpretation of each request is
//! used for routing, authorization, the DPoP `htu` and forwarding alike, and nothing a client
//! should not be able to send reaches the upstream. Every test asserts the exact answer AND what
//! the echo upstream recorded (usually: nothing). The cases come from research/standards.md
//! sections 9-12 (HP-*, SM-*, FW-*, PN-*) and research/peers.md section 3e.
//!
//! The helpers here speak raw bytes: no client library touches the request line, the header
//! names or the framing, and a response stream is parsed one response at a time so that a
//! smuggled second request would show up as a second status line.

mod cache;
mod framing;
mod headers;
mod limits;
mod paths;
mod tokens;

use crate::support::{Harness, spec};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokengate::auth::dpop::{Alg, ProofClaims, ProofSigner};
use tokengate::demo::echo::RecordedRequest;
use tokengate::demo::emulator::TokenSpec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a raw exchange waits for the gateway to answer and close. A liveness bound: every
/// case below is answered in milliseconds, and a connection the gateway keeps open is reported
/// as `closed == false`, not as a failure.
pub const WAIT: Duration = Duration::from_secs(3);

/// One HTTP/1.x response parsed off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Lower-case names, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What came back on one connection.
#[derive(Debug)]
pub struct Wire {
    /// Every response, in order (a smuggled request would add one).
    pub responses: Vec<Response>,
    /// The gateway closed the connection (EOF or reset) within [`WAIT`].
    pub closed: bool,
    /// Everything received, for failure messages.
    pub raw: String,
}

impl Wire {
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }

    /// The single response; panics with the raw bytes otherwise.
    pub fn only(&self) -> &Response {
        assert_eq!(
            self.responses.len(),
            1,
            "one response expected: {:?}",
            self.raw
        );
        &self.responses[0]
    }
}

/// Writes `bytes` on a fresh connection and reads until the gateway closes it or [`WAIT`] ends.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Wire {
    exchange_within(addr, bytes, WAIT).await
}

pub async fn exchange_within(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Wire {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // A server that refuses early may reset the connection while we still write; what it
    // answered before that is still read below.
    let _ = stream.write_all(bytes).await;
    let (received, closed) = read_until_closed(&mut stream, wait).await;
    Wire {
        responses: parse_responses(&received),
        closed,
        raw: String::from_utf8_lossy(&received).into_owned(),
    }
}

/// Reads until EOF, a reset, or `wait`; returns the bytes and whether the peer closed.
pub async fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> (Vec<u8>, bool) {
    let deadline = tokio::time::Instant::now() + wait;
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (received, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Splits a byte stream into HTTP/1.x responses (Content-Length, chunked, or to the end).
pub fn parse_responses(mut rest: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = find(rest, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let Some(status) = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|s| s.get(2..5))
            .and_then(|s| s.parse::<u16>().ok())
        else {
            break;
        };
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        rest = &rest[end + 4..];
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_ascii_lowercase())
        };
        let body = if (100..200).contains(&status) || status == 204 || status == 304 {
            Vec::new()
        } else if value("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let (body, used) = dechunk(rest);
            rest = &rest[used..];
            body
        } else if let Some(len) = value("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let len = len.min(rest.len());
            let body = rest[..len].to_vec();
            rest = &rest[len..];
            body
        } else {
            let body = rest.to_vec();
            rest = &[];
            body
        };
        out.push(Response {
            status,
            headers,
            body,
        });
    }
    out
}

fn dechunk(bytes: &[u8]) -> (Vec<u8>, usize) {
    let mut body = Vec::new();
    let mut at = 0;
    while let Some(line_end) = find(&bytes[at..], b"\r\n") {
        let size_text = String::from_utf8_lossy(&bytes[at..at + line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        at += line_end + 2;
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            if let Some(end) = find(&bytes[at..], b"\r\n") {
                at += end + 2;
            }
            break;
        }
        let end = (at + size).min(bytes.len());
        body.extend_from_slice(&bytes[at..end]);
        at = (end + 2).min(bytes.len());
    }
    (body, at)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Header values of `name` (lower case) in a recorded upstream request.
pub fn values(r: &RecordedRequest, name: &str) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// Asserts that the upstream has received nothing at all.
pub fn assert_upstream_untouched(h: &Harness, case: &str) {
    let seen = h.upstream.requests();
    assert!(
        seen.is_empty(),
        "{case}: the upstream received {} request(s): {:?}",
        seen.len(),
        seen.iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
}

/// Lets a request that the gateway might still be forwarding reach the echo upstream before a
/// test concludes that nothing arrived. Only used for absence checks after a stream or body
/// error, where no response orders the two events; never to wait for start-up.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// The newest request the upstream recorded.
pub fn last_forwarded(h: &Harness) -> RecordedRequest {
    h.upstream.requests().pop().expect("a forwarded request")
}

/// A hand-written HTTP/1.1 upstream for what the echo upstream cannot do: answer with chosen
/// response headers, or accept an `Upgrade` with `101` and record the tunnelled bytes.
#[derive(Clone, Default)]
pub struct ScriptedUpstream {
    /// Request heads received, as text.
    pub heads: Arc<Mutex<Vec<String>>>,
    /// Raw request bodies (chunked ones with their framing and trailers), in order.
    pub bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Bytes received after a `101` (through a tunnel).
    pub tunnelled: Arc<Mutex<Vec<u8>>>,
}

impl ScriptedUpstream {
    /// Serves until the runtime ends. `answer` maps a request head to the raw response; a
    /// response starting with `HTTP/1.1 101` turns the connection into a recorded tunnel.
    pub async fn spawn(&self, answer: fn(&str) -> String) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(this.clone().connection(stream, answer));
            }
        });
        addr
    }

    async fn connection(self, mut stream: TcpStream, answer: fn(&str) -> String) {
        let mut pending = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            while let Some(end) = find(&pending, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                let Some(body_len) = body_length(&head, &pending[end + 4..]) else {
                    break; // the body has not fully arrived yet
                };
                let body = pending[end + 4..end + 4 + body_len].to_vec();
                pending.drain(..end + 4 + body_len);
                let response = answer(&head);
                self.heads.lock().expect("lock").push(head);
                self.bodies.lock().expect("lock").push(body);
                if stream.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
                if response.starts_with("HTTP/1.1 101") {
                    self.tunnelled
                        .lock()
                        .expect("lock")
                        .extend_from_slice(&pending);
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        self.tunnelled
                            .lock()
                            .expect("lock")
                            .extend_from_slice(&buf[..n]);
                    }
                    return;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("lock").clone()
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().expect("lock").clone()
    }

    pub fn tunnelled(&self) -> Vec<u8> {
        self.tunnelled.lock().expect("lock").clone()
    }
}

/// How many bytes of `rest` belong to the body of the request with `head`, or `None` while
/// incomplete. Chunked bodies end at the empty line after the last chunk (and its trailers).
fn body_length(head: &str, rest: &[u8]) -> Option<usize> {
    let lower = head.to_ascii_lowercase();
    let field = |name: &str| {
        lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    if field("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let mut at = 0;
        loop {
            let line_end = find(&rest[at..], b"\r\n")?;
            let size_text = String::from_utf8_lossy(&rest[at..at + line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at += line_end + 2;
            if size == 0 {
                // Trailer lines, then the empty line.
                loop {
                    let end = find(&rest[at..], b"\r\n")?;
                    at += end + 2;
                    if end == 0 {
                        return Some(at);
                    }
                }
            }
            at += size + 2;
            if at > rest.len() {
                return None;
            }
        }
    }
    let len = field("content-length:")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    (rest.len() >= len).then_some(len)
}

// ---------------------------------------------------------------------------------------------
// DPoP

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

pub fn es256() -> ProofSigner {
    ProofSigner::generate(Alg::ES256).expect("key generation")
}

/// A token DPoP-bound to `signer`'s key.
pub fn bound_token(h: &Harness, signer: &ProofSigner, scopes: &[&str]) -> String {
    h.emulator.add_token(TokenSpec {
        dpop_jkt: Some(signer.thumbprint()),
        ..spec("alice", scopes, 3600)
    })
}

/// A fresh proof for `method url` presenting `token`.
pub fn proof(signer: &ProofSigner, method: &str, url: &str, token: &str) -> String {
    signer.sign(&ProofClaims::new(method, url, Some(token), unix_now()))
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 by hand (h2c prior knowledge). The `h2` crate refuses to send malformed requests, and
// it is not a dependency of the tests, so the frames and the HPACK block are written here:
// literal fields without indexing and without Huffman coding (RFC 7541 section 6.2.2).

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_DATA: u8 = 0x0;
const FRAME_HEADERS: u8 = 0x1;
const FRAME_RST_STREAM: u8 = 0x3;
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_GOAWAY: u8 = 0x7;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// RFC 9113 section 7.
pub const PROTOCOL_ERROR: u32 = 0x1;

/// How the gateway answered one HTTP/2 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2 {
    /// A response with this `:status`.
    Status(u16),
    /// `RST_STREAM` on the request's stream with this error code (a stream error).
    Reset(u32),
    /// `GOAWAY` with this error code (a connection error).
    GoAway(u32),
    Closed,
    TimedOut,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// RFC 7541 section 5.1.
fn hpack_int(mut value: usize, prefix_bits: u32, out: &mut Vec<u8>) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(value as u8);
        return;
    }
    out.push(max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// Every field as "literal without indexing, new name", bytes exactly as given.
fn hpack_block(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(name.len(), 7, &mut out);
        out.extend_from_slice(name.as_bytes());
        hpack_int(value.len(), 7, &mut out);
        out.extend_from_slice(value);
    }
    out
}

/// Decodes a Huffman-coded string of digits (all a status needs; RFC 7541 Appendix B:
/// '0'-'2' are 5-bit codes 0-2, '3'-'9' 6-bit codes 0x19-0x1f; padding is all ones).
fn huffman_digits(bytes: &[u8]) -> String {
    let bits: Vec<u32> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| u32::from((b >> i) & 1)))
        .collect();
    let value = |at: usize, n: usize| bits[at..at + n].iter().fold(0, |a, b| a << 1 | b);
    let mut out = String::new();
    let mut at = 0;
    while bits.len() - at >= 5 {
        let five = value(at, 5);
        if five <= 2 {
            out.push(char::from(b'0' + five as u8));
            at += 5;
        } else if bits.len() - at >= 6 && (0x19..=0x1f).contains(&value(at, 6)) {
            out.push(char::from(b'3' + (value(at, 6) - 0x19) as u8));
            at += 6;
        } else {
            break;
        }
    }
    out
}

/// The `:status` of a response header block: hyper (through h2) sends it first, either as a
/// static-table entry (200, 204, 206, 304, 400, 404, 500) or as a literal with that name.
fn status_of(block: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let first = *block.first()?;
    let in_table = |index: u8| STATIC.get(usize::from(index).checked_sub(8)?).copied();
    if first & 0x80 != 0 {
        return in_table(first & 0x7f);
    }
    let name_index = if first & 0xc0 == 0x40 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    in_table(name_index)?;
    let len_byte = *block.get(1)?;
    let raw = block.get(2..2 + usize::from(len_byte & 0x7f))?;
    let text = if len_byte & 0x80 != 0 {
        huffman_digits(raw)
    } else {
        String::from_utf8_lossy(raw).into_owned()
    };
    text.parse().ok()
}

/// Sends one request on a fresh h2c connection: HEADERS with `fields` in the given order
/// (pseudo-headers included), then `body` as one DATA frame, and reports the first thing the
/// gateway says about stream 1.
pub async fn h2_request(addr: SocketAddr, fields: &[(&str, &[u8])], body: Option<&[u8]>) -> H2 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut out = PREFACE.to_vec();
    out.extend(frame(FRAME_SETTINGS, 0, 0, &[]));
    let end_stream = if body.is_none() { FLAG_END_STREAM } else { 0 };
    out.extend(frame(
        FRAME_HEADERS,
        FLAG_END_HEADERS | end_stream,
        1,
        &hpack_block(fields),
    ));
    if let Some(body) = body {
        out.extend(frame(FRAME_DATA, FLAG_END_STREAM, 1, body));
    }
    let _ = stream.write_all(&out).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        while pending.len() >= 9 {
            let len = usize::from(pending[0]) << 16
                | usize::from(pending[1]) << 8
                | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            let (kind, flags) = (pending[3], pending[4]);
            let id =
                u32::from_be_bytes([pending[5], pending[6], pending[7], pending[8]]) & !(1 << 31);
            let payload: Vec<u8> = pending.drain(..9 + len).skip(9).collect();
            let code = |at: usize| {
                payload
                    .get(at..at + 4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match kind {
                FRAME_SETTINGS if flags & FLAG_ACK == 0 => {
                    let _ = stream
                        .write_all(&frame(FRAME_SETTINGS, FLAG_ACK, 0, &[]))
                        .await;
                }
                FRAME_HEADERS if id == 1 => {
                    let mut block = &payload[..];
                    if flags & FLAG_PADDED != 0 {
                        let pad = usize::from(block[0]);
                        block = &block[1..block.len() - pad];
                    }
                    if flags & FLAG_PRIORITY != 0 {
                        block = &block[5..];
                    }
                    return H2::Status(status_of(block).unwrap_or(0));
                }
                FRAME_RST_STREAM if id == 1 => return H2::Reset(code(0)),
                FRAME_GOAWAY => return H2::GoAway(code(4)),
                _ => {}
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return H2::TimedOut,
            Ok(Ok(0)) | Ok(Err(_)) => return H2::Closed,
            Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// An HTTP/2 header list: names (pseudo-headers included) and raw values, in order.
pub type Fields<'a> = Vec<(&'static str, &'a [u8])>;

/// The four pseudo-headers of a well-formed GET, for `authority` and `path`.
pub fn h2_get<'a>(authority: &'a str, path: &'a str) -> Fields<'a> {
    vec![
        (":method", b"GET"),
        (":scheme", b"http"),
        (":authority", authority.as_bytes()),
        (":path", path.as_bytes()),
    ]
}
