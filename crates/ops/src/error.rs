//! The operator CLI's errors: the runtime's, plus the outcomes only an operator command has.
//! Each says what the exit status is: 2 for what the operator typed, 1 for the rest.

use orderflow_runtime::app::ExitStatus;
use orderflow_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A bad argument (an order id, a time, a file to read): fix the command line.
    #[error("{0}")]
    Usage(String),
    /// The command ran and what it was asked about isn't there (an order with no events).
    #[error("{0}")]
    NotFound(String),
    /// A check ran to the end and found differences (a simulation's verdict, replay --verify).
    #[error("{0}")]
    VerificationFailed(String),
}

impl ExitStatus for OpsError {
    fn is_usage(&self) -> bool {
        match self {
            OpsError::Runtime(error) => error.is_usage(),
            OpsError::Usage(_) => true,
            OpsError::NotFound(_) | OpsError::VerificationFailed(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_operator_typed_is_a_usage_error() {
        assert!(OpsError::Usage("order id: no colon".into()).is_usage());
        assert!(OpsError::Runtime(RuntimeError::Config("bad key".into())).is_usage());
        assert!(!OpsError::NotFound("order tmall:1 has no events in the log".into()).is_usage());
        assert!(!OpsError::VerificationFailed("2 orders lost".into()).is_usage());
        assert!(!OpsError::Runtime(RuntimeError::Fatal("corrupt".into())).is_usage());
    }

    #[test]
    fn the_message_is_the_sentence_alone() {
        let error = OpsError::NotFound("order tmall:1 has no events in the log".into());
        assert_eq!(error.to_string(), "order tmall:1 has no events in the log");
    }
}
