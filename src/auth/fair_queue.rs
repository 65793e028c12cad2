//! A bounded work queue shared fairly between scopes (tenants), served by a fixed set of
//! threads. It knows nothing of passwords: [`super::password::Hasher`] puts its argon2 jobs
//! here.
//!
//! Why not one FIFO: with one queue, a tenant that floods logins (or change-password calls)
//! fills it, and every other tenant's logins are refused while the flood lasts. Here:
//!
//! - **Service is round-robin over scopes**: each thread takes the next job of the next scope
//!   that has one, so a scope with one waiting job waits for at most one job of each other
//!   waiting scope, however many the flooding one queued.
//! - **Admission takes from the longest queue**: jobs running and waiting are bounded
//!   (`workers + queue`; each argon2 job holds 19 MiB). When the bound is reached, a job of a
//!   scope that waits for fewer jobs than the longest queue's scope displaces that scope's
//!   newest job (whose caller gets `Busy`: 503 + `Retry-After`); otherwise the new job is the
//!   one refused. A scope within its fair share is thus never refused because of another's
//!   flood.
//! - A job whose caller has gone (the client disconnected) is dropped unrun.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    sync::{Arc, Condvar, Mutex, MutexGuard},
};

/// A job as the queue sees it: run it (and then deliver its result), or refuse it.
pub trait Task: Send {
    /// Does the work; returns what delivers the result, called once the job's slot is free.
    fn run(self: Box<Self>) -> Box<dyn FnOnce() + Send>;
    /// Tells the caller the job was refused (displaced by a fairer one).
    fn refuse(self: Box<Self>);
    /// Whether nobody waits for the result any more.
    fn abandoned(&self) -> bool;
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

pub struct FairQueue<K> {
    state: Mutex<State<K>>,
    ready: Condvar,
}

struct State<K> {
    /// Waiting jobs per scope, oldest first.
    queues: HashMap<K, VecDeque<Box<dyn Task>>>,
    /// Scopes with waiting jobs, in the order they are served.
    ring: VecDeque<K>,
    waiting: usize,
    running: usize,
    /// Most jobs running and waiting at once.
    capacity: usize,
    stopped: bool,
}

impl<K: Clone + Eq + Hash + Send + 'static> FairQueue<K> {
    /// A queue for at most `capacity` jobs running and waiting, served by `workers` threads
    /// named `name-N`.
    pub fn start(name: &str, workers: usize, capacity: usize) -> std::io::Result<Arc<Self>> {
        let queue = Arc::new(Self {
            state: Mutex::new(State {
                queues: HashMap::new(),
                ring: VecDeque::new(),
                waiting: 0,
                running: 0,
                capacity: capacity.max(workers).max(1),
                stopped: false,
            }),
            ready: Condvar::new(),
        });
        for i in 0..workers.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || queue.serve())?;
        }
        Ok(queue)
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panic inside a job happens outside the lock; a poisoned lock still holds a
        // consistent state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs running or waiting.
    pub fn in_flight(&self) -> usize {
        let state = self.lock();
        state.running + state.waiting
    }

    /// Queues `task` for `scope`; `Err(Full)` when it is refused (see the module documentation).
    pub fn submit(&self, scope: &K, task: Box<dyn Task>) -> Result<(), Full> {
        let mut state = self.lock();
        if state.stopped {
            return Err(Full);
        }
        let mut displaced = None;
        if state.running + state.waiting >= state.capacity {
            let mine = state.queues.get(scope).map_or(0, VecDeque::len);
            let longest = state
                .queues
                .iter()
                .max_by_key(|(_, q)| q.len())
                .filter(|(_, q)| q.len() > mine + 1)
                .map(|(k, _)| k.clone());
            let Some(longest) = longest else {
                return Err(Full);
            };
            displaced = state.take_newest(&longest);
        }
        match state.queues.get_mut(scope) {
            Some(queue) => queue.push_back(task),
            None => {
                state.queues.insert(scope.clone(), VecDeque::from([task]));
                state.ring.push_back(scope.clone());
            }
        }
        state.waiting += 1;
        drop(state);
        self.ready.notify_one();
        if let Some(displaced) = displaced {
            displaced.refuse();
        }
        Ok(())
    }

    /// Stops the threads once the queue is empty; later submissions are refused.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.ready.notify_all();
    }

    /// A thread's life: take the next scope's next job, run it, deliver, repeat.
    fn serve(&self) {
        loop {
            let task = {
                let mut state = self.lock();
                loop {
                    if let Some(task) = state.next() {
                        state.running += 1;
                        break task;
                    }
                    if state.stopped {
                        return;
                    }
                    state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            if task.abandoned() {
                self.lock().running -= 1;
                continue;
            }
            let deliver = task.run();
            // The slot is freed before the answer goes out: a caller that has its answer
            // never finds its own job still counted.
            self.lock().running -= 1;
            deliver();
        }
    }
}

impl<K: Clone + Eq + Hash> State<K> {
    /// The next job in round-robin order over scopes.
    fn next(&mut self) -> Option<Box<dyn Task>> {
        let scope = self.ring.pop_front()?;
        let queue = self
            .queues
            .get_mut(&scope)
            .expect("BUG: every scope in the ring has a queue");
        let task = queue
            .pop_front()
            .expect("BUG: a scope's queue in the ring is never empty");
        if queue.is_empty() {
            self.queues.remove(&scope);
        } else {
            self.ring.push_back(scope);
        }
        self.waiting -= 1;
        Some(task)
    }

    /// Removes `scope`'s newest waiting job.
    fn take_newest(&mut self, scope: &K) -> Option<Box<dyn Task>> {
        let queue = self.queues.get_mut(scope)?;
        let task = queue.pop_back()?;
        if queue.is_empty() {
            self.queues.remove(scope);
            self.ring.retain(|k| k != scope);
        }
        self.waiting -= 1;
        Some(task)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A job that blocks until released, then reports its name (or its refusal).
    struct Probe {
        name: &'static str,
        gate: Arc<(Mutex<bool>, Condvar)>,
        out: mpsc::Sender<Result<&'static str, &'static str>>,
    }

    impl Task for Probe {
        fn run(self: Box<Self>) -> Box<dyn FnOnce() + Send> {
            let (lock, cv) = &*self.gate;
            let mut open = lock.lock().expect("gate");
            while !*open {
                open = cv.wait(open).expect("gate");
            }
            let (name, out) = (self.name, self.out);
            Box::new(move || {
                let _ = out.send(Ok(name));
            })
        }
        fn refuse(self: Box<Self>) {
            let _ = self.out.send(Err(self.name));
        }
        fn abandoned(&self) -> bool {
            false
        }
    }

    /// Probes sharing one gate, reporting to one channel.
    struct Probes {
        gate: Arc<(Mutex<bool>, Condvar)>,
        out: mpsc::Sender<Result<&'static str, &'static str>>,
    }

    impl Probes {
        fn new() -> (Self, mpsc::Receiver<Result<&'static str, &'static str>>) {
            let (out, rx) = mpsc::channel();
            let gate = Arc::new((Mutex::new(false), Condvar::new()));
            (Self { gate, out }, rx)
        }

        fn probe(&self, name: &'static str) -> Box<dyn Task> {
            Box::new(Probe {
                name,
                gate: self.gate.clone(),
                out: self.out.clone(),
            })
        }

        /// Lets every probe run.
        fn release(&self) {
            *self.gate.0.lock().expect("gate") = true;
            self.gate.1.notify_all();
        }
    }

    #[test]
    fn a_flooding_scope_is_displaced_and_others_are_served_in_turn() {
        let queue = FairQueue::<&'static str>::start("test", 1, 5).expect("queue");
        let (probes, rx) = Probes::new();
        let probe = |name| probes.probe(name);
        // Tenant a floods: one job runs (blocked on the gate), four wait; the queue is full.
        for name in ["a0", "a1", "a2", "a3", "a4"] {
            queue.submit(&"a", probe(name)).expect("admitted");
        }
        assert_eq!(
            queue.submit(&"a", probe("a5")),
            Err(Full),
            "a is refused its sixth"
        );
        // Tenant b's job displaces a's newest waiting one.
        queue.submit(&"b", probe("b0")).expect("b is admitted");
        assert_eq!(rx.recv().expect("refusal"), Err("a4"));
        probes.release();
        let served: Vec<_> = (0..5).map(|_| rx.recv().expect("served")).collect();
        // Round-robin: b waits for at most one more job of a (a1, when a0 was already running
        // as b arrived), not for a's whole queue.
        assert_eq!(served[0], Ok("a0"));
        let b_at = served
            .iter()
            .position(|s| *s == Ok("b0"))
            .expect("b served");
        assert!(b_at <= 2, "{served:?}");
        let mut rest: Vec<_> = served.into_iter().filter(|s| *s != Ok("b0")).collect();
        rest.sort();
        assert_eq!(rest, [Ok("a0"), Ok("a1"), Ok("a2"), Ok("a3")]);
        assert_eq!(queue.in_flight(), 0);
        queue.stop();
    }

    #[test]
    fn a_scope_within_its_share_is_refused_only_when_every_scope_is() {
        let queue = FairQueue::<&'static str>::start("test", 1, 4).expect("queue");
        let (probes, rx) = Probes::new();
        let probe = |name| probes.probe(name);
        for (scope, name) in [("a", "a0"), ("b", "b0"), ("c", "c0"), ("d", "d0")] {
            queue.submit(&scope, probe(name)).expect("admitted");
        }
        // Full, and every scope holds its one share: e is refused, nobody is displaced.
        assert_eq!(queue.submit(&"e", probe("e0")), Err(Full));
        probes.release();
        let mut served: Vec<_> = (0..4).map(|_| rx.recv().expect("served")).collect();
        served.sort();
        assert_eq!(served, [Ok("a0"), Ok("b0"), Ok("c0"), Ok("d0")]);
        queue.stop();
    }
}
