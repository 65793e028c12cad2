//! Logging: `tracing` to stderr, readable in development and JSON in production; the level
//! comes from `RUST_LOG` (default `info`).
//!
//! Formatted lines are appended to an in-memory batch that a background thread writes out
//! [`FLUSH_INTERVAL`] after the batch's first line. A request therefore costs one copy under a
//! mutex: no system call, and at most one thread wake-up per batch rather than per line (a
//! channel per line, as `tracing-appender` does it, cost about 15% of token-check throughput
//! under load, measured with perf). The batch is not lossy: past [`HIGH_WATER`] bytes the
//! logging thread writes it out itself, so a flood slows its writers down rather than dropping,
//! say, a lockout alert.

use std::{
    io::{self, Write},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter};

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
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development => builder.compact().try_init(),
    };
    guard
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
                        w.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(lock(&sink.0).clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines out of order or lost");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn a_line_is_written_soon_without_further_lines() {
        let sink = Shared::default();
        let (mut writer, _guard) = BatchWriter::spawn(Box::new(sink.clone()));
        writer.write_all(b"alone\n").unwrap();
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
