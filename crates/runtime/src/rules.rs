//! Where the state consumer gets its rules and its time.
//!
//! The rules file is re-read when its content changes: a good file takes over for the next
//! decision, a bad one is refused with the key and the reason while the rules in force stay.

use std::path::{Path, PathBuf};

use orderflow_domain::{Rules, Timestamp};
use tracing::{info, warn};

use crate::config::Config;
use crate::RuntimeError;

pub struct RulesSource {
    path: Option<PathBuf>,
    current: Rules,
    /// The file content the current rules came from (or were refused from), to see changes.
    seen: Option<Vec<u8>>,
}

/// Reads and checks a rules file.
pub fn load_rules(path: &Path) -> Result<(Rules, Vec<u8>), RuntimeError> {
    let bytes = std::fs::read(path).map_err(|error| {
        RuntimeError::Config(format!(
            "rules file {} could not be read: {error}",
            path.display()
        ))
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        RuntimeError::Config(format!("rules file {} is not UTF-8 text", path.display()))
    })?;
    let rules = Rules::from_toml(text)
        .map_err(|error| RuntimeError::Config(format!("rules file {}: {error}", path.display())))?;
    Ok((rules, bytes))
}

impl RulesSource {
    /// The configured rules; a bad file at start is a configuration error.
    pub fn open(config: &Config) -> Result<RulesSource, RuntimeError> {
        let path = config.rules.path.clone();
        let (current, seen) = match &path {
            Some(path) => {
                let (rules, bytes) = load_rules(path)?;
                (rules, Some(bytes))
            }
            None => (Rules::default(), None),
        };
        Ok(RulesSource {
            path,
            current,
            seen,
        })
    }

    pub fn current(&self) -> &Rules {
        &self.current
    }

    /// Takes the file's new rules if it changed and they are good (true); keeps the current
    /// ones (and says why) if not.
    pub fn reload_if_changed(&mut self) -> bool {
        let Some(path) = &self.path else { return false };
        let Ok(bytes) = std::fs::read(path) else {
            // Mid-rename by an editor or a deploy: the rules in force stay, try next tick.
            return false;
        };
        if self.seen.as_ref() == Some(&bytes) {
            return false;
        }
        match load_rules(path) {
            Ok((rules, bytes)) => {
                info!(from = %self.current.version, to = %rules.version, path = %path.display(), "rules reloaded");
                metrics::counter!(crate::telemetry::RULES_RELOADS.name, "outcome" => "applied")
                    .increment(1);
                self.current = rules;
                self.seen = Some(bytes);
                true
            }
            Err(error) => {
                warn!(%error, in_force = %self.current.version, "rules file refused; the rules in force stay");
                metrics::counter!(crate::telemetry::RULES_RELOADS.name, "outcome" => "refused")
                    .increment(1);
                self.seen = Some(bytes);
                false
            }
        }
    }
}

/// The time decisions are taken at: the system clock, or a file for drills and tests.
pub enum Clock {
    System,
    File(PathBuf),
}

impl Clock {
    pub fn from_config(config: &Config) -> Clock {
        match &config.timers.clock_file {
            Some(path) => Clock::File(path.clone()),
            None => Clock::System,
        }
    }

    pub fn now(&self) -> Result<Timestamp, RuntimeError> {
        match self {
            Clock::System => Ok(chrono::Utc::now()),
            Clock::File(path) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map(|time| time.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        RuntimeError::Config(format!(
                            "timers.clock-file {} must hold an RFC 3339 time, found {:?}",
                            path.display(),
                            text.trim()
                        ))
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(path: &Path) -> Config {
        let mut config = Config::default();
        config.rules.path = Some(path.to_path_buf());
        config
    }

    const GOOD: &str = "version = \"v1\"\nauto-approve-below-fen = 50000\n";

    #[test]
    fn a_changed_file_takes_over_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(&path, GOOD).unwrap();
        let mut source = RulesSource::open(&config(&path)).unwrap();
        assert_eq!(source.current().version, "v1");
        std::fs::write(&path, GOOD.replace("v1", "v2")).unwrap();
        assert!(source.reload_if_changed());
        assert_eq!(source.current().version, "v2");
        std::fs::write(&path, "version = \"v3\"\nauto-approve-below-fen = -1\n").unwrap();
        assert!(!source.reload_if_changed());
        assert_eq!(source.current().version, "v2", "the rules in force stay");
    }

    #[test]
    fn a_bad_file_at_start_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(
            &path,
            "version = \"v1\"\nauto-approve-below-fen = \"500\"\n",
        )
        .unwrap();
        let error = RulesSource::open(&config(&path)).err().unwrap().to_string();
        assert!(error.contains("auto-approve-below-fen"), "{error}");
    }

    #[test]
    fn a_clock_file_sets_the_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        std::fs::write(&path, "2026-11-25T10:00:00Z\n").unwrap();
        let clock = Clock::File(path.clone());
        assert_eq!(
            clock.now().unwrap().to_rfc3339(),
            "2026-11-25T10:00:00+00:00"
        );
        std::fs::write(&path, "soon").unwrap();
        assert!(clock.now().is_err());
    }
}
