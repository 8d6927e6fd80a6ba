//! The runtime's errors, split by what to do about them.

use orderflow_store::StoreError;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A bad config file, environment value or argument: fix it and start again.
    #[error("{0}")]
    Config(String),
    /// The broker couldn't be reached or refused a request; retried with backoff where that
    /// can help, fatal when it persists.
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Local state disagrees with the log, or the log holds what we can't fold: stop loudly.
    #[error("{0}")]
    Fatal(String),
}

impl RuntimeError {
    pub fn kafka(context: impl Into<String>) -> impl FnOnce(KafkaError) -> RuntimeError {
        let context = context.into();
        move |source| RuntimeError::Kafka { context, source }
    }

    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::Kafka { source, .. } => !matches!(
                source.rdkafka_error_code(),
                Some(
                    rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
                        | rdkafka::types::RDKafkaErrorCode::InvalidConfig
                )
            ),
            RuntimeError::Store(error) => error.is_retryable(),
            RuntimeError::Config(_) | RuntimeError::Fatal(_) => false,
        }
    }
}
