//! The dynamic batcher: one thread per model merges the inputs of every waiting request
//! into encoder calls of at most `max_batch_tokens` tokens.
//!
//! Fairness (see `pick`): each call first takes whole short requests, smallest first, in up
//! to half its token budget, then fills the rest round-robin over the large ones. A lone
//! query rides in the next call even while many 2,048-passage requests are being worked
//! through, so its wait is bounded by about one call; large requests keep at least half of
//! every call.
//! Determinism: the library embeds every row independently of its batch-mates, so a text's
//! vector is the same whatever it was merged with.

use crate::metrics as m;
use e5::{Embeddings, Input, Model, RowInfo};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// The model behind a batcher. `e5::Model` is the real one; tests wrap it to inject faults.
pub trait Encoder: Send + Sync + 'static {
    fn model(&self) -> &Model;
    fn embed(&self, texts: &[Input<'_>]) -> e5::Result<Embeddings> {
        self.model().embed(texts)
    }
    fn embed_ids(&self, sequences: &[&[u32]]) -> e5::Result<Embeddings> {
        self.model().embed_ids(sequences)
    }
}

impl Encoder for Model {
    fn model(&self) -> &Model {
        self
    }
}

/// One input of a request: a text with its prefix choice, or a whole token sequence.
#[derive(Clone, Debug)]
pub enum Item {
    Text(Input<'static>),
    Ids(Vec<u32>),
}

#[derive(Debug)]
pub enum BatchError {
    /// The model's queue holds `--max-queue` inputs already.
    QueueFull,
    /// The library refused input `index` of the request.
    Input { index: usize, message: String },
    /// The encoder failed or panicked on this request's inputs.
    Failed(String),
}

/// A request's inputs as the batcher thread works through them.
struct Job {
    items: Vec<Item>,
    /// Tokens each item will run (after truncation): what the token budget counts.
    costs: Vec<usize>,
    /// Items handed to calls so far (they go in order).
    next: usize,
    data: Vec<f32>,
    rows: Vec<RowInfo>,
    /// Items whose vectors are in `data`.
    done: usize,
    /// Set when the encoder refused or panicked on this job's inputs.
    failed: Option<BatchError>,
    reply: oneshot::Sender<Result<Embeddings, BatchError>>,
}

/// The handle requests submit to; dropping every handle stops the thread once idle.
pub struct Batcher {
    tx: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    max_queue: usize,
}

impl Batcher {
    pub fn start(encoder: Arc<dyn Encoder>, name: String, max_batch_tokens: usize, max_queue: usize) -> Batcher {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker { encoder, name: name.clone(), budget: max_batch_tokens, queued: queued.clone() };
        std::thread::Builder::new()
            .name(format!("e5-batcher-{name}"))
            .spawn(move || worker.run(rx))
            .expect("spawning the batcher thread");
        Batcher { tx, queued, max_queue }
    }

    /// Embeds a request's items (`costs[i]`: tokens of item `i`), rows in the request's order.
    pub async fn embed(&self, items: Vec<Item>, costs: Vec<usize>) -> Result<Embeddings, BatchError> {
        let n = items.len();
        if self.queued.fetch_add(n, Ordering::SeqCst) + n > self.max_queue {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(BatchError::QueueFull);
        }
        let (reply, answer) = oneshot::channel();
        let job =
            Job { items, costs, next: 0, data: Vec::new(), rows: Vec::with_capacity(n), done: 0, failed: None, reply };
        if self.tx.send(job).is_err() {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(BatchError::Failed("the batcher has stopped".into()));
        }
        answer.await.unwrap_or_else(|_| Err(BatchError::Failed("the batcher dropped the request".into())))
    }

    /// Inputs waiting or running.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

struct Worker {
    encoder: Arc<dyn Encoder>,
    name: String,
    budget: usize,
    queued: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self, rx: mpsc::Receiver<Job>) {
        let mut active: Vec<Job> = Vec::new();
        let mut cursor = 0;
        loop {
            if active.is_empty() {
                match rx.recv() {
                    Ok(job) => active.push(job),
                    Err(_) => return,
                }
            }
            active.extend(rx.try_iter());
            // A client that went away (timeout, disconnect) frees its place at once.
            active.retain(|j| {
                let gone = j.reply.is_closed();
                if gone {
                    self.queued.fetch_sub(j.items.len(), Ordering::SeqCst);
                }
                !gone
            });
            m::queue_depth(&self.name, self.queued.load(Ordering::SeqCst));
            if active.is_empty() {
                continue;
            }
            cursor %= active.len();
            let batch = pick(&mut active, self.budget, cursor);
            cursor += 1;
            self.execute(&mut active, &batch);
            let (finished, waiting): (Vec<Job>, Vec<Job>) =
                active.drain(..).partition(|j| j.done == j.items.len() || j.failed.is_some());
            active = waiting;
            for job in finished {
                self.finish(job);
            }
        }
    }

    /// Runs `batch` (`(job, item)` pairs) as one call; if that fails, each job's share alone,
    /// so a panic or error lands on the request that caused it and no other.
    fn execute(&self, active: &mut [Job], batch: &[(usize, usize)]) {
        let tokens: usize = batch.iter().map(|&(j, i)| active[j].costs[i]).sum();
        m::batch(&self.name, batch.len(), tokens);
        if let Ok(out) = self.call(active, batch) {
            return scatter(active, batch, out);
        }
        let mut jobs: Vec<usize> = batch.iter().map(|&(j, _)| j).collect();
        jobs.sort_unstable();
        jobs.dedup();
        for j in jobs {
            let share: Vec<(usize, usize)> = batch.iter().copied().filter(|&(k, _)| k == j).collect();
            match self.call(active, &share) {
                Ok(out) => scatter(active, &share, out),
                Err(CallError::Input { at, message }) => {
                    active[j].failed = Some(BatchError::Input { index: share[at].1, message })
                }
                Err(CallError::Failed(message)) => active[j].failed = Some(BatchError::Failed(message)),
            }
        }
    }

    /// One encoder call over `batch`, texts and token sequences each in one library call;
    /// rows come back in `batch` order.
    fn call(&self, active: &[Job], batch: &[(usize, usize)]) -> Result<Embeddings, CallError> {
        let items: Vec<&Item> = batch.iter().map(|&(j, i)| &active[j].items[i]).collect();
        let run = || -> e5::Result<Embeddings> {
            let (mut texts, mut text_at, mut seqs, mut seq_at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (k, item) in items.iter().enumerate() {
                match item {
                    Item::Text(t) => {
                        texts.push(Input { kind: t.kind.clone(), text: std::borrow::Cow::Borrowed(&t.text) });
                        text_at.push(k);
                    }
                    Item::Ids(ids) => {
                        seqs.push(ids.as_slice());
                        seq_at.push(k);
                    }
                }
            }
            let by_text = if texts.is_empty() { None } else { Some(self.encoder.embed(&texts)) };
            let by_ids = if seqs.is_empty() { None } else { Some(self.encoder.embed_ids(&seqs)) };
            let dim = self.encoder.model().dim();
            let mut out = Embeddings { dim, data: vec![0.0; items.len() * dim], rows: vec![] };
            let mut rows: Vec<Option<RowInfo>> = vec![None; items.len()];
            for (part, at) in [(by_text, text_at), (by_ids, seq_at)] {
                let Some(part) = part else { continue };
                let part = part.map_err(|e| match e {
                    e5::Error::Input { index, message } => e5::Error::Input { index: at[index], message },
                    e => e,
                })?;
                for (row, v) in part.rows.into_iter().zip(part.data.chunks_exact(dim)) {
                    let k = at[row.input];
                    out.data[k * dim..(k + 1) * dim].copy_from_slice(v);
                    rows[k] = Some(row);
                }
            }
            out.rows = rows.into_iter().map(|r| r.expect("one row per input (the server never chunks)")).collect();
            Ok(out)
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e5::Error::Input { index, message })) => Err(CallError::Input { at: index, message }),
            Ok(Err(e)) => Err(CallError::Failed(e.to_string())),
            Err(panic) => {
                m::panic(&self.name);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(CallError::Failed(format!("the encoder panicked: {what}")))
            }
        }
    }

    fn finish(&self, job: Job) {
        self.queued.fetch_sub(job.items.len(), Ordering::SeqCst);
        let dim = self.encoder.model().dim();
        let answer = match job.failed {
            Some(e) => Err(e),
            None => Ok(Embeddings { dim, data: job.data, rows: job.rows }),
        };
        // The client may have gone; nothing to do then.
        let _ = job.reply.send(answer);
    }
}

enum CallError {
    /// Input `at` of the call was refused.
    Input {
        at: usize,
        message: String,
    },
    Failed(String),
}

/// The next call's inputs, within `budget` tokens (the first input always goes, however long).
/// A request is *large* while its remaining inputs cost more than half the budget.
/// 1. Whole short requests, smallest first, in half the budget (all of it when no large
///    request waits): a lone query never queues behind the inputs of large requests, only
///    behind at most half a call of other short requests.
/// 2. The rest round-robin over the large requests from `cursor`, one input per request per
///    pass: they always progress (at least half of every call is theirs) and share it fairly.
fn pick(active: &mut [Job], budget: usize, cursor: usize) -> Vec<(usize, usize)> {
    let remainder = |job: &Job| job.costs[job.next..].iter().sum::<usize>();
    let waiting = active.iter().enumerate().filter(|(_, j)| j.next < j.items.len());
    // (remaining tokens, job index) of each waiting job, split at half the budget.
    type Waiting = Vec<(usize, usize)>;
    let (short, large): (Waiting, Waiting) =
        waiting.map(|(k, j)| (remainder(j), k)).partition(|&(cost, _)| cost <= budget / 2);
    let short_share = if large.is_empty() { budget } else { budget / 2 };
    let (mut batch, mut used) = (Vec::new(), 0);
    let mut short = short;
    short.sort_unstable();
    for (cost, j) in short {
        if used + cost > short_share {
            break;
        }
        let job = &mut active[j];
        batch.extend((job.next..job.items.len()).map(|i| (j, i)));
        job.next = job.items.len();
        used += cost;
    }
    let mut large: Vec<usize> = large.into_iter().map(|(_, k)| k).collect();
    large.sort_unstable_by_key(|&k| (k + active.len() - cursor % active.len()) % active.len());
    loop {
        let mut added = false;
        for &j in &large {
            let job = &mut active[j];
            if job.next < job.items.len() {
                let cost = job.costs[job.next];
                if batch.is_empty() || used + cost <= budget {
                    batch.push((j, job.next));
                    job.next += 1;
                    used += cost;
                    added = true;
                }
            }
        }
        if !added {
            return batch;
        }
    }
}

/// Appends each call row to its job; items of a job go out and come back in order.
fn scatter(active: &mut [Job], batch: &[(usize, usize)], out: Embeddings) {
    let dim = out.dim;
    for ((&(j, i), mut row), v) in batch.iter().zip(out.rows).zip(out.data.chunks_exact(dim)) {
        let job = &mut active[j];
        debug_assert_eq!(job.done, i);
        row.input = i;
        job.data.extend_from_slice(v);
        job.rows.push(row);
        job.done += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiting request of `n` inputs of `cost` tokens each.
    fn job(n: usize, cost: usize) -> Job {
        let items = (0..n).map(|i| Item::Ids(vec![i as u32])).collect();
        let (reply, _) = oneshot::channel();
        Job { items, costs: vec![cost; n], next: 0, data: vec![], rows: vec![], done: 0, failed: None, reply }
    }

    #[test]
    fn a_query_behind_many_large_requests_goes_in_the_next_call() {
        // Eight 2,048-passage requests of 200 tokens each, then one 12-token query.
        let mut active: Vec<Job> = (0..8).map(|_| job(2048, 200)).collect();
        active.push(job(1, 12));
        let batch = pick(&mut active, 2048, 0);
        assert!(batch.contains(&(8, 0)), "{batch:?}");
        let tokens: usize = batch.iter().map(|&(j, i)| active[j].costs[i]).sum();
        assert!(tokens <= 2048, "{tokens}");
    }

    #[test]
    fn large_requests_keep_half_of_every_call_under_a_flood_of_queries() {
        let mut active: Vec<Job> = (0..500).map(|_| job(1, 16)).collect();
        active.push(job(100, 100));
        let batch = pick(&mut active, 2048, 0);
        let large: usize = batch.iter().filter(|&&(j, _)| j == 500).map(|_| 100).sum();
        assert!(large >= 2048 / 2 - 100, "the large request got {large} tokens");
        // Short requests went whole: 64 queries fill their half, the rest wait for later calls.
        assert_eq!(batch.iter().filter(|&&(j, _)| j < 500).count(), 64);
        let rest = pick(&mut active, 2048, 1);
        assert_eq!(rest.iter().filter(|&&(j, _)| j < 500).count(), 64, "the next call takes the next 64");
    }

    #[test]
    fn a_single_input_over_the_budget_still_runs_alone() {
        let mut active = vec![job(3, 5000)];
        assert_eq!(pick(&mut active, 2048, 0), vec![(0, 0)]);
        assert_eq!(pick(&mut active, 2048, 0), vec![(0, 1)]);
    }

    #[test]
    fn every_input_is_picked_once_in_order() {
        let mut active = vec![job(7, 300), job(2, 10), job(40, 90), job(1, 600)];
        let mut seen: Vec<Vec<usize>> = vec![vec![]; active.len()];
        let mut cursor = 0;
        while active.iter().any(|j| j.next < j.items.len()) {
            for (j, i) in pick(&mut active, 1024, cursor) {
                seen[j].push(i);
            }
            cursor += 1;
        }
        for (j, got) in seen.iter().enumerate() {
            assert_eq!(*got, (0..active[j].items.len()).collect::<Vec<_>>());
        }
    }
}
