//! Group commit of issued tokens: requests hand their records (activity event, refresh
//! token) to one writer, which stores whatever has queued up in one transaction and answers
//! each request only once that transaction committed. Nothing is acknowledged before it is
//! stored; under load many tokens share one commit instead of paying one each. The provider
//! runs a second one for failed client authentications, so that those never wait in line
//! with (or ahead of) the tokens.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::model::IssueRecord;
use crate::store::{Backend, Store, StoreError};

/// Most records in one transaction.
const BATCH: usize = 256;

/// Batches committing at once on PostgreSQL: the next batch is sent while the previous one
/// waits for its WAL flush (one at a time, the commit latency capped tokens per second:
/// 6 900/s against 8 800/s with four in the same bench). SQLite has one writer: one batch.
const POSTGRES_WRITERS: usize = 4;

type Pending = (IssueRecord, oneshot::Sender<bool>);

#[derive(Clone)]
pub struct IssueLog {
    store: Arc<dyn Store>,
    queue: Option<mpsc::Sender<Pending>>,
}

impl IssueLog {
    /// Starts the writer on the current runtime (without one, records are written directly).
    pub fn start(store: Arc<dyn Store>) -> Self {
        let queue = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let (tx, rx) = mpsc::channel(4 * BATCH);
            runtime.spawn(write(store.clone(), rx));
            tx
        });
        Self { store, queue }
    }

    /// Returns once the record is committed.
    pub async fn record(&self, record: IssueRecord) -> Result<(), StoreError> {
        let Some(queue) = &self.queue else {
            return self
                .store
                .record_issues(std::slice::from_ref(&record))
                .await;
        };
        let (done, stored) = oneshot::channel();
        match queue.send((record, done)).await {
            Ok(()) => match stored.await {
                Ok(true) => Ok(()),
                _ => Err(StoreError::Database(sqlx::Error::WorkerCrashed)),
            },
            // The writer is gone (shutting down): write this one directly.
            Err(mpsc::error::SendError((record, _))) => {
                self.store
                    .record_issues(std::slice::from_ref(&record))
                    .await
            }
        }
    }
}

async fn write(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Pending>) {
    // A permit is taken before the queue is read, so while every writer waits on its commit
    // the next records gather into one batch.
    let writers = Arc::new(Semaphore::new(match store.backend() {
        Backend::Postgres => POSTGRES_WRITERS,
        Backend::Sqlite => 1,
    }));
    loop {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
        if queue.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let store = store.clone();
        tokio::spawn(async move {
            let (records, replies): (Vec<IssueRecord>, Vec<_>) = batch.into_iter().unzip();
            let stored = match store.record_issues(&records).await {
                Ok(()) => true,
                Err(err) => {
                    tracing::error!(error = %err, tokens = records.len(), "issued tokens not recorded; refusing them");
                    false
                }
            };
            drop(permit);
            for done in replies {
                let _ = done.send(stored);
            }
        });
    }
}
