//! [`AnyEngine`]: one of the four engines, chosen at run time (e.g. from a command line).

use crate::engine::Engine;
use crate::error::Result;
use crate::options::{Options, Schedule};
use crate::stats::RunStats;
use crate::{HybridEngine, MpiEngine, MultiThreadEngine, SerialEngine};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Display;

/// Any engine. [`Engine`] has generic methods, so it cannot be a trait object; this enum is
/// the way to pick an engine at run time.
#[derive(Debug)]
pub enum AnyEngine {
    /// See [`SerialEngine`].
    Serial(SerialEngine),
    /// See [`MultiThreadEngine`].
    MultiThread(MultiThreadEngine),
    /// See [`MpiEngine`].
    Mpi(MpiEngine),
    /// See [`HybridEngine`].
    Hybrid(HybridEngine),
}

impl AnyEngine {
    /// The engine's name: `serial`, `threads`, `mpi` or `hybrid`.
    pub fn name(&self) -> &'static str {
        match self {
            AnyEngine::Serial(_) => "serial",
            AnyEngine::MultiThread(_) => "threads",
            AnyEngine::Mpi(_) => "mpi",
            AnyEngine::Hybrid(_) => "hybrid",
        }
    }
}

impl AnyEngine {
    /// The same engine with other options (a serial engine keeps them only to report them:
    /// it runs tasks in order, one at a time).
    pub fn with_options(self, options: Options) -> Self {
        match self {
            AnyEngine::Serial(e) => AnyEngine::Serial(e.with_options(options)),
            AnyEngine::MultiThread(e) => AnyEngine::MultiThread(e.with_options(options)),
            AnyEngine::Mpi(e) => AnyEngine::Mpi(e.with_options(options)),
            AnyEngine::Hybrid(e) => AnyEngine::Hybrid(e.with_options(options)),
        }
    }

    /// The same engine with another schedule.
    pub fn with_schedule(self, schedule: Schedule) -> Self {
        let options = Options {
            schedule,
            ..self.options().clone()
        };
        self.with_options(options)
    }
}

impl From<SerialEngine> for AnyEngine {
    fn from(e: SerialEngine) -> Self {
        AnyEngine::Serial(e)
    }
}

impl From<MultiThreadEngine> for AnyEngine {
    fn from(e: MultiThreadEngine) -> Self {
        AnyEngine::MultiThread(e)
    }
}

impl From<MpiEngine> for AnyEngine {
    fn from(e: MpiEngine) -> Self {
        AnyEngine::Mpi(e)
    }
}

impl From<HybridEngine> for AnyEngine {
    fn from(e: HybridEngine) -> Self {
        AnyEngine::Hybrid(e)
    }
}

macro_rules! each {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            AnyEngine::Serial($e) => $body,
            AnyEngine::MultiThread($e) => $body,
            AnyEngine::Mpi($e) => $body,
            AnyEngine::Hybrid($e) => $body,
        }
    };
}

impl Engine for AnyEngine {
    fn worker_count(&self) -> usize {
        each!(self, e => e.worker_count())
    }

    fn is_root(&self) -> bool {
        each!(self, e => e.is_root())
    }

    fn rank(&self) -> usize {
        each!(self, e => e.rank())
    }

    fn processes(&self) -> usize {
        each!(self, e => e.processes())
    }

    fn options(&self) -> &Options {
        each!(self, e => e.options())
    }

    fn run_indexed<T, R, E, F, U>(&self, tasks: &[T], render: F, update: U) -> Result<RunStats>
    where
        T: Serialize + Sync,
        R: Serialize + DeserializeOwned + Send,
        E: Display,
        F: Fn(&T) -> std::result::Result<R, E> + Sync,
        U: FnMut(usize, R) -> std::result::Result<(), E>,
    {
        each!(self, e => e.run_indexed(tasks, render, update))
    }
}
