//! The metrics endpoint: a small hyper server. It owns no state: each
//! scrape asks the agent loop, which owns the table, for a fresh exposition
//! and waits for it, so nothing is shared or locked.

use std::{convert::Infallible, net::SocketAddr};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, server::conn::http1, service::service_fn, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::{
    net::TcpListener,
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

/// A scrape waiting for its text.
pub type Scrape = oneshot::Sender<String>;

/// OpenMetrics text, which Prometheus negotiates and parses natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` now (so a busy port is a start-up error) and serves it.
pub async fn spawn(addr: SocketAddr, scrapes: mpsc::Sender<Scrape>) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the metrics endpoint {addr}"))?;
    let bound = listener.local_addr().context("reading the metrics endpoint's address")?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let scrapes = scrapes.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, scrapes.clone()));
                // A client that hangs up mid-request is its own business.
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok((bound, task))
}

async fn handle(req: Request<Incoming>, scrapes: mpsc::Sender<Scrape>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n"));
    }
    match req.uri().path() {
        "/metrics" => {
            let (tx, rx) = oneshot::channel();
            // A failed send drops `tx`, so `rx` fails too: the agent loop is gone.
            let _ = scrapes.send(tx).await;
            let Ok(text) = rx.await else {
                return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "netwatch is stopping\n"));
            };
            Ok(Response::builder()
                .header(header::CONTENT_TYPE, CONTENT_TYPE)
                .body(Full::new(Bytes::from(text)))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "response\n")))
        }
        "/" => Ok(plain(StatusCode::OK, "netwatch: metrics at /metrics\n")),
        _ => Ok(plain(StatusCode::NOT_FOUND, "not found; metrics are at /metrics\n")),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r
}
