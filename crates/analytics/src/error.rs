//! The analytics crate's errors, by what to do about them.

use orderflow_runtime::app::ExitStatus;
use orderflow_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// A bad argument, config value or query parameter: fix it and ask again.
    #[error("{0}")]
    Usage(String),
    /// The store could not be read or written.
    #[error("analytics store: {0}")]
    Store(String),
    /// The broker, the config or the consumer loop.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Something that should not happen: stop loudly.
    #[error("{0}")]
    Fatal(String),
}

impl AnalyticsError {
    /// Whether retrying may help (a busy store, an unreachable broker).
    pub fn is_retryable(&self) -> bool {
        match self {
            AnalyticsError::Runtime(error) => error.is_retryable(),
            AnalyticsError::Store(message) => {
                message.contains("locked") || message.contains("busy")
            }
            AnalyticsError::Usage(_) | AnalyticsError::Fatal(_) => false,
        }
    }
}

impl From<rusqlite::Error> for AnalyticsError {
    fn from(error: rusqlite::Error) -> AnalyticsError {
        AnalyticsError::Store(error.to_string())
    }
}

impl ExitStatus for AnalyticsError {
    fn is_usage(&self) -> bool {
        match self {
            AnalyticsError::Usage(_) => true,
            AnalyticsError::Runtime(error) => error.is_usage(),
            AnalyticsError::Store(_) | AnalyticsError::Fatal(_) => false,
        }
    }
}

impl From<AnalyticsError> for RuntimeError {
    fn from(error: AnalyticsError) -> RuntimeError {
        match error {
            AnalyticsError::Runtime(error) => error,
            AnalyticsError::Usage(message) => RuntimeError::Config(message),
            other => RuntimeError::Fatal(other.to_string()),
        }
    }
}
