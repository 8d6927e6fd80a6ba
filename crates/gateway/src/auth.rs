//! Who is calling, and what they may do.
//!
//! Every calling system (a platform adapter, the POS, the operator console, ...) has a
//! credential in the credentials file (`gateway.credentials`), with one of two schemes:
//!
//! - **`hmac`**: the request carries `X-Orderflow-Key` (the credential id),
//!   `X-Orderflow-Timestamp` (Unix seconds) and `X-Orderflow-Signature: v1=<hex>`, the
//!   HMAC-SHA256 under the shared secret of `{timestamp}.{METHOD}.{path and query}.{body}`
//!   ([`signature`]). A timestamp further than `gateway.signature-window-secs` from the
//!   gateway's clock is refused, so a captured request can't be replayed later; a replay within
//!   the window re-sends a record already sent, which the intake drops by its event id (and an
//!   `Idempotency-Key` answers from the stored response).
//! - **`bearer`**: `Authorization: Bearer <token>`, for systems that can't sign (the console
//!   behind its own login). The token is compared by its SHA-256, never kept in plain text
//!   beyond loading.
//!
//! Each credential has a scope: the input kinds it may send (`kinds`, `["*"]` for all), what it
//! may read from the order API (`read`: `none`, `orders`, or `pii` to see phone and address
//! unmasked) and, to send actions, the `role` its actions are taken in. An action's actor is
//! the credential (`{id, role}`), whatever the request body says.
//!
//! Secrets come from an environment variable (`secret-env`) or a file (`secret-file`), never
//! from the credentials file itself, and are never logged: [`Secret`] prints as `***`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use hmac::{Hmac, Mac};
use orderflow_domain::ActorRole;
use orderflow_runtime::RuntimeError;
use orderflow_schema::InputTopic;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The credential id of a signed request.
pub const KEY_HEADER: &str = "x-orderflow-key";
/// Unix seconds when the request was signed.
pub const TIMESTAMP_HEADER: &str = "x-orderflow-timestamp";
/// `v1=` and the hex HMAC-SHA256 of the request ([`signature`]).
pub const SIGNATURE_HEADER: &str = "x-orderflow-signature";

/// Shortest secret accepted, in bytes: a short HMAC key or token is guessable.
const MIN_SECRET_BYTES: usize = 16;

/// A secret: shown as `***` by `Debug`, so no log line or error can carry it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// What a credential may read from the order API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadScope {
    /// Nothing: an ingest-only source.
    #[default]
    None,
    /// Orders, timelines and exceptions, with phone and address masked.
    Orders,
    /// As `orders`, with phone and address as sent.
    Pii,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Scheme {
    Hmac,
    Bearer,
}

/// One calling system.
#[derive(Debug)]
pub struct Credential {
    pub id: String,
    scheme: Scheme,
    secret: Secret,
    /// `None`: every kind.
    kinds: Option<Vec<String>>,
    pub read: ReadScope,
    /// The role its actions are taken in; `None`: it may not act.
    pub role: Option<ActorRole>,
}

impl Credential {
    pub fn may_send(&self, kind: &str) -> bool {
        self.kinds
            .as_ref()
            .is_none_or(|kinds| kinds.iter().any(|k| k == kind))
    }

    pub fn may_read(&self, needed: ReadScope) -> bool {
        self.read >= needed
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CredentialsFile {
    #[serde(default)]
    source: Vec<SourceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SourceEntry {
    id: String,
    auth: Scheme,
    secret_env: Option<String>,
    secret_file: Option<std::path::PathBuf>,
    kinds: Vec<String>,
    #[serde(default)]
    read: ReadScope,
    role: Option<ActorRole>,
}

/// Every credential, by id and (for bearer tokens) by the token's SHA-256.
#[derive(Debug, Default)]
pub struct Credentials {
    by_id: HashMap<String, Arc<Credential>>,
    by_token: HashMap<[u8; 32], Arc<Credential>>,
}

/// Why a request is not let in: 401 (who are you?) or 403 (not you).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
}

fn token_digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Credentials {
    /// Reads the credentials file and each secret it names; a problem is one sentence naming
    /// the file, the source and the field.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, RuntimeError> {
        let origin = format!("gateway.credentials {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|error| {
            RuntimeError::Config(format!("{origin} could not be read: {error}"))
        })?;
        let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
            RuntimeError::Config(format!("{origin} is not valid TOML: {}", error.message()))
        })?;
        let file: CredentialsFile = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|error| {
                RuntimeError::Config(format!(
                    "{origin}: {}: {}",
                    error.path(),
                    error.inner().message().trim_end()
                ))
            })?;
        let mut credentials = Credentials::default();
        for entry in file.source {
            let credential = entry.into_credential(&origin, &env)?;
            let credential = Arc::new(credential);
            if credential.scheme == Scheme::Bearer {
                credentials
                    .by_token
                    .insert(token_digest(&credential.secret.0), credential.clone());
            }
            if credentials
                .by_id
                .insert(credential.id.clone(), credential.clone())
                .is_some()
            {
                return Err(RuntimeError::Config(format!(
                    "{origin}: source {:?} is listed twice",
                    credential.id
                )));
            }
        }
        Ok(credentials)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Who sent this request, by its bearer token or its signature.
    pub fn authenticate(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: i64,
        window_secs: u64,
    ) -> Result<Arc<Credential>, Refusal> {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        if let Some(authorization) = header("authorization") {
            let token = authorization
                .strip_prefix("Bearer ")
                .ok_or_else(|| unauthenticated("Authorization must be \"Bearer <token>\""))?;
            return self
                .by_token
                .get(&token_digest(token.trim().as_bytes()))
                .cloned()
                .ok_or_else(|| unauthenticated("the bearer token is not known"));
        }
        let Some(key) = header(KEY_HEADER) else {
            return Err(unauthenticated(
                "the request is neither signed (X-Orderflow-Key, X-Orderflow-Timestamp, \
                 X-Orderflow-Signature) nor carries a bearer token",
            ));
        };
        let credential = self
            .by_id
            .get(key)
            .filter(|credential| credential.scheme == Scheme::Hmac)
            .ok_or_else(|| unauthenticated("X-Orderflow-Key names no signing credential"))?;
        let timestamp: i64 = header(TIMESTAMP_HEADER)
            .and_then(|value| value.trim().parse().ok())
            .ok_or_else(|| unauthenticated("X-Orderflow-Timestamp must be Unix seconds"))?;
        if now_secs.abs_diff(timestamp) > window_secs {
            return Err(unauthenticated(&format!(
                "X-Orderflow-Timestamp {timestamp} is more than {window_secs} s from the \
                 gateway's clock ({now_secs}): sign the request again"
            )));
        }
        let sent = header(SIGNATURE_HEADER)
            .and_then(|value| value.trim().strip_prefix("v1="))
            .and_then(|hex_text| hex::decode(hex_text).ok())
            .ok_or_else(|| unauthenticated("X-Orderflow-Signature must be v1=<hex>"))?;
        mac(
            &credential.secret.0,
            timestamp,
            method.as_str(),
            path_and_query,
            body,
        )
        .verify_slice(&sent)
        .map_err(|_| unauthenticated("X-Orderflow-Signature does not match the request"))?;
        Ok(credential.clone())
    }
}

fn unauthenticated(reason: &str) -> Refusal {
    Refusal::Unauthenticated(reason.to_string())
}

impl SourceEntry {
    fn into_credential(
        self,
        origin: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Credential, RuntimeError> {
        let fail = |message: String| {
            Err(RuntimeError::Config(format!(
                "{origin}: source {:?}: {message}",
                self.id
            )))
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !id_ok {
            return fail("id must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'".into());
        }
        let secret = match (&self.secret_env, &self.secret_file) {
            (Some(variable), None) => match env(variable) {
                Some(value) => value.trim().as_bytes().to_vec(),
                None => return fail(format!("secret-env {variable} is not set")),
            },
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(text) => text.trim().as_bytes().to_vec(),
                Err(error) => {
                    return fail(format!(
                        "secret-file {} could not be read: {error}",
                        file.display()
                    ))
                }
            },
            _ => return fail("give exactly one of secret-env and secret-file".into()),
        };
        if secret.len() < MIN_SECRET_BYTES {
            return fail(format!(
                "the secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        let kinds = if self.kinds.iter().any(|kind| kind == "*") {
            None
        } else {
            if let Some(unknown) = self
                .kinds
                .iter()
                .find(|kind| InputTopic::of_kind(kind).is_none())
            {
                return fail(format!(
                    "kinds: {unknown:?} is not a kind of the input contract"
                ));
            }
            Some(self.kinds)
        };
        Ok(Credential {
            id: self.id,
            scheme: self.auth,
            secret: Secret(secret),
            kinds,
            read: self.read,
            role: self.role,
        })
    }
}

fn mac(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this can't fail; the fallback only satisfies the type.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
    mac.update(format!("{timestamp}.{method}.{path_and_query}.").as_bytes());
    mac.update(body);
    mac
}

/// The `X-Orderflow-Signature` value of a request: `v1=` and the hex HMAC-SHA256 of
/// `{timestamp}.{METHOD}.{path and query}.{body}` under the credential's secret.
pub fn signature(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let tag = mac(secret, timestamp, method, path_and_query, body).finalize();
    format!("v1={}", hex::encode(tag.into_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &str = "0123456789abcdef-tmall";

    fn credentials() -> Credentials {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(
            &path,
            r#"
[[source]]
id = "tmall"
auth = "hmac"
secret-env = "TMALL_SECRET"
kinds = ["order_placed", "payment_captured"]

[[source]]
id = "console"
auth = "bearer"
secret-env = "CONSOLE_TOKEN"
kinds = ["review_approved"]
read = "pii"
role = "operator"
"#,
        )
        .unwrap();
        Credentials::load(&path, |name| match name {
            "TMALL_SECRET" => Some(SECRET.into()),
            "CONSOLE_TOKEN" => Some("console-token-0123456789".into()),
            _ => None,
        })
        .unwrap()
    }

    fn signed(timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_static("tmall"));
        headers.insert(TIMESTAMP_HEADER, timestamp.to_string().parse().unwrap());
        let signature = signature(
            SECRET.as_bytes(),
            timestamp,
            "POST",
            "/v1/inputs/orders",
            body,
        );
        headers.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_signed_request_is_let_in_and_scoped() {
        let credentials = credentials();
        let body = br#"{"kind":"order_placed"}"#;
        let who = credentials
            .authenticate(
                &Method::POST,
                "/v1/inputs/orders",
                &signed(1_000, body),
                body,
                1_010,
                300,
            )
            .unwrap();
        assert_eq!(who.id, "tmall");
        assert!(who.may_send("order_placed") && !who.may_send("order_cancelled"));
        assert!(!who.may_read(ReadScope::Orders));
    }

    #[test]
    fn a_changed_body_path_or_old_timestamp_is_refused() {
        let credentials = credentials();
        let body = br#"{"kind":"order_placed"}"#;
        let headers = signed(1_000, body);
        let refused = |path: &str, body: &[u8], now: i64| {
            credentials
                .authenticate(&Method::POST, path, &headers, body, now, 300)
                .unwrap_err()
                .to_string()
        };
        assert!(refused("/v1/inputs/orders", b"{}", 1_000).contains("does not match"));
        assert!(refused("/v1/inputs/payments", body, 1_000).contains("does not match"));
        assert!(refused("/v1/inputs/orders", body, 1_301).contains("more than 300 s"));
    }

    #[test]
    fn bearer_tokens_identify_their_credential() {
        let credentials = credentials();
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer console-token-0123456789"),
        );
        let who = credentials
            .authenticate(&Method::GET, "/v1/orders", &headers, b"", 0, 300)
            .unwrap();
        assert_eq!(
            (who.id.as_str(), who.role),
            ("console", Some(ActorRole::Operator))
        );
        headers.insert("authorization", HeaderValue::from_static("Bearer nope"));
        assert!(credentials
            .authenticate(&Method::GET, "/v1/orders", &headers, b"", 0, 300)
            .is_err());
    }

    #[test]
    fn a_bad_file_is_one_sentence_naming_the_source_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[source]]\nid = \"jd\"\nauth = \"hmac\"\nsecret-env = \"JD\"\nkinds = [\"order_shipped\"]\n",
        )
        .unwrap();
        let error = Credentials::load(&path, |_| Some("0123456789abcdef0".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(
                "source \"jd\": kinds: \"order_shipped\" is not a kind of the input contract"
            ),
            "{error}"
        );
        let error = Credentials::load(&path, |_| None).unwrap_err().to_string();
        assert!(error.ends_with("secret-env JD is not set"), "{error}");
        assert!(!format!("{:?}", Secret(b"hush".to_vec())).contains("hush"));
    }
}
