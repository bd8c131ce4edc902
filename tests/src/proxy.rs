//! A TCP forwarding proxy for tests that cut one process off from another (a node from
//! the supervisor): point the node at [`Proxy::url`] instead of the supervisor, then
//! [`Proxy::cut`] and [`Proxy::restore`] the link while both processes keep running.
//!
//! Plain blocking std threads: one accepting, two per forwarded connection.

use std::{
    collections::HashMap,
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
    time::Duration,
};

/// How long the proxy waits to connect to its target before dropping the client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards every connection to `127.0.0.1:<port>` to a target address, both ways,
/// until [`Proxy::cut`]; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the acceptor, the forwarding threads and the handle share.
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Cut: open connections were closed and new ones are dropped on accept.
    cut: bool,
    /// Dropped: the acceptor ends.
    stopped: bool,
    /// Open forwarded connections (client side, target side), by number.
    connections: HashMap<u64, (TcpStream, TcpStream)>,
    next_id: u64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking forwarding thread must not disable cut() and Drop.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes every open connection (both sockets, both directions).
    fn close_all(state: &mut State) {
        for (_, (client, upstream)) in state.connections.drain() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    /// Binds `127.0.0.1:0` and forwards every accepted connection to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("proxy-{}", addr.port()))
                .spawn(move || accept_loop(listener, target, shared))
                .expect("spawn the proxy thread")
        };
        Proxy {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for a client that should go through the proxy.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// The address connections are forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Cuts the link: closes every open connection at once, and from now on accepts
    /// each new connection and closes it at once, before a byte passes (the client
    /// reads end-of-file or a reset), until [`Proxy::restore`].
    pub fn cut(&self) {
        let mut state = self.shared.lock();
        state.cut = true;
        Shared::close_all(&mut state);
    }

    /// Forwards new connections again after [`Proxy::cut`]. Connections closed by the
    /// cut stay closed: clients reconnect.
    pub fn restore(&self) {
        self.shared.lock().cut = false;
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        self.shared.lock().cut
    }

    /// Number of connections being forwarded now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().connections.len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.stopped = true;
            Shared::close_all(&mut state);
        }
        // Wake the acceptor blocked in accept(); it sees `stopped` and ends, closing
        // the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        {
            let state = shared.lock();
            if state.stopped {
                return;
            }
            if state.cut {
                // Accepted and dropped at once: closed before a byte passes.
                continue;
            }
        }
        let client = match client {
            Ok(client) => client,
            Err(_) => {
                // E.g. out of file descriptors: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let shared = shared.clone();
        let _ = std::thread::Builder::new()
            .name("proxy-connection".into())
            .spawn(move || forward(client, target, &shared));
    }
}

/// Forwards one connection both ways until both directions ended or the proxy closed it.
fn forward(client: TcpStream, target: SocketAddr, shared: &Shared) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        return; // the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (|| Some((client.try_clone().ok()?, upstream.try_clone().ok()?)))();
    let Some((client_reader, upstream_reader)) = clones else {
        return;
    };
    let id = {
        let mut state = shared.lock();
        // Checked under the lock cut() takes, so a connection is either closed by the
        // cut or refused here, never missed.
        if state.cut || state.stopped {
            return;
        }
        let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) else {
            return;
        };
        let id = state.next_id;
        state.next_id += 1;
        state.connections.insert(id, (c, u));
        id
    };
    let to_target = std::thread::Builder::new()
        .name("proxy-up".into())
        .spawn(move || pipe(client_reader, upstream));
    pipe(upstream_reader, client);
    if let Ok(handle) = to_target {
        let _ = handle.join();
    }
    shared.lock().connections.remove(&id);
}

/// Copies `from` to `to` until end-of-file or an error, then passes the end on (a
/// half-close, so the other direction may go on).
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Read);
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that echoes every connection back.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let _ = std::io::copy(&mut reader, &mut stream);
                });
            }
        });
        addr
    }

    fn connect(proxy: &Proxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    /// Sends `text` and reads its echo.
    fn round_trip(stream: &mut TcpStream, text: &[u8]) {
        stream.write_all(text).unwrap();
        let mut back = vec![0u8; text.len()];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, text);
    }

    /// The stream was closed by the other end: a read gives end-of-file or a reset,
    /// not data and not a timeout.
    fn assert_closed(stream: &mut TcpStream) {
        let _ = stream.write_all(b"anyone?"); // may fail already: closed
        let mut buffer = [0u8; 64];
        match stream.read(&mut buffer) {
            Ok(0) => {}
            Ok(n) => panic!("got an answer through a cut proxy: {:?}", &buffer[..n]),
            Err(e) => assert!(
                !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "the connection was left open: {e}"
            ),
        }
    }

    fn wait_for_connections(proxy: &Proxy, n: usize) {
        for _ in 0..500 {
            if proxy.open_connections() == n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} connections open, not {n}", proxy.open_connections());
    }

    #[test]
    fn forwards_both_ways_cuts_and_restores() {
        let target = echo_server();
        let proxy = Proxy::start(target);
        assert_eq!(proxy.target(), target);
        assert_eq!(
            proxy.url(),
            format!("http://127.0.0.1:{}", proxy.addr().port())
        );

        // Bytes pass both ways, on several connections at once, in several exchanges.
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        round_trip(&mut a, b"hello");
        round_trip(&mut b, b"world");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        round_trip(&mut a, &big);
        wait_for_connections(&proxy, 2);

        // Cut: open connections are closed, new ones get no answer.
        proxy.cut();
        assert!(proxy.is_cut());
        assert_eq!(proxy.open_connections(), 0);
        assert_closed(&mut a);
        assert_closed(&mut b);
        let mut c = connect(&proxy);
        assert_closed(&mut c);

        // Restored: new connections work again.
        proxy.restore();
        assert!(!proxy.is_cut());
        let mut d = connect(&proxy);
        round_trip(&mut d, b"again");
        round_trip(&mut d, b"and again");

        // A client's half-close reaches the target, and the target's end comes back.
        d.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        d.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        wait_for_connections(&proxy, 0);

        // Dropped: the port no longer answers.
        let addr = proxy.addr();
        let mut e = connect(&proxy);
        drop(proxy);
        assert_closed(&mut e);
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening after drop"
        );
    }
}
