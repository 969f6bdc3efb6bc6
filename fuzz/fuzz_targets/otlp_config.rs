//! The OTLP exporter's configuration: the flags `--otlp-endpoint` and `--otlp-protocol`
//! and the OpenTelemetry variables, read through a lookup (the process's environment is
//! left alone). The input's lines, in order: the two flags (an empty line: not given),
//! then the variables of `VARS` (an empty line: unset).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::export::otlp::OtlpConfig;

const VARS: [&str; 8] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
    let flag_endpoint = next();
    let flag_protocol = next();
    let env: Vec<(&str, String)> = VARS
        .iter()
        .filter_map(|name| next().map(|v| (*name, v)))
        .collect();
    let lookup = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    match OtlpConfig::resolve_with(
        flag_endpoint.as_deref(),
        flag_protocol.as_deref(),
        "node",
        lookup,
    ) {
        Ok(Some(config)) => {
            let _ = config.endpoint.to_string();
        }
        Ok(None) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
