//! A local HTTP/1.1 server for the HTTP client's and the S3 store's tests: it answers each
//! connection with a prepared raw response, counts the requests and hands back what it received.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the local server received: the request head and the body.
#[derive(Debug)]
pub(crate) struct Received {
    /// The request line and headers, up to the blank line.
    pub(crate) head: String,
    /// The body.
    pub(crate) body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (head, then a body of `content-length` bytes).
async fn read_request(stream: &mut TcpStream) -> Received {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        let read = stream.read(&mut chunk).await.expect("read the request");
        assert!(read > 0, "the client closed before sending a whole head");
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).expect("an ASCII head");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().expect("a length"))
        })
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.expect("read the body");
        assert!(read > 0, "the client closed before sending the whole body");
        body.extend_from_slice(&chunk[..read]);
    }
    Received { head, body }
}

/// A server on a free local port giving, for the n-th connection, `answers[n]`: `Some(raw
/// response)` or `None` to read the request and never answer. Returns its URL, the number of
/// requests it received and the first request.
pub(crate) async fn serve(
    answers: Vec<Option<&'static str>>,
) -> (
    String,
    Arc<AtomicUsize>,
    tokio::sync::oneshot::Receiver<Received>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut first = Some(first_tx);
        let mut silent = Vec::new();
        for answer in answers {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let received = read_request(&mut stream).await;
            counted.fetch_add(1, Ordering::SeqCst);
            if let Some(first) = first.take() {
                let _ = first.send(received);
            }
            match answer {
                Some(response) => {
                    stream
                        .write_all(response.as_bytes())
                        .await
                        .expect("write the response");
                }
                // Held open, unanswered, until the server task ends with the test.
                None => silent.push(stream),
            }
        }
        std::future::pending::<()>().await;
    });
    (url, count, first_rx)
}
