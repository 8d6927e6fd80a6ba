//! Configuration: one TOML file, then environment overrides, then defaults for local use.
//!
//! Unknown keys are refused with their name, so a typo can't silently fall back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::RuntimeError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub store: StoreConfig,
    pub consumer: ConsumerConfig,
    pub telemetry: TelemetryConfig,
    pub rules: RulesConfig,
    pub timers: TimersConfig,
    pub display: DisplayConfig,
}

/// How the operator CLI shows times to people. Logs and every Kafka topic stay in UTC.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct DisplayConfig {
    /// The IANA time zone of the shop's people: `orderflow status`, `inspect` and `exceptions`
    /// show times in it, as RFC 3339 with its offset.
    #[serde(deserialize_with = "iana_time_zone")]
    pub time_zone: chrono_tz::Tz,
}

impl Default for DisplayConfig {
    fn default() -> DisplayConfig {
        DisplayConfig {
            time_zone: chrono_tz::Asia::Shanghai,
        }
    }
}

fn iana_time_zone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<chrono_tz::Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{name:?} is not an IANA time zone (e.g. Asia/Shanghai)"
        ))
    })
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RulesConfig {
    /// The rules file (`docs/rules.md`); the built-in rules when unset. The state consumer
    /// re-reads it when it changes.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TimersConfig {
    /// How often the state consumer looks for due timers and a changed rules file.
    pub tick_ms: u64,
    /// A file holding the current time (RFC 3339) to use instead of the system clock: for
    /// drills and tests that move time forward without waiting.
    pub clock_file: Option<PathBuf>,
}

impl Default for TimersConfig {
    fn default() -> TimersConfig {
        TimersConfig {
            tick_ms: 1_000,
            clock_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Prepended to every topic name (`orderflow.` → `orderflow.order-events`).
    pub topic_prefix: String,
    /// Partitions of every topic `orderflow topics create` makes.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Consumer group session timeout. Short in dev/test so a restarted consumer rejoins fast.
    pub session_timeout_ms: u32,
    /// How long a produce may be retried by the client before the batch fails.
    pub message_timeout_ms: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StoreConfig {
    /// Each consumer keeps its local state in `{data-dir}/{consumer}-{instance}`.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ConsumerConfig {
    /// Most records processed (and made durable) together.
    pub max_batch: usize,
    /// Entities the state consumer keeps in memory between batches.
    pub cache_entities: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TelemetryConfig {
    /// Where `/metrics` (Prometheus text) is served; none if unset.
    pub metrics_listen: Option<SocketAddr>,
    /// `text` for people, `json` for log pipelines.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for KafkaConfig {
    fn default() -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: "orderflow.".into(),
            partitions: 6,
            replication_factor: 1,
            session_timeout_ms: 6_000,
            message_timeout_ms: 30_000,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            data_dir: PathBuf::from("var"),
        }
    }
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            max_batch: 1_000,
            cache_entities: 50_000,
        }
    }
}

/// The environment variables that override the file, and the key each one sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("ORDERFLOW_BROKERS", "kafka.brokers"),
    ("ORDERFLOW_TOPIC_PREFIX", "kafka.topic-prefix"),
    ("ORDERFLOW_PARTITIONS", "kafka.partitions"),
    ("ORDERFLOW_DATA_DIR", "store.data-dir"),
    ("ORDERFLOW_METRICS_LISTEN", "telemetry.metrics-listen"),
    ("ORDERFLOW_LOG_FORMAT", "telemetry.log-format"),
    ("ORDERFLOW_RULES", "rules.path"),
    ("ORDERFLOW_CLOCK_FILE", "timers.clock-file"),
    ("ORDERFLOW_TICK_MS", "timers.tick-ms"),
    ("ORDERFLOW_MAX_BATCH", "consumer.max-batch"),
    ("ORDERFLOW_DISPLAY_TIME_ZONE", "display.time-zone"),
];

impl Config {
    /// Reads `path` (if given) and applies the environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, RuntimeError> {
        Config::load_with(path, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment passed in, for tests.
    pub fn load_with(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, RuntimeError> {
        let mut document = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    RuntimeError::Config(format!(
                        "config file {} could not be read: {error}",
                        path.display()
                    ))
                })?;
                text.parse::<toml::Table>().map_err(|error| {
                    RuntimeError::Config(format!(
                        "config file {} is not valid TOML: {}",
                        path.display(),
                        error.message()
                    ))
                })?
            }
            None => toml::Table::new(),
        };
        for (variable, key) in ENV_OVERRIDES {
            if let Some(raw) = env(variable) {
                set_override(&mut document, key, &raw);
            }
        }
        let origin = path.map_or_else(|| "configuration".to_string(), |p| p.display().to_string());
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(document))
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.inner().message().trim_end().to_string();
                RuntimeError::Config(if path == "." {
                    format!("{origin}: {message}")
                } else {
                    format!("{origin}: {path}: {message}")
                })
            })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), RuntimeError> {
        let fail = |message: &str| Err(RuntimeError::Config(message.to_string()));
        if self.kafka.brokers.trim().is_empty() {
            return fail("kafka.brokers must name at least one host:port");
        }
        if self.kafka.partitions < 1 {
            return fail("kafka.partitions must be at least 1");
        }
        if self.kafka.replication_factor < 1 {
            return fail("kafka.replication-factor must be at least 1");
        }
        if self.consumer.max_batch == 0 {
            return fail("consumer.max-batch must be at least 1");
        }
        if self.consumer.cache_entities == 0 {
            return fail("consumer.cache-entities must be at least 1");
        }
        if self.timers.tick_ms == 0 {
            return fail("timers.tick-ms must be at least 1");
        }
        Ok(())
    }
}

/// Puts an environment value at a dotted key, typed as the TOML literal it reads as (a number
/// stays a number) or else as a string.
fn set_override(document: &mut toml::Table, dotted: &str, raw: &str) {
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .filter(|value| !value.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut table = document;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_string(), value);
            return;
        }
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(inner) => table = inner,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_work_without_a_file() {
        let config = Config::load_with(None, |_| None).unwrap();
        assert_eq!(config.kafka.topic_prefix, "orderflow.");
        assert_eq!(config.rules.path, None);
        assert_eq!(config.timers.tick_ms, 1_000);
        assert_eq!(config.display.time_zone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn the_display_zone_is_an_iana_name() {
        let toml = file("[display]\ntime-zone = \"Europe/Berlin\"\n");
        let config = Config::load_with(Some(toml.path()), |_| None).unwrap();
        assert_eq!(config.display.time_zone, chrono_tz::Europe::Berlin);
        let config = Config::load_with(Some(toml.path()), |name| {
            (name == "ORDERFLOW_DISPLAY_TIME_ZONE").then(|| "UTC".to_string())
        })
        .unwrap();
        assert_eq!(config.display.time_zone, chrono_tz::UTC);

        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_DISPLAY_TIME_ZONE").then(|| "Mars/Base".to_string())
        })
        .unwrap_err();
        assert!(
            matches!(error, RuntimeError::Config(_)),
            "not a usage error"
        );
        assert_eq!(
            error.to_string(),
            "configuration: display.time-zone: \"Mars/Base\" is not an IANA time zone (e.g. Asia/Shanghai)"
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let toml = file("[kafka]\nbrokers = \"a:1\"\npartitions = 3\n");
        let config = Config::load_with(Some(toml.path()), |name| match name {
            "ORDERFLOW_BROKERS" => Some("b:2,c:3".into()),
            "ORDERFLOW_PARTITIONS" => Some("12".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.kafka.brokers, "b:2,c:3");
        assert_eq!(config.kafka.partitions, 12);
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let toml = file("[kafka]\nbrokerz = \"a:1\"\n");
        let error = Config::load_with(Some(toml.path()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `brokerz`"), "{error}");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_PARTITIONS").then(|| "many".to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("partitions"), "{error}");
        let error = Config::load_with(None, |name| {
            (name == "ORDERFLOW_PARTITIONS").then(|| "0".into())
        })
        .unwrap_err()
        .to_string();
        assert_eq!(error, "kafka.partitions must be at least 1");
    }
}
