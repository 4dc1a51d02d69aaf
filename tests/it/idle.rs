//! Idle connections are closed after `limits.idle_timeout_ms`, on HTTP/1 keep-alive and on
//! HTTP/2 (where hyper has no timeout of its own). Bounds below are liveness bounds, not
//! timing assertions: the test fails only if the connection is never closed.

use crate::support::{Harness, Options};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIVENESS: Duration = Duration::from_secs(10);

fn options() -> Options {
    Options {
        extra: "limits:\n  idle_timeout_ms: 300\n".into(),
        ..Options::default()
    }
}

/// Reads until the peer closes; panics if it does not within the liveness bound.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(LIVENESS, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the idle connection was never closed"),
        }
    }
}

#[tokio::test]
async fn idle_http1_keep_alive_connection_is_closed() {
    let h = Harness::start_with(options()).await;
    let mut stream = TcpStream::connect(h.addr).await.expect("connect");
    stream
        .write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .expect("write");
    let seen = read_until_closed(&mut stream).await;
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(h.upstream_requests(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn idle_http2_connection_gets_goaway_and_is_closed() {
    let h = Harness::start_with(options()).await;
    let mut stream = TcpStream::connect(h.addr).await.expect("connect");
    // Client preface plus an empty SETTINGS frame, then nothing.
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    stream.write_all(&preface).await.expect("write");
    let seen = read_until_closed(&mut stream).await;
    // Frames: 9-byte header (length 3, type 1, flags 1, stream 4). Look for GOAWAY (type 7).
    let mut offset = 0;
    let mut goaway = false;
    while offset + 9 <= seen.len() {
        let len = usize::from(seen[offset]) << 16
            | usize::from(seen[offset + 1]) << 8
            | usize::from(seen[offset + 2]);
        goaway |= seen[offset + 3] == 0x7;
        offset += 9 + len;
    }
    assert!(
        goaway,
        "expected a GOAWAY frame before the close, got {seen:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_busy_connection_is_not_idle() {
    let h = Harness::start_with(options()).await;
    // One raw socket, a request every 100 ms for a second (idle timeout 300 ms): every answer
    // must come back on this same connection, which a wrongly closed one could not do.
    let mut stream = TcpStream::connect(h.addr).await.expect("connect");
    let mut buf = [0u8; 4096];
    for i in 0..10 {
        stream
            .write_all(b"GET /public/x HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write on the same connection");
        let n = tokio::time::timeout(LIVENESS, stream.read(&mut buf))
            .await
            .expect("an answer within the liveness bound")
            .expect("read");
        assert!(n > 0, "request {i}: the connection was closed while busy");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "request {i}: {}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.upstream_requests(), 10);
    h.shutdown().await;
}
