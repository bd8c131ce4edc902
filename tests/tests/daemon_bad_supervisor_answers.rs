//! A supervisor that answers garbage, 500s, or nothing at all: the daemon logs it, keeps
//! the last good assignment running, does not crash, and still follows the next good
//! answer.
//!
//! This is the one mock of the daemon tests: the real `ld-supervisor` cannot be made to
//! send garbage or hang, so a small raw-HTTP server stands in for it. The good answer it
//! serves is captured from the real supervisor, so the wire format is the real one.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use ld_e2e_tests::{
    daemon::{sink_config, source_config, wait_until, Node, NodeOptions, Supervisor},
    local::{read_ids, wait_for_ids},
};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// The captured list.
    Good,
    /// 200 with a body that is not an instance list.
    Garbage,
    /// 500 with a problem document.
    Error,
    /// Reads the request and never answers.
    Hang,
    /// A good, empty list.
    Empty,
}

struct Fake {
    url: String,
    mode: Arc<Mutex<Mode>>,
    good: Arc<Mutex<String>>,
    /// Instance-list requests answered per mode.
    served: Arc<Mutex<Vec<Mode>>>,
}

impl Fake {
    fn start() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(Mutex::new(Mode::Good));
        let served = Arc::new(Mutex::new(Vec::new()));
        let good = Arc::new(Mutex::new(String::from("[]")));
        let (m, s, l) = (mode.clone(), served.clone(), good.clone());
        let garbage = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (m, s, g) = (m.clone(), s.clone(), garbage.clone());
                let good = l.lock().unwrap().clone();
                std::thread::spawn(move || serve(stream, &m, &s, &g, &good));
            }
        });
        Fake {
            url,
            mode,
            good,
            served,
        }
    }

    fn set_good_list(&self, list: String) {
        *self.good.lock().unwrap() = list;
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn served(&self, mode: Mode) -> usize {
        self.served
            .lock()
            .unwrap()
            .iter()
            .filter(|m| **m == mode)
            .count()
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    );
}

fn serve(
    mut stream: TcpStream,
    mode: &Mutex<Mode>,
    served: &Mutex<Vec<Mode>>,
    garbage: &AtomicUsize,
    good: &str,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let request_line = head.first().cloned().unwrap_or_default();
    if !request_line.starts_with("GET ") {
        // Status reports and heartbeats: acknowledged.
        return respond(
            &mut stream,
            "200 OK",
            "Content-Type: application/json\r\n",
            "{\"ttl_secs\":30}",
        );
    }
    let conditional = head.iter().any(|h| {
        h.to_ascii_lowercase()
            .starts_with("if-none-match: \"good\"")
    });
    let now = *mode.lock().unwrap();
    match now {
        Mode::Good if conditional => {
            // A long poll with nothing new: answer 304 soon, so mode changes are seen.
            std::thread::sleep(Duration::from_millis(200));
            respond(&mut stream, "304 Not Modified", "ETag: \"good\"\r\n", "");
        }
        Mode::Good => respond(
            &mut stream,
            "200 OK",
            "Content-Type: application/json\r\nETag: \"good\"\r\n",
            good,
        ),
        Mode::Garbage => {
            // Alternately not JSON at all, and JSON of the wrong shape.
            let body = if garbage.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
                "<html>502 bad gateway, or so"
            } else {
                r#"[{"id": "seven", "status": "exploded"}]"#
            };
            respond(
                &mut stream,
                "200 OK",
                "Content-Type: application/json\r\nETag: \"junk\"\r\n",
                body,
            );
        }
        Mode::Error => respond(
            &mut stream,
            "500 Internal Server Error",
            "Content-Type: application/problem+json\r\n",
            r#"{"type":"about:blank","title":"Internal","status":500,"code":"internal","reason":"database on fire"}"#,
        ),
        Mode::Hang => {
            served.lock().unwrap().push(now);
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        Mode::Empty => respond(
            &mut stream,
            "200 OK",
            "Content-Type: application/json\r\nETag: \"empty\"\r\n",
            "[]",
        ),
    }
    served.lock().unwrap().push(now);
}

#[test]
fn garbage_errors_and_a_hang_keep_the_last_good_assignment_running() {
    let fake = Fake::start();
    let mut node = Node::new(
        &fake.url,
        "any-key",
        "node-g",
        NodeOptions {
            long_poll_wait: "1s",
            ..NodeOptions::default()
        },
    );
    let out = node.path("ids.txt");
    // The good answer, captured from the real supervisor.
    fake.set_good_list({
        let supervisor = Supervisor::start();
        supervisor.activate(
            "gen",
            "random",
            "source",
            source_config("numbers", json!({"seed": 6, "rate": 500, "batch_size": 50})),
        );
        supervisor.activate(
            "rec",
            "test",
            "sink",
            sink_config("numbers", json!({"output_file": out.to_str().unwrap()})),
        );
        supervisor.list_json()
    });
    node.restart();
    let both_active = |list: &[serde_json::Value]| {
        list.len() == 2 && list.iter().all(|v| v["status"] == "active")
    };
    node.wait_instances(Duration::from_secs(10), "the good assignment", both_active);
    wait_for_ids(&out, Duration::from_secs(10), |ids| ids.len() > 100);

    let still_running = |node: &mut Node, phase: &str| {
        assert!(
            node.running(),
            "{phase}: the daemon crashed; log:\n{}",
            node.log()
        );
        assert!(
            both_active(&node.instances()),
            "{phase}: {:?}",
            node.instances()
        );
        assert_eq!(node.health().0, 200, "{phase}");
        let before = read_ids(&out).len();
        wait_for_ids(&out, Duration::from_secs(5), |ids| ids.len() > before + 50);
    };

    for (mode, answers) in [(Mode::Garbage, 2), (Mode::Error, 2)] {
        fake.set(mode);
        wait_until(
            Duration::from_secs(15),
            &format!("{answers} {mode:?} answers"),
            || (fake.served(mode) >= answers).then_some(()),
            || node.log(),
        );
        still_running(&mut node, &format!("{mode:?}"));
    }
    let log = node.log();
    assert!(
        log.contains("supervisor sent a bad answer") && log.contains("last good assignment"),
        "garbage is logged as such"
    );
    assert!(
        log.contains("database on fire"),
        "the 500's reason is logged"
    );

    fake.set(Mode::Hang);
    wait_until(
        Duration::from_secs(15),
        "a request to hang",
        || (fake.served(Mode::Hang) >= 1).then_some(()),
        || node.log(),
    );
    std::thread::sleep(Duration::from_secs(2));
    still_running(&mut node, "hang");

    // After the hung request times out, the next good answer is followed: the list is
    // now empty, so both instances stop.
    fake.set(Mode::Empty);
    let hung = Instant::now();
    node.wait_instances(Duration::from_secs(20), "the empty assignment", |l| {
        l.is_empty()
    });
    eprintln!("recovered from the hang after {:?}", hung.elapsed());
    assert!(node.running());
}
