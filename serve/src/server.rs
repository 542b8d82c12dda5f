//! The listener: accepting connections up to a cap, hyper's HTTP/1 settings
//! (header read timeout, header size), and a graceful stop with a deadline.
//!
//! `axum::serve` exposes none of hyper's connection settings, so this is its
//! accept loop with them: hyper's own `http1::Builder` serves each
//! connection, a semaphore caps how many are open, and a `JoinSet` holds
//! their tasks so the stop can wait for them and then drop the stragglers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Connections open at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// The bytes a request's line and headers may take; more answer 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The limits of the listener (those of a request are in
/// [`ServeConfig`](crate::ServeConfig)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once. Past it the server stops accepting: new
    /// connections wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// Time a client has to send a request's line and headers, from the
    /// moment the server starts reading them (also how long an idle
    /// keep-alive connection stays open). A client slower than that is
    /// disconnected without an answer.
    pub header_read_timeout: Duration,
    /// Time the requests in flight get after the stop signal; then the
    /// server returns without them.
    pub shutdown_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(20),
        }
    }
}

/// How [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection finished within the shutdown deadline.
    Drained,
    /// The deadline passed with these connections still open; they were dropped.
    DeadlinePassed {
        /// Connections dropped.
        open: usize,
    },
}

/// Set in every request's extensions by [`serve`]: whether the server is
/// stopping. A handler waiting on a slow client gives up when it turns true.
#[derive(Clone, Debug)]
pub struct Draining(pub(crate) watch::Receiver<bool>);

impl Draining {
    /// Resolves once the server is stopping (at once if it already is).
    pub(crate) async fn started(mut self) {
        // An error means the server is gone: stopping too.
        let _ = self.0.wait_for(|&stopping| stopping).await;
    }
}

/// Serves `app` on `listener` until `signal` resolves, then stops accepting,
/// lets the requests in flight finish for up to
/// [`ServerLimits::shutdown_timeout`], and drops what is left.
///
/// HTTP/1.1 only (SageMaker's protocol). A request line and headers over
/// [`MAX_HEADER_BYTES`] answer 431, a malformed one 400; hyper writes those
/// answers itself, without a body.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    signal: impl Future<Output = ()> + Send,
) -> Stopped {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut signal = std::pin::pin!(signal);

    loop {
        // Finished connections are collected here, so the set holds at most
        // `max_connections` of them.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = &mut signal => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!("pulse serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = draining.clone();
        let request_draining = Draining(draining.clone());
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(request_draining.clone());
            app.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        connections.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.wait_for(|&stopping| stopping) => {}
            }
            // Closes the connection at once if it is idle, else after the
            // answer to the request in flight.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }

    drop(listener);
    let _ = stopping.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_timeout, async { while connections.join_next().await.is_some() {} }).await;
    match drained {
        Ok(()) => Stopped::Drained,
        Err(_) => {
            let open = connections.len();
            connections.shutdown().await;
            Stopped::DeadlinePassed { open }
        }
    }
}
