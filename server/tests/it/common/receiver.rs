//! A webhook receiver on a local port, as alert rules post to.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

/// An HTTP receiver that records every POST; the first `fail_first` answer 500.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Self {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let calls = Arc::new(Mutex::new(0usize));
        let store = got.clone();
        let app = Router::new().route(
            "/hook",
            post(move |Json(body): Json<Value>| {
                let store = store.clone();
                let calls = calls.clone();
                async move {
                    let n = {
                        let mut c = calls.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    if n <= fail_first {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    store.lock().unwrap().push(body);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, got }
    }

    /// `(event, key)` of every POST taken, in order.
    pub fn events(&self) -> Vec<(String, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["event"].as_str().unwrap().to_owned(),
                    b["key"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}
