//! Where and how the exporter sends: the agent's flags first, then the OpenTelemetry
//! environment variables (the `_LOGS_` form before the general one), then defaults.

use std::{str::FromStr as _, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::OtlpError;

/// Records waiting to be exported, at most (`--otlp-queue-size`).
pub const DEFAULT_QUEUE_SIZE: usize = 8192;
/// Records in one export request, at most.
pub const DEFAULT_MAX_BATCH: usize = 512;
/// How long a batch waits for more records before it goes out short.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(200);
/// One export's time limit, as `OTEL_EXPORTER_OTLP_TIMEOUT`'s default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's delay, doubled at each failed try up to `DEFAULT_BACKOFF_MAX`.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5);

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
const LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";
const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const LOGS_HEADERS: &str = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const LOGS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT";

const FLAG_ENDPOINT: &str = "--otlp-endpoint";
const FLAG_PROTOCOL: &str = "--otlp-protocol";

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `grpc`: the collector's `LogsService/Export` (port 4317 by convention).
    Grpc,
    /// `http/protobuf`: `POST /v1/logs` with a protobuf body (port 4318 by convention).
    HttpProtobuf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    fn parse(setting: &str, value: &str) -> Result<Self, OtlpError> {
        match value.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(OtlpError::config(
                setting,
                value,
                if other == "http/json" {
                    "http/json is not supported"
                } else {
                    "unknown protocol"
                },
                "use grpc or http/protobuf",
            )),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the exporter needs; [`OtlpConfig::resolve`] fills it from the flags and the
/// environment, and the fields past `timeout` can be set before [`super::OtlpExporter::start`].
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Where requests go: for gRPC the collector's origin (`http://host:4317`), for
    /// HTTP the full URL (`http://host:4318/v1/logs`).
    pub endpoint: Uri,
    pub protocol: Protocol,
    /// Sent with every request (HTTP headers, gRPC metadata).
    pub headers: HeaderMap,
    /// One export's time limit, connecting included.
    pub timeout: Duration,
    /// Records waiting, at most; past it new records are dropped and counted.
    pub queue_size: usize,
    /// Records in one export request, at most.
    pub max_batch: usize,
    /// How long a short batch waits for more records.
    pub linger: Duration,
    /// The first retry's delay; doubled at each failed try, up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// The resource: `k8s.node.name`.
    pub node_name: String,
    /// The resource: `host.name` (the node name unless set otherwise).
    pub host_name: String,
}

impl OtlpConfig {
    /// The configuration from the agent's flags (`--otlp-endpoint`, `--otlp-protocol`)
    /// and the process's environment; `None` when no endpoint is given by either (the
    /// protocol, headers or timeout variables alone do not turn the export on).
    pub fn resolve(
        flag_endpoint: Option<&str>,
        flag_protocol: Option<&str>,
        node_name: &str,
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        Self::resolve_with(flag_endpoint, flag_protocol, node_name, |name| {
            std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
        })
    }

    /// `resolve` with the environment read through `env`.
    pub fn resolve_with(
        flag_endpoint: Option<&str>,
        flag_protocol: Option<&str>,
        node_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        // An empty variable is an unset one, as the specification says.
        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());

        // The flag and OTEL_EXPORTER_OTLP_ENDPOINT are a base URL, to which HTTP adds
        // /v1/logs (the flag only where its path does not end so already);
        // OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is the URL itself. Without one the export is
        // off, and the other variables (set for other programs, perhaps) are not read.
        let (endpoint_setting, endpoint_value, join) = if let Some(v) = flag(flag_endpoint) {
            (FLAG_ENDPOINT, v.to_owned(), Join::UnlessThere)
        } else if let Some(v) = var(LOGS_ENDPOINT) {
            (LOGS_ENDPOINT, v, Join::AsIs)
        } else if let Some(v) = var(ENDPOINT) {
            (ENDPOINT, v, Join::Always)
        } else {
            // A bad flag is an error all the same: it was given for this program.
            if let Some(v) = flag(flag_protocol) {
                Protocol::parse(FLAG_PROTOCOL, v)?;
            }
            return Ok(None);
        };

        let protocol = if let Some(v) = flag(flag_protocol) {
            Some(Protocol::parse(FLAG_PROTOCOL, v)?)
        } else if let Some(v) = var(LOGS_PROTOCOL) {
            Some(Protocol::parse(LOGS_PROTOCOL, &v)?)
        } else if let Some(v) = var(PROTOCOL) {
            Some(Protocol::parse(PROTOCOL, &v)?)
        } else {
            None
        };
        let explicit_protocol = protocol.is_some();
        // The specification's default.
        let protocol = protocol.unwrap_or(Protocol::HttpProtobuf);
        let endpoint = endpoint(endpoint_setting, &endpoint_value, protocol, join)?;
        if !explicit_protocol && endpoint.port_u16() == Some(4317) {
            tracing::warn!(
                "otlp: {endpoint} is gRPC's port, and http/protobuf is used as no protocol \
                 is set: set --otlp-protocol grpc (or {PROTOCOL}=grpc) if the collector \
                 takes gRPC there"
            );
        }

        let headers = match (var(LOGS_HEADERS), var(HEADERS)) {
            (Some(v), _) => parse_headers(LOGS_HEADERS, &v)?,
            (None, Some(v)) => parse_headers(HEADERS, &v)?,
            (None, None) => HeaderMap::new(),
        };
        let timeout = match (var(LOGS_TIMEOUT), var(TIMEOUT)) {
            (Some(v), _) => parse_timeout(LOGS_TIMEOUT, &v)?,
            (None, Some(v)) => parse_timeout(TIMEOUT, &v)?,
            (None, None) => DEFAULT_TIMEOUT,
        };
        Ok(Some(OtlpConfig {
            endpoint,
            protocol,
            headers,
            timeout,
            queue_size: DEFAULT_QUEUE_SIZE,
            max_batch: DEFAULT_MAX_BATCH,
            linger: DEFAULT_LINGER,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            node_name: node_name.to_owned(),
            // Not gethostname(): in the DaemonSet's pod that is the pod's name. The node
            // name is the host's name (the flag's default; in a cluster the kubelet's
            // node name, the host's name unless overridden).
            host_name: node_name.to_owned(),
        }))
    }

    /// A configuration for `endpoint` (a base URL, as `--otlp-endpoint` takes) without
    /// reading the environment.
    pub fn new(endpoint: &str, protocol: Protocol, node_name: &str) -> Result<Self, OtlpError> {
        let protocol_str = protocol.as_str();
        Self::resolve_with(Some(endpoint), Some(protocol_str), node_name, |_| None)?.ok_or_else(
            || OtlpError::config(FLAG_ENDPOINT, endpoint, "empty", "give the collector's URL"),
        )
    }
}

/// A flag's value, `None` when empty.
fn flag(v: Option<&str>) -> Option<&str> {
    v.filter(|v| !v.trim().is_empty())
}

#[derive(Clone, Copy)]
enum Join {
    Always,
    UnlessThere,
    AsIs,
}

const LOGS_PATH: &str = "/v1/logs";

/// Checks an endpoint URL and makes the one requests go to.
fn endpoint(setting: &str, value: &str, protocol: Protocol, join: Join) -> Result<Uri, OtlpError> {
    let fix = match protocol {
        Protocol::Grpc => "give a URL such as http://otel-collector:4317",
        Protocol::HttpProtobuf => "give a URL such as http://otel-collector:4318",
    };
    let uri = Uri::from_str(value.trim())
        .map_err(|e| OtlpError::config(setting, value, &format!("not a URL ({e})"), fix))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(OtlpError::config(
                setting,
                value,
                &format!("scheme {other} is neither http nor https"),
                fix,
            ));
        }
        None => {
            return Err(OtlpError::config(
                setting,
                value,
                "no scheme (http:// or https://)",
                fix,
            ));
        }
    }
    let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
        return Err(OtlpError::config(setting, value, "no host", fix));
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let path = match protocol {
        // gRPC's path is the method's; the URL names the server only.
        Protocol::Grpc => "/".to_owned(),
        Protocol::HttpProtobuf => {
            let p = uri.path();
            match join {
                Join::AsIs => p.to_owned(),
                Join::UnlessThere if p.trim_end_matches('/').ends_with(LOGS_PATH) => p.to_owned(),
                Join::Always | Join::UnlessThere => {
                    format!("{}{LOGS_PATH}", p.trim_end_matches('/'))
                }
            }
        }
    };
    let full = match (protocol, uri.query()) {
        (Protocol::HttpProtobuf, Some(q)) if matches!(join, Join::AsIs) => {
            format!("{scheme}://{authority}{path}?{q}")
        }
        _ => format!("{scheme}://{authority}{path}"),
    };
    Uri::from_str(&full)
        .map_err(|e| OtlpError::config(setting, value, &format!("not a URL ({e})"), fix))
}

/// `key1=value1,key2=value2`, values percent-decoded (W3C baggage's form, as the
/// specification says).
fn parse_headers(setting: &str, value: &str) -> Result<HeaderMap, OtlpError> {
    const FIX: &str = "write key=value pairs separated by commas, e.g. api-key=secret,tenant=a";
    let mut map = HeaderMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(OtlpError::config(
                setting,
                value,
                &format!("`{pair}` has no `=`"),
                FIX,
            ));
        };
        let name =
            HeaderName::from_bytes(k.trim().to_ascii_lowercase().as_bytes()).map_err(|_| {
                OtlpError::config(setting, value, &format!("`{k}` is not a header name"), FIX)
            })?;
        let decoded = percent_decode(v.trim()).ok_or_else(|| {
            OtlpError::config(
                setting,
                value,
                &format!("the value of `{k}` has a bad %-escape"),
                FIX,
            )
        })?;
        let value_ok = HeaderValue::from_str(&decoded).map_err(|_| {
            OtlpError::config(
                setting,
                value,
                &format!("the value of `{k}` is not a header value"),
                FIX,
            )
        })?;
        map.append(name, value_ok);
    }
    Ok(map)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Milliseconds, as the specification gives the timeout.
fn parse_timeout(setting: &str, value: &str) -> Result<Duration, OtlpError> {
    const FIX: &str = "give a whole number of milliseconds, e.g. 10000";
    let ms: u64 = value.trim().parse().map_err(|_| {
        OtlpError::config(setting, value, "not a whole number of milliseconds", FIX)
    })?;
    if ms == 0 {
        return Err(OtlpError::config(
            setting,
            value,
            "must be more than 0",
            FIX,
        ));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(
        flag_endpoint: Option<&str>,
        flag_protocol: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Option<OtlpConfig>, OtlpError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::resolve_with(flag_endpoint, flag_protocol, "node1", |k| {
            vars.get(k).cloned()
        })
    }

    #[test]
    fn nothing_configured_is_none() {
        assert!(resolve(None, None, &[]).unwrap().is_none());
        // A protocol, headers or a timeout alone do not turn the export on.
        let vars = [(PROTOCOL, "grpc"), (HEADERS, "a=b"), (TIMEOUT, "5")];
        assert!(resolve(None, None, &vars).unwrap().is_none());
        // Empty is unset.
        assert!(
            resolve(Some(""), None, &[(ENDPOINT, "")])
                .unwrap()
                .is_none()
        );
        // Without an endpoint the variables are not read: bad ones set for other
        // programs do not stop this one.
        let vars = [(PROTOCOL, "http/json"), (HEADERS, "bad"), (TIMEOUT, "1s")];
        assert!(resolve(None, None, &vars).unwrap().is_none());
        // A bad flag is still an error.
        assert!(resolve(None, Some("udp"), &[]).is_err());
    }

    #[test]
    fn defaults() {
        let c = resolve(Some("http://collector:4318"), None, &[])
            .unwrap()
            .unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.endpoint, "http://collector:4318/v1/logs");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.queue_size, DEFAULT_QUEUE_SIZE);
        assert!(c.headers.is_empty());
        assert_eq!(c.node_name, "node1");
        assert_eq!(c.host_name, "node1");
    }

    #[test]
    fn endpoint_paths_per_protocol_and_source() {
        let ep = |flag: Option<&str>, proto: &str, vars: &[(&str, &str)]| {
            resolve(flag, Some(proto), vars)
                .unwrap()
                .unwrap()
                .endpoint
                .to_string()
        };
        let http = "http/protobuf";
        // The base URL gets /v1/logs, after its own path.
        assert_eq!(
            ep(None, http, &[(ENDPOINT, "http://c:4318/otlp/")]),
            "http://c:4318/otlp/v1/logs"
        );
        // The logs variable is taken as it is.
        assert_eq!(
            ep(None, http, &[(LOGS_ENDPOINT, "https://c/custom?x=1")]),
            "https://c/custom?x=1"
        );
        // The flag: joined unless it already ends in /v1/logs.
        assert_eq!(
            ep(Some("http://c:4318"), http, &[]),
            "http://c:4318/v1/logs"
        );
        assert_eq!(
            ep(Some("http://c:4318/v1/logs"), http, &[]),
            "http://c:4318/v1/logs"
        );
        // gRPC keeps the origin only.
        assert_eq!(
            ep(None, "grpc", &[(ENDPOINT, "http://c:4317/ignored")]),
            "http://c:4317/"
        );
    }

    #[test]
    fn flags_win_over_variables_and_logs_variables_over_general_ones() {
        let vars = [
            (ENDPOINT, "http://general:4318"),
            (LOGS_ENDPOINT, "http://logs:4318/v1/logs"),
            (PROTOCOL, "http/protobuf"),
            (LOGS_PROTOCOL, "grpc"),
            (HEADERS, "a=general"),
            (LOGS_HEADERS, "a=logs"),
            (TIMEOUT, "1000"),
            (LOGS_TIMEOUT, "2500"),
        ];
        let c = resolve(None, None, &vars).unwrap().unwrap();
        assert_eq!(c.protocol, Protocol::Grpc);
        assert_eq!(c.endpoint, "http://logs:4318/");
        assert_eq!(c.headers["a"], "logs");
        assert_eq!(c.timeout, Duration::from_millis(2500));

        let c = resolve(Some("http://flag:4317"), Some("grpc"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://flag:4317/");
        assert_eq!(c.protocol, Protocol::Grpc);

        let c = resolve(None, Some("http/protobuf"), &vars)
            .unwrap()
            .unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.endpoint, "http://logs:4318/v1/logs");

        let general = [
            (ENDPOINT, "http://g:4317"),
            (PROTOCOL, "grpc"),
            (TIMEOUT, "700"),
        ];
        let c = resolve(None, None, &general).unwrap().unwrap();
        assert_eq!(c.protocol, Protocol::Grpc);
        assert_eq!(c.endpoint, "http://g:4317/");
        assert_eq!(c.timeout, Duration::from_millis(700));
    }

    #[test]
    fn headers_are_percent_decoded_and_repeatable() {
        let c = resolve(
            Some("http://c:4318"),
            None,
            &[(HEADERS, "Api-Key=se%20cret, tenant=a,tenant=b")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.headers["api-key"], "se cret");
        let tenants: Vec<_> = c.headers.get_all("tenant").iter().collect();
        assert_eq!(tenants, ["a", "b"]);
    }

    #[test]
    fn bad_values_name_the_setting_and_the_fix() {
        let err = |flag: Option<&str>, proto: Option<&str>, vars: &[(&str, &str)]| {
            resolve(flag, proto, vars).unwrap_err().to_string()
        };
        let e = err(Some("collector:4317"), None, &[]);
        assert!(e.starts_with("--otlp-endpoint \"collector:4317\""), "{e}");
        assert!(e.contains("http://otel-collector:4318"), "{e}");
        let e = err(Some("ftp://c"), Some("grpc"), &[]);
        assert!(e.contains("neither http nor https"), "{e}");
        assert!(e.contains("http://otel-collector:4317"), "{e}");
        let e = err(None, None, &[(ENDPOINT, "http://")]);
        assert!(e.starts_with(ENDPOINT), "{e}");
        let e = err(Some("http://c"), Some("udp"), &[]);
        assert!(
            e.starts_with("--otlp-protocol \"udp\": unknown protocol"),
            "{e}"
        );
        assert!(e.contains("use grpc or http/protobuf"), "{e}");
        let e = err(Some("http://c"), None, &[(PROTOCOL, "http/json")]);
        assert!(
            e.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL \"http/json\": http/json is not supported"),
            "{e}"
        );
        // A protocol variable is not looked at when the flag is given.
        assert!(resolve(Some("http://c"), Some("grpc"), &[(PROTOCOL, "bad")]).is_ok());
        let e = err(Some("http://c"), None, &[(LOGS_TIMEOUT, "10s")]);
        assert!(
            e.starts_with(LOGS_TIMEOUT) && e.contains("milliseconds"),
            "{e}"
        );
        let e = err(Some("http://c"), None, &[(TIMEOUT, "0")]);
        assert!(e.contains("more than 0"), "{e}");
        let e = err(Some("http://c"), None, &[(HEADERS, "novalue")]);
        assert!(e.starts_with(HEADERS) && e.contains("has no `=`"), "{e}");
        let e = err(Some("http://c"), None, &[(LOGS_HEADERS, "a=%zz")]);
        assert!(e.contains("%-escape"), "{e}");
        let e = err(Some("http://c"), None, &[(HEADERS, "bad key=v")]);
        assert!(e.contains("not a header name"), "{e}");
    }
}
