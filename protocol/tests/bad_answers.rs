//! What the client makes of answers the real supervisor never sends: a stand-in on a real
//! socket answers one canned response per connection and records the request it got.
//! (The answers the supervisor does send are tested against it in
//! `supervisor/tests/protocol_client.rs`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ld_protocol::{Assignment, ClientError, SupervisorClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `response` (a whole HTTP/1.1 answer) to every connection; returns the base URL
/// and the request heads received.
async fn stand_in(response: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&head).to_lowercase());
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (base, heads)
}

#[tokio::test]
async fn a_list_that_does_not_parse_is_a_bad_answer() {
    let (base, heads) = stand_in(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\
         connection: close\r\n\r\n{\"not\": \"list\"}\n",
    )
    .await;
    let client = SupervisorClient::new(&base, 7, "k1", &[]);
    match client
        .instances("node-1", None, Duration::from_secs(1))
        .await
    {
        Err(ClientError::BadAnswer(why)) => assert!(why.contains("instance list"), "{why}"),
        other => panic!("a bad answer: {other:?}"),
    }
    // The node's request, as the supervisor expects it.
    let head = heads.lock().unwrap()[0].clone();
    assert!(
        head.starts_with(
            "get /deployments/7/connectors/instances?reveal_secrets=true&node_id=node-1 "
        ),
        "{head}"
    );
    assert!(head.contains("\r\nld-api-key: k1\r\n"), "{head}");
}

#[tokio::test]
async fn an_error_without_a_problem_document_is_still_a_typed_refusal() {
    let (base, _) = stand_in(
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\
         connection: close\r\n\r\nupstream down",
    )
    .await;
    let client = SupervisorClient::new(&base, 7, "k", &[]);
    let err = client.list_instances().await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(502), "{err}");
    let problem = err.problem().expect("a problem");
    assert_eq!(problem.problem_type, "about:blank");
    assert_eq!(problem.status, 502);
    assert_eq!(problem.reason, "upstream down");
    assert_eq!(
        err.to_string(),
        "supervisor answered 502 Bad Gateway: upstream down"
    );
}

#[tokio::test]
async fn not_modified_is_unchanged_only_when_asked_conditionally() {
    let (base, heads) =
        stand_in("HTTP/1.1 304 Not Modified\r\netag: \"e1\"\r\nconnection: close\r\n\r\n").await;
    let client = SupervisorClient::new(&base, 7, "k", &[]);
    let answer = client
        .instances("node-1", Some("\"e1\""), Duration::from_secs(2))
        .await;
    assert!(matches!(answer, Ok(Assignment::Unchanged)), "{answer:?}");
    let head = heads.lock().unwrap()[0].clone();
    assert!(head.contains("wait=2"), "{head}");
    assert!(head.contains("\r\nif-none-match: \"e1\"\r\n"), "{head}");
    // A plain list has no ETag to match: a 304 to it is nonsense.
    assert!(matches!(
        client.list_instances().await,
        Err(ClientError::BadAnswer(_))
    ));
}

#[test]
fn a_ca_file_without_certificates_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("empty.pem");
    std::fs::write(&file, "not a certificate\n").unwrap();
    let err = SupervisorClient::builder("https://localhost", 1)
        .ca_file(&file)
        .unwrap_err();
    assert!(matches!(err, ClientError::Setup(_)), "{err:?}");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
    let err = SupervisorClient::builder("https://localhost", 1)
        .ca_file(&dir.path().join("missing.pem"))
        .unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}
