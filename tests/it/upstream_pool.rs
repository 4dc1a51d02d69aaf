//! The upstream connection pool (src/proxy/pool.rs) against a hand-written HTTP/1.1 upstream
//! that counts the connections it accepts and can misbehave on purpose: connections are reused,
//! a connection the upstream closes costs no request, and a response abandoned mid-body does
//! not leave a broken connection in the pool.

use crate::support::{Harness, Options};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Behaviour {
    /// Keep-alive: answer every request on the connection.
    KeepAlive,
    /// Answer one request, then close without saying so (no `Connection: close`), as an
    /// upstream whose keep-alive timeout fired would.
    CloseSilently,
    /// Answer with a body of this many bytes.
    LargeBody(usize),
}

struct RawUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, behaviour));
            }
        });
        Self { addr, accepted }
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Requests in these tests have no body: a head ends the request.
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.clear();
        let body_len = match behaviour {
            Behaviour::LargeBody(n) => n,
            _ => 2,
        };
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n");
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let body = vec![b'k'; body_len];
        if stream.write_all(&body).await.is_err() {
            return;
        }
        if let Behaviour::CloseSilently = behaviour {
            return;
        }
    }
}

async fn gateway_for(upstream: &RawUpstream) -> Harness {
    Harness::start_with(Options {
        upstream_url: Some(format!("http://{}", upstream.addr)),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let upstream = RawUpstream::start(Behaviour::KeepAlive).await;
    let h = gateway_for(&upstream).await;
    for i in 0..20 {
        let r = h.get(&format!("/status/{i}"), None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "kk");
    }
    assert_eq!(
        upstream.connections(),
        1,
        "one keep-alive connection serves all 20"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_upstream_closing_its_connections_costs_no_request() {
    let upstream = RawUpstream::start(Behaviour::CloseSilently).await;
    let h = gateway_for(&upstream).await;
    for i in 0..30 {
        let r = h.get(&format!("/status/{i}"), None).await;
        assert_eq!(
            r.status(),
            200,
            "request {i} must not see the closed connection"
        );
        assert_eq!(r.text().await.expect("body"), "kk");
    }
    assert_eq!(
        upstream.connections(),
        30,
        "a closed connection is never reused"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_response_abandoned_midway_does_not_poison_the_pool() {
    let size = 8 * 1024 * 1024;
    let upstream = RawUpstream::start(Behaviour::LargeBody(size)).await;
    let h = gateway_for(&upstream).await;
    // Read the head and a little of the body, then drop the response (and its connection).
    let mut r = h.get("/status/big", None).await;
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.expect("chunk").expect("some body");
    assert!(!first.is_empty() && first.len() < size);
    drop(r);
    // Fresh clients so that the gateway sees new client connections too.
    for _ in 0..3 {
        let r = crate::support::client()
            .get(h.url("/status/big"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.expect("body").len(), size);
    }
    assert!(
        upstream.connections() >= 2,
        "the abandoned connection was not reused"
    );
    h.shutdown().await;
}
