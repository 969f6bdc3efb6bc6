//! The actions that the agent carries out itself when the kernel posts a selector's
//! match: `GetUrl` (an HTTP GET of a URL, to notify a webhook or trip a canary) and
//! `DnsLookup` (a lookup of a name, for a DNS-based canary). Each runs on its own task,
//! bounded by a timeout, so that a slow or dead server never holds up the event stream;
//! its outcome is logged.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// How long a request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A request of a selector's `matchActions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `GetUrl` with its `argUrl` (`http://` or `https://`).
    GetUrl(String),
    /// `DnsLookup` with its `argFqdn`.
    DnsLookup(String),
}

/// Starts `request` for policy `policy` on the agent's runtime (none: logged, not run).
pub fn start(request: &Request, policy: &str) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("policy {policy}: {request:?} not run: no async runtime");
        return;
    };
    let request = request.clone();
    let policy = policy.to_owned();
    rt.spawn(async move {
        let outcome = tokio::time::timeout(TIMEOUT, run(&request)).await;
        match outcome {
            Ok(Ok(done)) => tracing::info!("policy {policy}: {done}"),
            Ok(Err(e)) => tracing::warn!("policy {policy}: {e}"),
            Err(_) => tracing::warn!(
                "policy {policy}: {request:?} took longer than {}s: given up",
                TIMEOUT.as_secs()
            ),
        }
    });
}

async fn run(request: &Request) -> Result<String, String> {
    match request {
        Request::DnsLookup(name) => {
            let addrs: Vec<String> = tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map_err(|e| format!("DnsLookup {name}: {e}"))?
                .map(|a| a.ip().to_string())
                .collect();
            Ok(format!("DnsLookup {name}: {}", addrs.join(", ")))
        }
        Request::GetUrl(url) => {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| format!("GetUrl {url}: not a URL: {e}"))?;
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("GetUrl {url}: TLS: no root certificates: {e}"))?
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            let client = Client::builder(TokioExecutor::new()).build(connector);
            let req = http::Request::get(uri)
                .header(http::header::USER_AGENT, "tracer")
                .body(Empty::<bytes::Bytes>::new())
                .map_err(|e| format!("GetUrl {url}: {e}"))?;
            let resp = client
                .request(req)
                .await
                .map_err(|e| format!("GetUrl {url}: {e}"))?;
            let status = resp.status();
            // Read to the end, so that the server sees the request through.
            let _ = resp.into_body().collect().await;
            Ok(format!("GetUrl {url}: {status}"))
        }
    }
}

/// Whether `url` is one `GetUrl` can fetch: `http://` or `https://` with a host.
pub fn valid_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(h)) if !h.is_empty() => Ok(()),
        (Some("http" | "https"), _) => Err("it names no host".into()),
        _ => Err("it is neither http:// nor https://".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(valid_url("http://ebpf.io").is_ok());
        assert!(valid_url("https://example.com/hook?x=1").is_ok());
        assert_eq!(
            valid_url("ftp://x").unwrap_err(),
            "it is neither http:// nor https://"
        );
        assert!(valid_url("ebpf.io").is_err());
    }

    /// A GET of a server of the test's own on loopback, and a lookup of `localhost`.
    #[tokio::test]
    async fn get_and_lookup_on_loopback() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let got = run(&Request::GetUrl(format!(
            "http://127.0.0.1:{port}/canary?id=7"
        )))
        .await
        .unwrap();
        assert_eq!(
            got,
            format!("GetUrl http://127.0.0.1:{port}/canary?id=7: 204 No Content")
        );
        let seen = server.await.unwrap();
        assert!(seen.starts_with("GET /canary?id=7 HTTP/1.1\r\n"), "{seen}");
        let got = run(&Request::DnsLookup("localhost".into())).await.unwrap();
        assert!(got.starts_with("DnsLookup localhost: "), "{got}");
        assert!(got.contains("127.0.0.1") || got.contains("::1"), "{got}");
    }
}
