//! The state consumer's store writes, on a thread of their own: the consumer seals what it
//! folded ([`Fold::seal`]), hands the seal over once the outputs of the records folded into
//! it are acknowledged, and goes on folding while the store writes it. Seals are written in
//! the order handed over, so a partition's checkpoint only ever moves forward.

use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use orderflow_store::{SledStore, StoreError};

use crate::fold::{Fold, Sealed, Written};
use crate::RuntimeError;

pub(crate) struct StoreWriter {
    seals: Option<Sender<Sealed>>,
    written: Receiver<Result<Written, StoreError>>,
    /// Seals handed over and not landed yet.
    writing: usize,
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    pub(crate) fn start(store: Arc<SledStore>) -> Result<StoreWriter, RuntimeError> {
        let (seals, received) = mpsc::channel::<Sealed>();
        let (done, written) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                for sealed in received {
                    let started = Instant::now();
                    let result = sealed.write(store.as_ref());
                    metrics::histogram!(crate::telemetry::STORE_WRITE_DURATION.name)
                        .record(started.elapsed().as_secs_f64());
                    let failed = result.is_err();
                    if done.send(result).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|error| RuntimeError::Fatal(format!("starting the store writer: {error}")))?;
        Ok(StoreWriter {
            seals: Some(seals),
            written,
            writing: 0,
            thread: Some(thread),
        })
    }

    /// Hands `sealed` over to be written after the seals handed over before it.
    pub(crate) fn write(&mut self, sealed: Sealed) -> Result<(), RuntimeError> {
        let sent = self
            .seals
            .as_ref()
            .is_some_and(|seals| seals.send(sealed).is_ok());
        if !sent {
            return Err(self.stopped());
        }
        self.writing += 1;
        Ok(())
    }

    /// Seals handed over and not landed yet.
    pub(crate) fn writing(&self) -> usize {
        self.writing
    }

    /// Lands in `fold` the writes done so far, without waiting for any.
    pub(crate) fn land(&mut self, fold: &mut Fold) -> Result<(), RuntimeError> {
        while self.writing > 0 {
            match self.written.try_recv() {
                Ok(written) => self.landed(fold, written)?,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(self.stopped()),
            }
        }
        Ok(())
    }

    /// Waits until every seal handed over is written, and lands them in `fold`.
    pub(crate) fn land_all(&mut self, fold: &mut Fold) -> Result<(), RuntimeError> {
        while self.writing > 0 {
            match self.written.recv() {
                Ok(written) => self.landed(fold, written)?,
                Err(_) => return Err(self.stopped()),
            }
        }
        Ok(())
    }

    fn landed(
        &mut self,
        fold: &mut Fold,
        written: Result<Written, StoreError>,
    ) -> Result<(), RuntimeError> {
        self.writing -= 1;
        fold.landed(written?)?;
        Ok(())
    }

    /// Why a seal can't be handed over or heard of: the writer thread is gone.
    fn stopped(&mut self) -> RuntimeError {
        self.seals = None;
        let panicked = self
            .thread
            .take()
            .is_some_and(|thread| thread.join().is_err());
        RuntimeError::Fatal(format!(
            "the store writer stopped{}",
            if panicked { " (it panicked)" } else { "" }
        ))
    }
}

impl Drop for StoreWriter {
    /// Lets the seal being written finish: a crash would leave it atomic all the same.
    fn drop(&mut self) {
        self.seals = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
