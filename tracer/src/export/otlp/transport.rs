//! One export request over gRPC (tonic) or HTTP/protobuf (hyper), and what its answer
//! means: done (with the records the collector rejected), worth another try, or not.

use std::{str::FromStr as _, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioTimer},
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, logs_service_client::LogsServiceClient,
};
use prost::Message as _;
use tonic::{
    Code,
    metadata::MetadataMap,
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use super::{OtlpConfig, OtlpError, Protocol};

/// How an export ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; `rejected` of the records were refused (a partial success).
    Done { rejected: u64, message: String },
    /// Not accepted, worth another try (no answer, UNAVAILABLE, 503, 429, ...), after
    /// `after` if the collector said so.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Refused for good (400, INVALID_ARGUMENT, ...): another try would fail the same.
    Permanent { error: String },
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

pub enum HttpClient {
    Plain(Client<HttpConnector, Full<Bytes>>),
    Tls(Client<Https, Full<Bytes>>),
}

pub enum Transport {
    Grpc {
        client: LogsServiceClient<Channel>,
        metadata: MetadataMap,
    },
    Http {
        client: Box<HttpClient>,
        uri: Uri,
        headers: HeaderMap,
    },
}

const USER_AGENT: &str = concat!("tracer/", env!("CARGO_PKG_VERSION"));

impl Transport {
    /// The client of `config`; connects at the first export (a collector that is not up
    /// yet is no error here). Needs a tokio runtime.
    pub fn new(config: &OtlpConfig) -> Result<Self, OtlpError> {
        let client_error = |reason: String| OtlpError::Client {
            endpoint: config.endpoint.to_string(),
            reason,
        };
        let tls = config.endpoint.scheme_str() == Some("https");
        match config.protocol {
            Protocol::Grpc => {
                let mut endpoint = Endpoint::from(config.endpoint.clone())
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .user_agent(USER_AGENT)
                    .map_err(|e| client_error(e.to_string()))?;
                if tls {
                    endpoint = endpoint
                        .tls_config(ClientTlsConfig::new().with_native_roots())
                        .map_err(|e| client_error(format!("TLS: {e}")))?;
                }
                Ok(Transport::Grpc {
                    client: LogsServiceClient::new(endpoint.connect_lazy()),
                    metadata: MetadataMap::from_headers(config.headers.clone()),
                })
            }
            Protocol::HttpProtobuf => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(config.timeout));
                http.enforce_http(false);
                let mut builder = Client::builder(TokioExecutor::new());
                builder
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(30));
                let client = if tls {
                    let connector = hyper_rustls::HttpsConnectorBuilder::new()
                        .with_native_roots()
                        .map_err(|e| client_error(format!("TLS: no root certificates: {e}")))?
                        .https_or_http()
                        .enable_http1()
                        .wrap_connector(http);
                    HttpClient::Tls(builder.build(connector))
                } else {
                    HttpClient::Plain(builder.build(http))
                };
                let mut headers = config.headers.clone();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
                headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
                Ok(Transport::Http {
                    client: Box::new(client),
                    uri: config.endpoint.clone(),
                    headers,
                })
            }
        }
    }

    /// Sends `request`, within `timeout`.
    pub async fn export(&self, request: &ExportLogsServiceRequest, timeout: Duration) -> Outcome {
        let sent = match self {
            Transport::Grpc { client, metadata } => {
                let mut req = tonic::Request::new(request.clone());
                *req.metadata_mut() = metadata.clone();
                req.set_timeout(timeout);
                let mut client = client.clone();
                tokio::time::timeout(timeout, async move {
                    match client.export(req).await {
                        Ok(resp) => done(resp.into_inner()),
                        Err(status) => grpc_error(&status),
                    }
                })
                .await
            }
            Transport::Http {
                client,
                uri,
                headers,
            } => {
                let body = Bytes::from(request.encode_to_vec());
                tokio::time::timeout(timeout, http_export(client, uri, headers, body)).await
            }
        };
        sent.unwrap_or_else(|_| Outcome::Retry {
            error: format!("no answer within {} ms", timeout.as_millis()),
            after: None,
        })
    }
}

async fn http_export(client: &HttpClient, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Outcome {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    let resp = match client {
        HttpClient::Plain(c) => c.request(req).await,
        HttpClient::Tls(c) => c.request(req).await,
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Retry {
                error: error_chain(&e),
                after: None,
            };
        }
    };
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| u64::from_str(v.trim()).ok())
        .map(Duration::from_secs);
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if status.is_success() => {
            // Accepted; what it said of rejected records is lost.
            return Outcome::Done {
                rejected: 0,
                message: format!("the answer's body could not be read: {e}"),
            };
        }
        Err(_) => Bytes::new(),
    };
    if status.is_success() {
        return match ExportLogsServiceResponse::decode(body) {
            Ok(r) => done(r),
            // Not protobuf (a proxy's answer): accepted all the same.
            Err(_) => Outcome::Done {
                rejected: 0,
                message: String::new(),
            },
        };
    }
    let error = format!("HTTP {status}{}", http_error_message(&body));
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    ) {
        Outcome::Retry {
            error,
            after: retry_after,
        }
    } else {
        Outcome::Permanent { error }
    }
}

fn done(resp: ExportLogsServiceResponse) -> Outcome {
    match resp.partial_success {
        Some(p) => Outcome::Done {
            rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
            message: p.error_message,
        },
        None => Outcome::Done {
            rejected: 0,
            message: String::new(),
        },
    }
}

/// The retryable codes of the OTLP specification; RESOURCE_EXHAUSTED too (the
/// collector is throttling), others are permanent.
fn grpc_error(status: &tonic::Status) -> Outcome {
    let mut error = format!("gRPC {:?}", status.code());
    if !status.message().is_empty() {
        error.push_str(": ");
        error.push_str(status.message());
    }
    if let Some(source) = std::error::Error::source(status) {
        append_sources(&mut error, source);
    }
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry { error, after: None },
        _ => Outcome::Permanent { error },
    }
}

/// An error and its sources, `a: b: c` (hyper's say little on their own).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    if let Some(source) = e.source() {
        append_sources(&mut out, source);
    }
    out
}

/// Appends `e` and its sources to `out`, each unless `out` says it already.
fn append_sources(out: &mut String, e: &(dyn std::error::Error + 'static)) {
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer.
#[derive(prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of an error answer: a `google.rpc.Status` as OTLP/HTTP says, or the
/// body's first line of text.
fn http_error_message(body: &[u8]) -> String {
    let text = match RpcStatus::decode(body) {
        Ok(s) if !s.message.is_empty() => s.message,
        _ => String::from_utf8_lossy(body)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_retry_or_not() {
        let retry = |code| {
            matches!(
                grpc_error(&tonic::Status::new(code, "m")),
                Outcome::Retry { .. }
            )
        };
        assert!(retry(Code::Unavailable));
        assert!(retry(Code::DeadlineExceeded));
        assert!(retry(Code::ResourceExhausted));
        assert!(!retry(Code::InvalidArgument));
        assert!(!retry(Code::Unauthenticated));
        assert!(!retry(Code::Internal));
        assert_eq!(
            grpc_error(&tonic::Status::unavailable("down")),
            Outcome::Retry {
                error: "gRPC Unavailable: down".into(),
                after: None
            }
        );
    }

    #[test]
    fn http_error_bodies() {
        let body = RpcStatus {
            code: 3,
            message: "bad record".into(),
        }
        .encode_to_vec();
        assert_eq!(http_error_message(&body), ": bad record");
        assert_eq!(http_error_message(b"overloaded\nmore"), ": overloaded");
        assert_eq!(http_error_message(b""), "");
    }

    #[test]
    fn partial_success_counts_rejected_records() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let r = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 2,
                error_message: "too big".into(),
            }),
        };
        assert_eq!(
            done(r),
            Outcome::Done {
                rejected: 2,
                message: "too big".into()
            }
        );
    }
}
