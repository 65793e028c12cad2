//! The batched log writer: [`BatchWriter`] appends each formatted line to an in-memory batch
//! under a mutex, and a background thread writes the batch out [`FLUSH_INTERVAL`] after its
//! first line (or the appending thread itself, past [`HIGH_WATER`] bytes); [`LogGuard`] stops
//! the thread and writes what is left.

use std::{
    io::{self, Write},
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// How long the first line of a batch waits for company before the batch is written.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// A batch this large is written out at once, by whichever thread pushed it past.
pub(super) const HIGH_WATER: usize = 256 * 1024;

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

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-done: a buffer and a writer.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BatchWriter {
    /// Appends one whole line to the batch.
    pub(super) fn line(&self, line: &[u8]) -> io::Result<()> {
        self.0.append(line)
    }

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
