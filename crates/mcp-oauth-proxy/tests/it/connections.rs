//! Connections held open on purpose: bodies trickled in, many connections from one
//! address, half-sent headers at the metrics listener.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Harness, Start};

/// What a client that trickles its body got: the answer's first line, and when it came.
struct Trickled {
    status_line: Option<String>,
    answered_after: Duration,
    /// Whether the proxy then closed the connection (within two seconds).
    closed: bool,
}

/// Sends `head` (request line and headers, declaring a body far longer than what will
/// be sent), then one byte of body every 300 ms, each of them well within any per-read
/// timeout, until the proxy answers or 6 s have passed.
async fn trickle(address: &str, head: &str) -> Trickled {
    let mut tcp = TcpStream::connect(address).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0; 4096];
    let mut ticks = tokio::time::interval(Duration::from_millis(300));
    let status_line = loop {
        tokio::select! {
            read = tcp.read(&mut buf) => {
                let n = read.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                break (n > 0).then(|| text.lines().next().unwrap_or_default().to_owned());
            }
            _ = ticks.tick() => {
                if started.elapsed() > Duration::from_secs(6) {
                    break None;
                }
                // The proxy may have stopped reading already; its answer is read above.
                let _ = tcp.write_all(b"a").await;
            }
        }
    };
    let answered_after = started.elapsed();
    let mut rest = Vec::new();
    let closed = matches!(tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut rest)).await, Ok(Ok(_)));
    Trickled { status_line, answered_after, closed }
}

fn one_second_for_bodies() -> Start {
    Start { extra_toml: "[limits]\nbody_read_timeout_secs = 1\n".into(), ..Default::default() }
}

fn assert_refused_at_the_deadline(what: &str, t: &Trickled) {
    let line = t.status_line.as_deref().unwrap_or_else(|| panic!("{what}: still reading after {:?}", t.answered_after));
    assert!(line.starts_with("HTTP/1.1 408"), "{what}: {line}");
    // One second for the whole body, not one second between its bytes.
    assert!(t.answered_after < Duration::from_millis(2500), "{what}: answered after {:?}", t.answered_after);
    assert!(t.closed, "{what}: the connection is closed after the answer");
}

#[tokio::test]
async fn a_body_trickled_to_the_mcp_endpoint_is_refused_at_the_deadline() {
    let h = Harness::start_with(one_second_for_bodies()).await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    let address = h.base.trim_start_matches("http://");
    let head = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n"
    );
    assert_refused_at_the_deadline("/mcp/demo", &trickle(address, &head).await);
    // The endpoint still serves whole bodies.
    assert_eq!(h.mcp_status(token).await, reqwest::StatusCode::OK);
}

#[tokio::test]
async fn a_body_trickled_to_the_token_endpoint_is_refused_at_the_deadline() {
    let h = Harness::start_with(one_second_for_bodies()).await;
    let address = h.base.trim_start_matches("http://");
    let head = "POST /oauth/demo/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 60000\r\n\r\ngrant_type=";
    let t = trickle(address, head).await;
    assert_refused_at_the_deadline("/oauth/demo/token", &t);
}

/// A keep-alive connection from `local` (any port) on which `/healthz` was answered: the
/// proxy has accepted it and holds it open.
async fn served_connection(proxy: &str, local: &str) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{local}:0").parse().unwrap())?;
    let mut tcp = socket.connect(proxy.parse().unwrap()).await?;
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut buf = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await??;
    let answer = String::from_utf8_lossy(&buf[..n]);
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not served: {answer:?}")));
    }
    Ok(tcp)
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_connections() {
    let h = Harness::start_with(Start {
        extra_toml: "[limits]\nmax_connections_per_address = 3\n".into(),
        ..Default::default()
    })
    .await;
    let proxy = h.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(served_connection(&proxy, "127.0.0.1").await.unwrap_or_else(|e| panic!("connection {i}: {e}")));
    }
    let fourth = served_connection(&proxy, "127.0.0.1").await;
    assert!(fourth.is_err(), "the fourth connection from 127.0.0.1 is closed unanswered");
    // Another address (all of 127/8 is loopback on Linux) is served meanwhile.
    served_connection(&proxy, "127.0.0.2").await.expect("another address is served");
    // A place given back is taken again.
    drop(held.pop());
    let mut again = Err(std::io::Error::other("never tried"));
    for _ in 0..50 {
        again = served_connection(&proxy, "127.0.0.1").await;
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    again.expect("served once one of the three has closed");
}
