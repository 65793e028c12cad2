//! Logging: `tracing` to stderr, `key=value` text in development and one JSON object per line
//! in production; the level comes from `RUST_LOG` (default `info`).
//!
//! Lines are written by [`LineFormat`], never by tracing-subscriber's own formatters: those
//! Debug-format every field through ANSI styling or an intermediate map (about 6% of a token
//! check's CPU under load, perf), and its compact format writes message text raw.
//!
//! A log line cannot be forged: one event is always exactly one line, because every character
//! [`must_escape`] names (C0 and C1 controls, DEL, the Unicode line and paragraph separators,
//! the bidirectional controls) is escaped wherever it appears — message, field values, field
//! names, target — in both formats. Values stay recoverable: text values are bare or quoted
//! with `\"`, `\\`, `\n`, `\r`, `\t` and `\u{…}` escapes; JSON values are JSON strings. A
//! login name such as `"x\r\x1b[2K…"` therefore reaches the lockout alert line as
//! `username="x\r\u{1b}[2K…"`.
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
        Arc, Mutex, MutexGuard, OnceLock, PoisonError,
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
    let format = match environment {
        // At a terminal the level is coloured (see `LineFormat::Text`); the text is the same.
        Environment::Development => LineFormat::Text,
        Environment::Production => LineFormat::Json,
    };
    let _ = builder.event_format(format).try_init();
    guard
}

/// One line per event: `2026-11-26T03:34:42.036281Z  INFO target: message key=value …`, or
/// `{"timestamp":…,"level":…,"target":…,"message":…,"key":value,…}` (fields flattened). Text
/// lines colour the level when the writer has ANSI enabled (an interactive terminal); nothing
/// else in a line ever carries a raw control character.
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
                if w.has_ansi_escapes() {
                    let colour = match *meta.level() {
                        tracing::Level::ERROR => "31",
                        tracing::Level::WARN => "33",
                        tracing::Level::INFO => "32",
                        tracing::Level::DEBUG => "34",
                        tracing::Level::TRACE => "35",
                    };
                    write!(w, " \x1b[{colour}m{level:>5}\x1b[0m ")?;
                } else {
                    write!(w, " {level:>5} ")?;
                }
                Escaper::plain(&mut w).write_str(meta.target())?;
                w.write_str(": ")?;
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
    /// Scratch space for fields given as `Debug` or `Display` values (their text is needed
    /// whole before it is escaped).
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

/// Whether `c` may never appear raw in a log line: the C0 controls (line feed, carriage
/// return, tab, ESC, …), DEL, the C1 controls (NEL, CSI, …), the Unicode line and paragraph
/// separators (U+2028, U+2029: line breaks to many viewers), and the bidirectional formatting
/// controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which reorder what a
/// terminal or log viewer shows without changing the bytes.
pub fn must_escape(c: char) -> bool {
    matches!(
        c,
        '\0'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// Writes text with `\\`, `\n`, `\r`, `\t` and `\u{…}` escapes for every [`must_escape`]
/// character (and `\"` inside a quoted value), so text written through it is one line and can
/// be read back exactly.
struct Escaper<'a, W: fmt::Write> {
    w: &'a mut W,
    /// Inside a quoted value: `"` is escaped too.
    quoted: bool,
}

impl<'a, W: fmt::Write> Escaper<'a, W> {
    /// For message text, targets and field names (not quoted).
    fn plain(w: &'a mut W) -> Self {
        Self { w, quoted: false }
    }
}

impl<W: fmt::Write> fmt::Write for Escaper<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '\\' => "\\\\",
                '"' if self.quoted => "\\\"",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if must_escape(c) => "",
                _ => continue,
            };
            self.w.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.w, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                self.w.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.w.write_str(&s[plain..])
    }
}

/// A text value: bare when it is non-empty and holds no space, `"`, `=` or [`must_escape`]
/// character (a bare value is literal, up to the next space), else quoted with escapes.
fn text_value(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let bare = !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, ' ' | '"' | '=') || must_escape(c));
    if bare {
        return w.write_str(s);
    }
    w.write_char('"')?;
    Escaper { w, quoted: true }.write_str(s)?;
    w.write_char('"')
}

/// `key=value` fields; values with spaces, quotes, `=` or control characters (or empty) are
/// quoted and escaped.
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
            Escaper::plain(&mut *self.w).write_fmt(value)
        } else {
            self.w
                .write_char(' ')
                .and_then(|()| Escaper::plain(&mut *self.w).write_str(field.name()))
                .and_then(|()| self.w.write_char('='))
                .and_then(|()| match text {
                    Some(s) => text_value(self.w, s),
                    // A `Debug` or `Display` value: its text is needed whole to choose bare
                    // or quoted.
                    None => SCRATCH.with_borrow_mut(|scratch| {
                        scratch.clear();
                        scratch.write_fmt(value)?;
                        text_value(self.w, scratch)
                    }),
                })
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

/// `s` as a JSON string literal, every [`must_escape`] character escaped (`\n`, `\r`, `\t` or
/// `\uXXXX`; JSON itself demands it only of C0 controls).
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
            c if must_escape(c) => "",
            _ => continue,
        };
        w.write_str(&s[plain..i])?;
        if escape.is_empty() {
            // Every such character is in the Basic Multilingual Plane: four digits suffice.
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
    /// The log thread, set once it is started (before any line can arrive).
    flusher: OnceLock<std::thread::Thread>,
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
        let batch = Arc::new(Batch {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(Sink {
                writer: sink,
                spare: Vec::with_capacity(64 * 1024),
            }),
            flusher: OnceLock::new(),
            stopping: AtomicBool::new(false),
        });
        let shared = batch.clone();
        // The thread learns of a new batch, and of stopping, from `unpark` alone, so it must
        // block in nothing else that parks: a channel's `recv` here used to swallow a wake-up,
        // and a guard dropped at once then waited forever for the thread.
        let thread = std::thread::Builder::new()
            .name("vigia-log".into())
            .spawn(move || {
                loop {
                    std::thread::park();
                    let stopping = shared.stopping.load(Ordering::Acquire);
                    if !stopping {
                        std::thread::sleep(FLUSH_INTERVAL);
                    }
                    // Nowhere to report a failing stderr; the next batch tries again.
                    let _ = shared.flush();
                    if stopping {
                        return;
                    }
                }
            })
            .expect("BUG: cannot start the log thread");
        if batch.flusher.set(thread.thread().clone()).is_err() {
            unreachable!("BUG: the log thread is set once, here");
        }
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
    fn wake(&self) {
        if let Some(thread) = self.flusher.get() {
            thread.unpark();
        }
    }

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
                self.wake();
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
        self.batch.wake();
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
        written(format, false, || {
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
        })
    }

    /// What `format` writes for the events `emit` makes; `ansi` as at a terminal.
    fn written(format: LineFormat, ansi: bool, emit: impl FnOnce()) -> String {
        let sink = Shared::default();
        let writer = {
            let sink = sink.clone();
            move || sink.clone()
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(ansi)
            .event_format(format)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
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
    fn a_guard_dropped_at_once_never_hangs_and_first_lines_are_never_stranded() {
        // Start and stop at once (as `serve` does when its configuration is refused), or write
        // one line right after starting: every wake-up must reach the log thread. Several
        // threads at it make the scheduler interleave them as a loaded machine does.
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..4 {
            let done = done.clone();
            std::thread::spawn(move || {
                for i in 0..1_050 {
                    let sink = Shared::default();
                    let (mut writer, guard) = BatchWriter::spawn(Box::new(sink.clone()));
                    if i >= 1_000 {
                        writer.write_all(b"first\n").expect("written");
                        let deadline = std::time::Instant::now() + Duration::from_secs(5);
                        while lock(&sink.0).is_empty() {
                            if std::time::Instant::now() > deadline {
                                let _ = done.send(Err(format!("{t}/{i}: a first line stranded")));
                                return;
                            }
                            std::thread::yield_now();
                        }
                    }
                    drop(guard);
                }
                let _ = done.send(Ok(()));
            });
        }
        for _ in 0..4 {
            match finished.recv_timeout(Duration::from_secs(30)) {
                Ok(outcome) => outcome.expect("every line written"),
                Err(_) => panic!("dropping a fresh guard hung"),
            }
        }
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

    /// Characters a log line must never carry raw, with characters that need quoting or
    /// escaping in a value, and some letters.
    fn nasty_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let special = prop::sample::select(vec![
            '\0', '\n', '\r', '\t', '\x0b', '\x0c', '\x07', '\x08', '\x1b', '\x7f', '\u{80}',
            '\u{85}', '\u{9b}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{61c}', '\u{200e}',
            '\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '"', '\\', '=', ' ', '{', '}', 'u',
            'é', '€', '😀',
        ]);
        let c = prop_oneof![3 => any::<char>(), 3 => special, 2 => prop::char::range('a', 'z')];
        prop::collection::vec(c, 0..32).prop_map(String::from_iter)
    }

    /// The line is one line, and nothing in it is a raw control character.
    fn assert_one_clean_line(line: &str) {
        assert!(line.ends_with('\n'), "{line:?}");
        let body = &line[..line.len() - 1];
        assert!(!body.contains('\n'), "more than one line: {line:?}");
        assert!(
            !body.chars().any(must_escape),
            "a raw control character: {line:?}"
        );
    }

    /// Reads one escaped text unit from the start of `s`: up to the closing `"` when `quoted`,
    /// else to the end. The text and what follows it.
    fn unescape(s: &str, quoted: bool) -> Option<(String, &str)> {
        let mut out = String::new();
        let mut chars = s.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' if quoted => return Some((out, &s[i + 1..])),
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    '\\' => out.push('\\'),
                    '"' if quoted => out.push('"'),
                    'u' => {
                        if chars.next()?.1 != '{' {
                            return None;
                        }
                        let mut hex = String::new();
                        loop {
                            match chars.next()?.1 {
                                '}' => break,
                                h => hex.push(h),
                            }
                        }
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        (!quoted).then_some((out, ""))
    }

    /// The ` key=value` fields of a text line after its message, values unescaped.
    fn text_fields(mut rest: &str) -> Option<Vec<(String, String)>> {
        let mut fields = Vec::new();
        rest = rest.strip_suffix('\n')?;
        while !rest.is_empty() {
            let (key, after) = rest.strip_prefix(' ')?.split_once('=')?;
            let (value, next) = match after.strip_prefix('"') {
                Some(quoted) => unescape(quoted, true)?,
                None => {
                    let end = after.find(' ').unwrap_or(after.len());
                    (after[..end].to_owned(), &after[end..])
                }
            };
            fields.push((key.to_owned(), value));
            rest = next;
        }
        Some(fields)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn text_values_are_one_clean_line_and_read_back_exactly(value in nasty_text()) {
            let line = written(LineFormat::Text, false, || {
                tracing::warn!(v = value.as_str(), d = %value, n = 1, "m");
            });
            assert_one_clean_line(&line);
            let (_, rest) = line.split_once(": m").expect("the message");
            let fields = text_fields(rest).expect("well-formed fields");
            let expected = [("v", value.as_str()), ("d", value.as_str()), ("n", "1")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()));
            proptest::prop_assert_eq!(fields, expected.to_vec(), "{:?}", line);
        }

        #[test]
        fn text_messages_are_one_clean_line_and_read_back_exactly(message in nasty_text()) {
            let line = written(LineFormat::Text, false, || tracing::warn!("{message}"));
            assert_one_clean_line(&line);
            let (_, rest) = line.split_once(": ").expect("the target");
            let (read, _) = unescape(rest.strip_suffix('\n').expect("newline"), false)
                .expect("well-formed message");
            proptest::prop_assert_eq!(read, message, "{:?}", line);
        }

        #[test]
        fn json_lines_are_one_clean_line_and_parse_back_exactly(
            message in nasty_text(),
            value in nasty_text(),
        ) {
            let line = written(LineFormat::Json, false, || {
                tracing::warn!(v = value.as_str(), d = %value, "{message}");
            });
            assert_one_clean_line(&line);
            let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON");
            proptest::prop_assert_eq!(&parsed["message"], &serde_json::json!(message));
            proptest::prop_assert_eq!(&parsed["v"], &serde_json::json!(value));
            proptest::prop_assert_eq!(&parsed["d"], &serde_json::json!(value));
        }
    }

    /// An event whose target, field name, value and message hold control characters.
    fn forged() {
        tracing::event!(target: "t\x1b[2J", tracing::Level::ERROR, "na\rme" = "v\u{202e}", "m\u{2028}");
    }

    #[test]
    fn targets_and_field_names_are_escaped_too_and_only_the_level_is_coloured() {
        let text = written(LineFormat::Text, true, forged);
        assert!(
            text.ends_with(
                " \x1b[31mERROR\x1b[0m t\\u{1b}[2J: m\\u{2028} na\\rme=\"v\\u{202e}\"\n"
            ),
            "{text:?}"
        );
        assert_one_clean_line(&text.replace("\x1b[31m", "").replace("\x1b[0m", ""));
        let json = written(LineFormat::Json, true, forged);
        assert_one_clean_line(&json);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(parsed["target"], "t\x1b[2J");
        assert_eq!(parsed["na\rme"], "v\u{202e}");
        assert!(json.contains(r#""message":"m\u2028""#), "{json}");
    }
}
