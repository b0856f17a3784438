//! A forward HTTP proxy on loopback that logs what it is asked for, so tests
//! can tell whether downloads went through a proxy, and which.
//!
//! It takes absolute-form requests (`GET http://host/path`), as clients send
//! plain-HTTP requests to a proxy, and forwards them with hyper's client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

type Upstream = Client<hyper_util::client::legacy::connect::HttpConnector, Body>;

pub struct LoggingProxy {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl LoggingProxy {
    pub async fn start() -> LoggingProxy {
        let log = Arc::new(Mutex::new(Vec::new()));
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state((Arc::clone(&log), client));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        LoggingProxy { addr, log }
    }

    /// The proxy's URL, for HTTP_PROXY.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URLs it was asked for, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

async fn forward(
    State((log, client)): State<(Arc<Mutex<Vec<String>>>, Upstream)>,
    req: Request,
) -> Response {
    let uri = req.uri().clone();
    if uri.scheme().is_none() {
        return (StatusCode::BAD_REQUEST, "not a proxy request").into_response();
    }
    log.lock().unwrap().push(uri.to_string());
    match client.request(req).await {
        Ok(resp) => resp.map(Body::new).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
