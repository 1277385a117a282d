//! A small HTTP endpoint on its own thread (tiny_http): what the server's metrics and the health
//! checker's metrics are served by. The caller says what each path answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What a path answers.
pub enum Page {
    /// Prometheus text (`Content-Type: text/plain; version=0.0.4`), status 200.
    Metrics(String),
    /// Plain text with this status.
    Text(u16, String),
}

/// A running endpoint; stopped when dropped.
pub struct Endpoint {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl Endpoint {
    /// Serves `page(path)` on `addr` from a thread called `name` (a path it gives no page is
    /// answered 404).
    pub fn start(
        addr: SocketAddr,
        name: &str,
        page: impl Fn(&str) -> Option<Page> + Send + 'static,
    ) -> std::io::Result<Endpoint> {
        let server = tiny_http::Server::http(addr).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other(format!("{name}: not an IP listener")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Relaxed) {
                    let req = match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(r)) => r,
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::warn!("{label}: {e}");
                            continue;
                        }
                    };
                    let response = match page(req.url()) {
                        Some(Page::Metrics(text)) => tiny_http::Response::from_string(text)
                            .with_header(
                                tiny_http::Header::from_bytes(
                                    &b"Content-Type"[..],
                                    &b"text/plain; version=0.0.4"[..],
                                )
                                .expect("static header"),
                            ),
                        Some(Page::Text(status, text)) => {
                            tiny_http::Response::from_string(text).with_status_code(status)
                        }
                        None => {
                            tiny_http::Response::from_string("not found\n").with_status_code(404)
                        }
                    };
                    let _ = req.respond(response);
                }
            })?;
        Ok(Endpoint {
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
