//! Log lines to standard output, written in batches.
//!
//! Why by hand: at the default level every request logs an access line, and writing each
//! line as it was made cost a system call per request: 11 µs of CPU per request at 16
//! clients in the benchmark, a third of the proxy's (docs/benchmarks.md).
//! tracing-appender's non-blocking writer moves the write to a thread of its own, but
//! wakes that thread for nearly every line when traffic is light, which is the cost the
//! serving threads were built to avoid. Here each thread appends its lines to a buffer of
//! its own (an uncontended lock); a flusher thread writes every buffer each 100 ms, a
//! thread whose buffer grows past 64 KiB writes it at once, and a warning or an error is
//! written at once, after the lines its thread had buffered, so nothing about a failure
//! waits. Lines of one thread stay in order; lines of different threads may interleave
//! out of time order by up to the flush interval (each carries its time). Whatever is
//! buffered is written when the process ends normally (`Batched::flush`).

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_AT: usize = 64 * 1024;

type Buffer = Arc<Mutex<Vec<u8>>>;

/// A `MakeWriter` for tracing-subscriber; clones share the buffers and the output.
#[derive(Clone)]
pub struct Batched(Arc<Shared>);

struct Shared {
    out: Mutex<Box<dyn Write + Send>>,
    /// Every thread's buffer, for the flusher.
    buffers: Mutex<Vec<Buffer>>,
}

thread_local! {
    /// This thread's buffer for each `Batched` it has written to (one, but for tests).
    static MINE: RefCell<Vec<(Weak<Shared>, Buffer)>> = const { RefCell::new(Vec::new()) };
}

impl Batched {
    /// Writes to `out`; starts the flusher thread, which ends with the last clone.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let shared = Arc::new(Shared { out: Mutex::new(out), buffers: Mutex::default() });
        let weak = Arc::downgrade(&shared);
        let started = std::thread::Builder::new().name("log-flusher".into()).spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                let Some(shared) = weak.upgrade() else { return };
                shared.flush_all();
            }
        });
        if let Err(e) = started {
            eprintln!("cannot start the log flusher thread ({e}): log lines are written as they come");
        }
        Self(shared)
    }

    /// Writes out every thread's buffered lines.
    pub fn flush(&self) {
        self.0.flush_all();
    }

    fn buffer(&self) -> Buffer {
        MINE.with_borrow_mut(|mine| {
            mine.retain(|(owner, _)| owner.strong_count() > 0);
            if let Some((_, buffer)) = mine.iter().find(|(owner, _)| owner.as_ptr() == Arc::as_ptr(&self.0)) {
                return Arc::clone(buffer);
            }
            let buffer = Buffer::default();
            lock(&self.0.buffers).push(Arc::clone(&buffer));
            mine.push((Arc::downgrade(&self.0), Arc::clone(&buffer)));
            buffer
        })
    }
}

impl Shared {
    fn flush_all(&self) {
        let buffers = lock(&self.buffers).clone();
        let mut lines = Vec::new();
        for buffer in buffers {
            lines.append(&mut lock(&buffer));
        }
        if !lines.is_empty() {
            self.write(&lines);
        }
    }

    fn write(&self, lines: &[u8]) {
        let mut out = lock(&self.out);
        // Nowhere to report a failure to write the log; the lines are lost.
        let _ = out.write_all(lines).and_then(|()| out.flush());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One event's line: buffered, or written at once with what its thread had buffered.
pub struct Line {
    shared: Arc<Shared>,
    buffer: Buffer,
    at_once: bool,
}

impl Write for Line {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buffer = lock(&self.buffer);
        buffer.extend_from_slice(line);
        if self.at_once || buffer.len() >= FLUSH_AT {
            let lines = std::mem::take(&mut *buffer);
            drop(buffer);
            self.shared.write(&lines);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { shared: Arc::clone(&self.0), buffer: self.buffer(), at_once: false }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line { shared: Arc::clone(&self.0), buffer: self.buffer(), at_once: *meta.level() <= Level::WARN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that keeps what was written.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(kept: &Kept) -> String {
        String::from_utf8(lock(&kept.0).clone()).unwrap()
    }

    #[test]
    fn lines_wait_for_the_flush_and_a_warning_takes_them_along_in_order() {
        let kept = Kept::default();
        let batched = Batched::new(Box::new(kept.clone()));
        let subscriber = tracing_subscriber::fmt().with_writer(batched.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("first");
            tracing::info!("second");
            assert_eq!(text(&kept), "", "buffered");
            tracing::warn!("third");
        });
        let written = text(&kept);
        let at = |s| written.find(s).unwrap_or_else(|| panic!("{s} written: {written}"));
        assert!(at("first") < at("second") && at("second") < at("third"), "{written}");

        tracing::subscriber::with_default(
            tracing_subscriber::fmt().with_writer(batched.clone()).with_ansi(false).finish(),
            || tracing::info!("fourth"),
        );
        assert!(!text(&kept).contains("fourth"));
        batched.flush();
        assert!(text(&kept).contains("fourth"));
    }

    #[test]
    fn the_flusher_writes_buffered_lines_by_itself() {
        let kept = Kept::default();
        let batched = Batched::new(Box::new(kept.clone()));
        let subscriber = tracing_subscriber::fmt().with_writer(batched.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!("later"));
        for _ in 0..50 {
            if text(&kept).contains("later") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the flusher did not write the line");
    }
}
