//! The `[sync]` and `[notify]` sections of the consumer config: where each channel, robot and
//! the SMS gateway is reached and with which secret. Business rules (which changes to retry how
//! often, which owner's alerts go to which robot) are in the rules file; addresses and secrets
//! are here, per deployment.
//!
//! A bad value is refused with its key (`sync.channel.tmall.url: ...`) and the consumer exits 2.

use std::collections::BTreeMap;

use orderflow_domain::{Channel, SyncChange};
use orderflow_runtime::config::Config;
use orderflow_runtime::RuntimeError;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// `[sync]`: the endpoint of every channel that hears back from orderflow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SyncSettings {
    /// One entry per channel (`[sync.channel.tmall]`), as written.
    channel: BTreeMap<String, ChannelEndpoint>,
    /// The same by channel, checked: a channel without one is not synced.
    #[serde(skip)]
    pub channels: BTreeMap<Channel, ChannelEndpoint>,
    /// Failed calls in a row after which a channel's circuit opens (no calls while open).
    pub breaker_failures: u32,
    /// How long an open circuit stays open before one trial call, in milliseconds.
    pub breaker_cooldown_ms: u64,
}

impl Default for SyncSettings {
    fn default() -> SyncSettings {
        SyncSettings {
            channel: BTreeMap::new(),
            channels: BTreeMap::new(),
            breaker_failures: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

/// `[sync.channel.<channel>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ChannelEndpoint {
    /// The connector that makes the calls: `webhook` (the generic signed webhook), or the name
    /// a platform's own client is registered under (`connector::build`).
    #[serde(default = "webhook")]
    pub connector: String,
    /// Where the calls go (http:// or https://).
    pub url: String,
    /// The HMAC key of the signature header; or name an environment variable in `secret-env`.
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub secret_env: Option<String>,
    /// How long a call may take before it counts as failed.
    #[serde(default = "five_seconds")]
    pub timeout_ms: u64,
    /// Most calls per second to this channel.
    #[serde(default = "fifty")]
    pub rate_per_second: u32,
    /// The changes this channel hears about; all of them by default.
    #[serde(default = "all_changes")]
    pub changes: Vec<SyncChange>,
}

fn webhook() -> String {
    "webhook".into()
}

fn five_seconds() -> u64 {
    5_000
}

fn fifty() -> u32 {
    50
}

fn all_changes() -> Vec<SyncChange> {
    SyncChange::ALL.to_vec()
}

/// `[notify]`: the group robots alerts go to and the SMS gateway for customers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct NotifySettings {
    /// Named robots (`[notify.robot.ops]`); the rules file's `[[alerts.route]]` names them.
    pub robot: BTreeMap<String, RobotEndpoint>,
    pub sms: Option<SmsSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RobotKind {
    Dingtalk,
    Wecom,
}

impl RobotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RobotKind::Dingtalk => "dingtalk",
            RobotKind::Wecom => "wecom",
        }
    }
}

/// `[notify.robot.<name>]`: a DingTalk or WeCom group robot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RobotEndpoint {
    pub kind: RobotKind,
    /// The robot's webhook: DingTalk's `.../robot/send?access_token=...`, WeCom's
    /// `.../cgi-bin/webhook/send?key=...`.
    pub url: String,
    /// DingTalk's "加签" secret (`SEC...`); none for a robot without signing, and for WeCom.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Most messages per minute (DingTalk and WeCom allow 20); a burst beyond is sent as one
    /// message.
    #[serde(default = "twenty")]
    pub per_minute: u32,
    #[serde(default = "five_seconds")]
    pub timeout_ms: u64,
}

fn twenty() -> u32 {
    20
}

/// `[notify.sms]`: a generic HTTP SMS gateway (template id and parameters, signed like the
/// webhook).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SmsSettings {
    pub url: String,
    #[serde(default)]
    pub secret: String,
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The signature name the gateway puts in front of the text (【...】).
    #[serde(default = "shop")]
    pub sign_name: String,
    /// Where the answer link points: the token is appended (`{link-base}{token}`).
    pub link_base: String,
    /// The key the answer links are signed with (`orderflow choose` checks it).
    #[serde(default)]
    pub link_secret: String,
    #[serde(default)]
    pub link_secret_env: Option<String>,
    #[serde(default = "five_seconds")]
    pub timeout_ms: u64,
    /// Template ids per notification kind (`out_of_stock_choice`, `compensation_coupon`, ...);
    /// a kind without one is not sent by SMS.
    #[serde(default = "default_templates")]
    pub templates: BTreeMap<String, String>,
}

fn shop() -> String {
    "orderflow".into()
}

fn default_templates() -> BTreeMap<String, String> {
    [
        ("out_of_stock_choice", "SMS_OUT_OF_STOCK"),
        ("compensation_coupon", "SMS_COUPON"),
    ]
    .into_iter()
    .map(|(kind, id)| (kind.to_string(), id.to_string()))
    .collect()
}

impl SyncSettings {
    pub fn from_config(config: &Config) -> Result<SyncSettings, RuntimeError> {
        let mut settings: SyncSettings = section("sync", &config.sync)?;
        if settings.breaker_failures == 0 {
            return Err(usage("sync.breaker-failures must be at least 1"));
        }
        for (name, endpoint) in std::mem::take(&mut settings.channel) {
            let key = format!("sync.channel.{name}");
            let channel: Channel = name
                .parse()
                .map_err(|error| usage(&format!("{key}: {error}")))?;
            let mut endpoint = endpoint;
            check_url(&format!("{key}.url"), &endpoint.url)?;
            endpoint.secret = secret(&key, &endpoint.secret, endpoint.secret_env.as_deref())?;
            if endpoint.secret.is_empty() {
                return Err(usage(&format!(
                    "{key}.secret must be set (or {key}.secret-env name a variable that holds it): calls are signed"
                )));
            }
            if endpoint.timeout_ms == 0 || endpoint.rate_per_second == 0 {
                return Err(usage(&format!(
                    "{key}.timeout-ms and {key}.rate-per-second must be at least 1"
                )));
            }
            if !crate::connector::KNOWN.contains(&endpoint.connector.as_str()) {
                return Err(usage(&format!(
                    "{key}.connector {:?} is not a known connector ({})",
                    endpoint.connector,
                    crate::connector::KNOWN.join(", ")
                )));
            }
            settings.channels.insert(channel, endpoint);
        }
        Ok(settings)
    }
}

impl NotifySettings {
    pub fn from_config(config: &Config) -> Result<NotifySettings, RuntimeError> {
        let mut settings: NotifySettings = section("notify", &config.notify)?;
        for (name, robot) in &mut settings.robot {
            let key = format!("notify.robot.{name}");
            check_url(&format!("{key}.url"), &robot.url)?;
            let given = robot.secret.clone().unwrap_or_default();
            let resolved = secret(&key, &given, robot.secret_env.as_deref())?;
            robot.secret = Some(resolved).filter(|s| !s.is_empty());
            if robot.per_minute == 0 || robot.timeout_ms == 0 {
                return Err(usage(&format!(
                    "{key}.per-minute and {key}.timeout-ms must be at least 1"
                )));
            }
        }
        if let Some(sms) = &mut settings.sms {
            check_url("notify.sms.url", &sms.url)?;
            check_url("notify.sms.link-base", &sms.link_base)?;
            sms.secret = secret("notify.sms", &sms.secret, sms.secret_env.as_deref())?;
            sms.link_secret = secret(
                "notify.sms.link",
                &sms.link_secret,
                sms.link_secret_env.as_deref(),
            )?;
            if sms.secret.is_empty() || sms.link_secret.is_empty() {
                return Err(usage(
                    "notify.sms.secret and notify.sms.link-secret must be set (or their -env variables): requests and answer links are signed",
                ));
            }
        }
        Ok(settings)
    }
}

/// Reads a raw config section as `T`, naming a bad key with the section in front.
fn section<T: DeserializeOwned>(name: &str, table: &toml::Table) -> Result<T, RuntimeError> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().message().trim_end().to_string();
        usage(&if path == "." {
            format!("{name}: {message}")
        } else {
            format!("{name}.{path}: {message}")
        })
    })
}

fn usage(message: &str) -> RuntimeError {
    RuntimeError::Config(message.to_string())
}

fn check_url(key: &str, url: &str) -> Result<(), RuntimeError> {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok || reqwest::Url::parse(url).is_err() {
        return Err(usage(&format!(
            "{key} must be an http:// or https:// URL, got {url:?}"
        )));
    }
    Ok(())
}

/// The secret given in the file, else the one in the named environment variable.
fn secret(key: &str, given: &str, env: Option<&str>) -> Result<String, RuntimeError> {
    match (given.is_empty(), env) {
        (false, _) | (true, None) => Ok(given.to_string()),
        (true, Some(variable)) => std::env::var(variable).map_err(|_| {
            usage(&format!(
                "{key}.secret-env names {variable}, which is not set in the environment"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        Config::load_with(Some(file.path()), |_| None).unwrap()
    }

    #[test]
    fn a_channel_endpoint_reads_with_its_defaults() {
        let config = config(
            "[sync.channel.tmall]\nurl = \"https://tmall.example/callback\"\nsecret = \"s\"\nchanges = [\"shipped\"]\n",
        );
        let sync = SyncSettings::from_config(&config).unwrap();
        let tmall = &sync.channels[&Channel::Tmall];
        assert_eq!((tmall.timeout_ms, tmall.rate_per_second), (5_000, 50));
        assert_eq!(tmall.changes, [SyncChange::Shipped]);
        assert_eq!(tmall.connector, "webhook");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                "[sync.channel.tmall]\nurl = \"ftp://x\"\nsecret = \"s\"\n",
                "sync.channel.tmall.url must be an http:// or https:// URL, got \"ftp://x\"",
            ),
            (
                "[sync.channel.jd]\nurl = \"http://x\"\n",
                "sync.channel.jd.secret must be set",
            ),
            (
                "[sync.channel.jd]\nurl = \"http://x\"\nsecret = \"s\"\nchanges = [\"paid\"]\n",
                "sync.channel.jd.changes[0]: unknown variant `paid`",
            ),
            (
                "[sync.channel.amazon]\nurl = \"http://x\"\n",
                "sync.channel.amazon: unknown channel \"amazon\"",
            ),
        ];
        for (text, wanted) in cases {
            let error = SyncSettings::from_config(&config(text)).unwrap_err();
            assert!(matches!(error, RuntimeError::Config(_)));
            assert!(error.to_string().starts_with(wanted), "{error}");
        }
        let error = NotifySettings::from_config(&config(
            "[notify.robot.ops]\nkind = \"slack\"\nurl = \"http://x\"\n",
        ))
        .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("notify.robot.ops.kind: unknown variant `slack`"),
            "{error}"
        );
    }
}
