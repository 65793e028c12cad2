//! Logging: `tracing` to stderr, `key=value` text in development and one JSON object per line
//! in production; the level comes from `RUST_LOG` (default `info`).
//!
//! Lines are written by [`LineFormat`] (tracing-subscriber's own compact and JSON formatters
//! only at an interactive terminal, for colour): those Debug-format every field through ANSI
//! styling or an intermediate map, about 6% of a token check's CPU under load (perf).
//!
//! Formatted lines are appended to an in-memory batch that a background thread writes out
//! [`FLUSH_INTERVAL`] after the batch's first line. A request therefore costs one copy under a
//! mutex: no system call, and at most one thread wake-up per batch rather than per line (a
//! channel per line, as `tracing-appender` does it, cost about 15% of token-check throughput
//! under load, measured with perf). The batch is not lossy: past [`HIGH_WATER`] bytes the
//! logging thread writes it out itself, so a flood slows its writers down rather than dropping,
//! say, a lockout alert.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    io::{self, Write},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter, format::Writer},
    registry::LookupSpan,
};

use crate::config::Environment;

/// How long the first line of a batch waits for company before the batch is written.
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A batch this large is written out at once, by whichever thread pushed it past.
const HIGH_WATER: usize = 256 * 1024;

/// Installs the global subscriber; keep the guard until exit, it writes the last lines.
pub fn init(environment: Environment) -> LogGuard {
    let (writer, guard) = BatchWriter::spawn(Box::new(io::stderr()));
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,poem=info"));
    let terminal = io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(terminal);
    let _ = match environment {
        Environment::Development if terminal => builder.compact().try_init(),
        Environment::Development => builder.event_format(LineFormat::Text).try_init(),
        Environment::Production => builder.event_format(LineFormat::Json).try_init(),
    };
    guard
}

/// One line per event: `2026-11-26T03:34:42.036281Z  INFO target: message key=value …`, or
/// `{"timestamp":…,"level":…,"target":…,"message":…,"key":value,…}` (fields flattened).
#[derive(Debug, Clone, Copy)]
pub enum LineFormat {
    Text,
    Json,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = meta.level().as_str();
        let timestamp = |w: &mut Writer<'_>| TIMESTAMP.with_borrow_mut(|t| w.write_str(t.now()));
        match self {
            LineFormat::Text => {
                timestamp(&mut w)?;
                write!(w, " {level:>5} {}: ", meta.target())?;
                // The message first, then the other fields.
                let mut message = TextFields::new(&mut w, Pass::Message);
                event.record(&mut message);
                message.result?;
                let mut fields = TextFields::new(&mut w, Pass::Fields);
                event.record(&mut fields);
                fields.result?;
                w.write_char('\n')
            }
            LineFormat::Json => {
                w.write_str("{\"timestamp\":\"")?;
                timestamp(&mut w)?;
                write!(w, "\",\"level\":\"{level}\",\"target\":")?;
                json_string(&mut w, meta.target())?;
                let mut fields = JsonFields {
                    w: &mut w,
                    result: Ok(()),
                };
                event.record(&mut fields);
                fields.result?;
                w.write_str("}\n")
            }
        }
    }
}

thread_local! {
    static TIMESTAMP: RefCell<Timestamp> = const { RefCell::new(Timestamp { second: u64::MAX, text: String::new() }) };
    /// Scratch space for fields given as `Debug` values in JSON lines.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// RFC 3339 UTC with microseconds; the part up to the second is formatted once a second.
struct Timestamp {
    second: u64,
    text: String,
}

impl Timestamp {
    fn now(&mut self) -> &str {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if since.as_secs() != self.second {
            self.second = since.as_secs();
            let at = i64::try_from(self.second)
                .ok()
                .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            self.text.clear();
            let _ = write!(
                self.text,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute(),
                at.second()
            );
        }
        self.text.truncate(20);
        let _ = write!(self.text, "{:06}Z", since.subsec_micros());
        &self.text
    }
}

#[derive(PartialEq)]
enum Pass {
    Message,
    Fields,
}

/// `key=value` fields; values with spaces, quotes or `=` (or empty) are quoted.
struct TextFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    pass: Pass,
    result: fmt::Result,
}

impl<'a, 'w> TextFields<'a, 'w> {
    fn new(w: &'a mut Writer<'w>, pass: Pass) -> Self {
        Self {
            w,
            pass,
            result: Ok(()),
        }
    }

    fn value(&mut self, field: &Field, value: fmt::Arguments<'_>, text: Option<&str>) {
        let is_message = field.name() == "message";
        if self.result.is_err() || is_message != (self.pass == Pass::Message) {
            return;
        }
        self.result = if is_message {
            self.w.write_fmt(value)
        } else {
            match text {
                Some(s) if s.is_empty() || s.contains([' ', '"', '=', '\n']) => {
                    write!(self.w, " {}={s:?}", field.name())
                }
                _ => write!(self.w, " {}={value}", field.name()),
            }
        };
    }
}

impl Visit for TextFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.value(field, format_args!("{value}"), Some(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.value(field, format_args!("{value:?}"), None);
    }
}

/// JSON members `,"key":value` for every field.
struct JsonFields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl JsonFields<'_, '_> {
    fn member(&mut self, field: &Field, write: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .w
                .write_char(',')
                .and_then(|()| json_string(self.w, field.name()))
                .and_then(|()| self.w.write_char(':'))
                .and_then(|()| write(self.w));
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.member(field, |w| write!(w, "{value}"));
        } else {
            // JSON has no NaN or infinity.
            self.member(field, |w| write!(w, "\"{value}\""));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |w| json_string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |w| {
            SCRATCH.with_borrow_mut(|scratch| {
                scratch.clear();
                write!(scratch, "{value:?}")?;
                json_string(w, scratch)
            })
        });
    }
}

/// `s` as a JSON string literal.
fn json_string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c < ' ' => "",
            _ => continue,
        };
        w.write_str(&s[plain..i])?;
        if escape.is_empty() {
            write!(w, "\\u{:04x}", u32::from(c))?;
        } else {
            w.write_str(escape)?;
        }
        plain = i + c.len_utf8();
    }
    w.write_str(&s[plain..])?;
    w.write_char('"')
}

/// The [`MakeWriter`] of the batch: every line it is given joins the pending batch.
#[derive(Clone)]
pub struct BatchWriter(Arc<Batch>);

struct Batch {
    pending: Mutex<Vec<u8>>,
    /// The sink and a spare buffer; held while writing, so batches go out in order.
    out: Mutex<Sink>,
    flusher: std::thread::Thread,
    stopping: AtomicBool,
}

struct Sink {
    writer: Box<dyn Write + Send>,
    spare: Vec<u8>,
}

/// Stops the flushing thread and writes what is pending when dropped.
pub struct LogGuard {
    batch: Arc<Batch>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-done: a buffer and a writer.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BatchWriter {
    /// A writer batching into `sink`, and the guard of its flushing thread.
    pub fn spawn(sink: Box<dyn Write + Send>) -> (Self, LogGuard) {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Batch>>();
        let thread = std::thread::Builder::new()
            .name("vigia-log".into())
            .spawn(move || {
                let Ok(batch) = rx.recv() else { return };
                loop {
                    std::thread::park();
                    let stopping = batch.stopping.load(Ordering::Acquire);
                    if !stopping {
                        std::thread::sleep(FLUSH_INTERVAL);
                    }
                    // Nowhere to report a failing stderr; the next batch tries again.
                    let _ = batch.flush();
                    if stopping {
                        return;
                    }
                }
            })
            .expect("BUG: cannot start the log thread");
        let batch = Arc::new(Batch {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(Sink {
                writer: sink,
                spare: Vec::with_capacity(64 * 1024),
            }),
            flusher: thread.thread().clone(),
            stopping: AtomicBool::new(false),
        });
        tx.send(batch.clone())
            .expect("BUG: the log thread waits for its batch");
        (
            Self(batch.clone()),
            LogGuard {
                batch,
                thread: Some(thread),
            },
        )
    }
}

impl Batch {
    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut pending = lock(&self.pending);
        let first = pending.is_empty();
        pending.extend_from_slice(line);
        let full = pending.len() >= HIGH_WATER;
        drop(pending);
        if full {
            self.flush()
        } else {
            if first {
                self.flusher.unpark();
            }
            Ok(())
        }
    }

    /// Writes out the pending batch. The sink's lock is taken first, so every line appended
    /// before this call goes out before any line appended after it.
    fn flush(&self) -> io::Result<()> {
        let mut out = lock(&self.out);
        let sink = &mut *out;
        std::mem::swap(&mut *lock(&self.pending), &mut sink.spare);
        let written = sink
            .writer
            .write_all(&sink.spare)
            .and_then(|()| sink.writer.flush());
        sink.spare.clear();
        written
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.batch.stopping.store(true, Ordering::Release);
        self.batch.flusher.unpark();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = self.batch.flush();
    }
}

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_without_loss_and_the_guard_writes_the_rest() {
        let sink = Shared::default();
        let (writer, guard) = BatchWriter::spawn(Box::new(sink.clone()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        w.write_all(format!("{t} {i}\n").as_bytes())
                            .expect("written");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        drop(guard);
        let text = String::from_utf8(lock(&sink.0).clone()).expect("UTF-8");
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').expect("two numbers");
            let (t, i): (usize, usize) = (t.parse().expect("thread"), i.parse().expect("index"));
            assert_eq!(i, next[t], "thread {t}'s lines out of order or lost");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    /// The lines `format` writes for one event with a message and fields of every kind.
    fn one_line(format: LineFormat) -> String {
        let sink = Shared::default();
        let writer = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let absent: Option<&str> = None;
            tracing::info!(
                request_id = %"abc-1",
                path = "/api/v1/auth/whoami",
                quoted = "say \"hi\"\n\tnow\u{1}",
                status = 200u16,
                delta = -3i64,
                ok = true,
                ratio = 0.5f64,
                broken = f64::NAN,
                absent,
                "request {}",
                7
            );
        });
        String::from_utf8(lock(&sink.0).clone()).expect("UTF-8")
    }

    #[test]
    fn json_lines_are_json_with_every_field_flattened() {
        let line = one_line(LineFormat::Json);
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], module_path!());
        assert_eq!(value["message"], "request 7");
        assert_eq!(value["request_id"], "abc-1");
        assert_eq!(value["path"], "/api/v1/auth/whoami");
        assert_eq!(value["quoted"], "say \"hi\"\n\tnow\u{1}");
        assert_eq!(value["status"], 200);
        assert_eq!(value["delta"], -3);
        assert_eq!(value["ok"], true);
        assert_eq!(value["ratio"], 0.5);
        assert_eq!(value["broken"], "NaN");
        assert!(value.get("absent").is_none(), "None fields are left out");
        let stamp = value["timestamp"].as_str().expect("timestamp");
        assert!(
            time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
                .is_ok()
                && stamp.len() == 27
                && stamp.ends_with('Z'),
            "{stamp}"
        );
    }

    #[test]
    fn text_lines_put_the_message_first_and_quote_what_needs_it() {
        let line = one_line(LineFormat::Text);
        let (stamp, rest) = line.split_once(' ').expect("timestamp first");
        assert_eq!(stamp.len(), 27, "{line}");
        assert_eq!(
            rest,
            format!(
                " INFO {}: request 7 request_id=abc-1 path=/api/v1/auth/whoami \
                 quoted=\"say \\\"hi\\\"\\n\\tnow\\u{{1}}\" status=200 delta=-3 ok=true ratio=0.5 \
                 broken=NaN\n",
                module_path!()
            )
        );
    }

    #[test]
    fn a_line_is_written_soon_without_further_lines() {
        let sink = Shared::default();
        let (mut writer, _guard) = BatchWriter::spawn(Box::new(sink.clone()));
        writer.write_all(b"alone\n").expect("written");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while lock(&sink.0).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "a lone line was never flushed"
            );
            std::thread::yield_now();
        }
        assert_eq!(&*lock(&sink.0), b"alone\n");
    }
}
