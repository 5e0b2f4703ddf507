//! Sessions shared by the requests. llama.cpp calls block and each session's KV cache is used
//! by one thread at a time, so generations run on blocking threads, at most one per session;
//! requests past that wait in a bounded queue (the semaphore's waiters), and requests past the
//! queue are refused at once rather than piling up on a small device. Sessions are reused last
//! in, first out, so a client that continues its conversation usually finds its history still
//! in the KV cache.

use sail::session::{Model, Session, SessionParams};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

#[derive(Debug)]
pub struct Pool {
    model: Arc<Model>,
    params: SessionParams,
    sessions: Mutex<Vec<Session>>,
    slots: Arc<Semaphore>,
    pub parallel: usize,
    /// Requests accepted at once: running plus queued.
    capacity: usize,
    admitted: AtomicUsize,
    running: AtomicUsize,
}

/// A place among the accepted requests; given back on drop.
#[derive(Debug)]
pub struct Ticket(Arc<Pool>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, SeqCst);
    }
}

/// Why a job did not run to its end.
#[derive(Debug, PartialEq, Eq)]
pub enum Failed {
    /// No session became free before the deadline.
    TimedOut,
    /// The client went away while waiting.
    Abandoned,
    /// The job panicked (a bug); its session was dropped.
    Panicked,
}

impl Pool {
    pub fn new(model: Arc<Model>, params: SessionParams, parallel: usize, queue: usize) -> Arc<Pool> {
        let parallel = parallel.max(1);
        Arc::new(Pool {
            model,
            params,
            sessions: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(parallel)),
            parallel,
            capacity: parallel + queue,
            admitted: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        })
    }

    /// A ticket, or None when `parallel + queue` requests are already in.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        if self.admitted.fetch_add(1, SeqCst) >= self.capacity {
            self.admitted.fetch_sub(1, SeqCst);
            return None;
        }
        Some(Ticket(self.clone()))
    }

    /// (running, waiting) requests.
    pub fn load(&self) -> (usize, usize) {
        let running = self.running.load(SeqCst);
        (running, self.admitted.load(SeqCst).saturating_sub(running))
    }

    /// Waits for a free session (until `deadline`, or until `abandoned` completes), then runs
    /// `job` with it on a blocking thread.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        deadline: tokio::time::Instant,
        abandoned: impl Future<Output = ()>,
        job: impl FnOnce(&mut Session) -> T + Send + 'static,
    ) -> Result<T, Failed> {
        let permit = tokio::select! {
            p = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()) => match p {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(Failed::Panicked), // the semaphore is never closed
                Err(_) => return Err(Failed::TimedOut),
            },
            _ = abandoned => return Err(Failed::Abandoned),
        };
        self.running.fetch_add(1, SeqCst);
        let pool = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.sessions.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut s = idle.unwrap_or_else(|| Session::new(pool.model.clone(), pool.params.clone()));
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut s)));
            if out.is_ok() {
                pool.sessions.lock().unwrap_or_else(|e| e.into_inner()).push(s);
            }
            pool.running.fetch_sub(1, SeqCst);
            out
        })
        .await;
        match done {
            Ok(Ok(v)) => Ok(v),
            _ => Err(Failed::Panicked),
        }
    }
}
