//! A stand-in OTLP/HTTP collector for the soak: answers 200 to every `POST /v1/logs`
//! and counts the requests and the log records in them (read from the protobuf without
//! its types), and can be stopped and started again on the same port, as a collector
//! that restarts.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::Context as _;

/// What the collector received, over all its lives.
#[derive(Default)]
pub struct Received {
    pub requests: AtomicU64,
    pub records: AtomicU64,
    /// Requests whose body was not the protobuf expected (counted, answered 200).
    pub unreadable: AtomicU64,
}

/// The collector while it listens.
struct Life {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

pub struct Collector {
    pub port: u16,
    pub received: Arc<Received>,
    life: Option<Life>,
    /// Times it was started.
    pub starts: u64,
}

impl Collector {
    /// Listens on a free loopback port.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .context("the soak's OTLP collector cannot listen on the loopback")?;
        let port = listener.local_addr()?.port();
        let mut c = Collector {
            port,
            received: Arc::new(Received::default()),
            life: None,
            starts: 0,
        };
        c.listen(listener)?;
        Ok(c)
    }

    pub fn is_up(&self) -> bool {
        self.life.is_some()
    }

    /// Listens again on its port, after [`Collector::stop`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.life.is_some() {
            return Ok(());
        }
        // The port was ours a moment ago; std sets SO_REUSEADDR, so the old
        // connections' TIME_WAIT does not hold it.
        let listener = TcpListener::bind(("127.0.0.1", self.port)).with_context(|| {
            format!(
                "the soak's OTLP collector cannot listen on 127.0.0.1:{} again",
                self.port
            )
        })?;
        self.listen(listener)
    }

    fn listen(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        listener
            .set_nonblocking(true)
            .context("the collector's listener cannot be made non-blocking")?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (s, cs, received) = (stop.clone(), conns.clone(), self.received.clone());
        let accept = thread::Builder::new()
            .name("soak-collector".into())
            .spawn(move || accept_loop(&listener, &s, &cs, &received))
            .context("cannot start the collector's thread")?;
        self.life = Some(Life {
            stop,
            accept,
            conns,
        });
        self.starts += 1;
        Ok(())
    }

    /// Stops listening and cuts the open connections, as a collector that goes away.
    pub fn stop(&mut self) {
        let Some(life) = self.life.take() else {
            return;
        };
        life.stop.store(true, Ordering::Relaxed);
        let _ = life.accept.join();
        for c in life
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    conns: &Mutex<Vec<TcpStream>>,
    received: &Arc<Received>,
) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => {
                let _ = conn.set_nonblocking(false);
                if let Ok(c) = conn.try_clone() {
                    conns.lock().unwrap_or_else(|e| e.into_inner()).push(c);
                }
                let received = received.clone();
                if let Ok(h) = thread::Builder::new()
                    .name("soak-collector-conn".into())
                    .spawn(move || serve(conn, &received))
                {
                    handlers.push(h);
                }
                handlers.retain(|h| !h.is_finished());
            }
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
    // The listener closes when this returns; the connections are cut by `stop`, which
    // ends their handlers.
    drop(handlers);
}

/// Serves the requests of one connection (HTTP/1.1, kept alive) until it closes.
fn serve(conn: TcpStream, received: &Received) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
            }
        }
        let body = if chunked {
            match read_chunked(&mut reader) {
                Some(b) => b,
                None => return,
            }
        } else {
            let mut b = vec![0; length];
            if reader.read_exact(&mut b).is_err() {
                return;
            }
            b
        };
        received.requests.fetch_add(1, Ordering::Relaxed);
        match count_log_records(&body) {
            Some(n) => {
                received.records.fetch_add(n, Ordering::Relaxed);
            }
            None => {
                received.unreadable.fetch_add(1, Ordering::Relaxed);
            }
        }
        let answer = if request_line.starts_with("POST /v1/logs") {
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        } else {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_chunked(reader: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let size = usize::from_str_radix(size.trim().split(';').next()?.trim(), 16).ok()?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// The log records of an `ExportLogsServiceRequest`: `resource_logs` (field 1), their
/// `scope_logs` (2), their `log_records` (2). `None` when the bytes are not protobuf.
pub fn count_log_records(body: &[u8]) -> Option<u64> {
    let mut n = 0;
    for (field, resource) in fields(body)? {
        if field != 1 {
            continue;
        }
        for (field, scope) in fields(resource)? {
            if field != 2 {
                continue;
            }
            n += fields(scope)?.iter().filter(|(f, _)| *f == 2).count() as u64;
        }
    }
    Some(n)
}

/// The length-delimited fields of a protobuf message, (number, bytes); other wire
/// types are skipped.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut b)?;
            }
            1 => b = b.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                out.push((field, b.get(..len)?));
                b = b.get(len..)?;
            }
            5 => b = b.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field.
    fn len_field(field: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, u8::try_from(body.len()).unwrap_or(0)];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn log_records_are_counted_through_resource_and_scope() {
        // A record: time (fixed64, field 1) and a body string (LEN, field 5).
        let mut record = vec![(1 << 3) | 1];
        record.extend_from_slice(&[0; 8]);
        record.extend(len_field(5, b"x"));
        let mut scope = len_field(1, b"scope");
        for _ in 0..3 {
            scope.extend(len_field(2, &record));
        }
        let mut resource = len_field(1, b"res");
        resource.extend(len_field(2, &scope));
        resource.extend(len_field(2, &len_field(2, &record)));
        let request = len_field(1, &resource);
        assert_eq!(count_log_records(&request), Some(4));
        assert_eq!(count_log_records(&[]), Some(0));
        assert_eq!(count_log_records(&[0x0a, 0x05, 0x01]), None);
    }
}
