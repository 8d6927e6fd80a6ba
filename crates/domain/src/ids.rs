//! Identities and the units everything else is measured in: channels, order ids, the keys of
//! the log, the people who act, the deterministic event id that absorbs duplicates, money and
//! time.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Money in integer fen (CNY cents). Never a float.
pub type Fen = u64;

/// Timestamps are UTC instants from the source (or, for decisions, from the decider's clock).
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// A sales channel an order comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Tmall,
    Jd,
    Douyin,
    Web,
    Miniapp,
    Store,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Tmall,
        Channel::Jd,
        Channel::Douyin,
        Channel::Web,
        Channel::Miniapp,
        Channel::Store,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Tmall => "tmall",
            Channel::Jd => "jd",
            Channel::Douyin => "douyin",
            Channel::Web => "web",
            Channel::Miniapp => "miniapp",
            Channel::Store => "store",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown channel {0:?}, expected one of tmall, jd, douyin, web, miniapp, store")]
pub struct ParseChannelError(pub String);

impl FromStr for Channel {
    type Err = ParseChannelError;

    /// Case-insensitive, surrounding whitespace ignored: adapters differ in both.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let wanted = raw.trim().to_ascii_lowercase();
        Channel::ALL
            .into_iter()
            .find(|channel| channel.as_str() == wanted)
            .ok_or_else(|| ParseChannelError(raw.to_string()))
    }
}

/// The canonical order id, `"{channel}:{platform_order_id}"`: the key of the order event log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrderId {
    channel: Channel,
    platform_order_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseOrderIdError {
    #[error("order id {0:?} is not of the form channel:platform_order_id")]
    Shape(String),
    #[error(transparent)]
    Channel(#[from] ParseChannelError),
    #[error("platform order id {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
    PlatformOrderId(String),
}

impl OrderId {
    pub fn new(channel: Channel, platform_order_id: &str) -> Result<Self, ParseOrderIdError> {
        let valid = (1..=64).contains(&platform_order_id.len())
            && platform_order_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(ParseOrderIdError::PlatformOrderId(
                platform_order_id.to_string(),
            ));
        }
        Ok(OrderId {
            channel,
            platform_order_id: platform_order_id.to_string(),
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    pub fn platform_order_id(&self) -> &str {
        &self.platform_order_id
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.platform_order_id)
    }
}

impl FromStr for OrderId {
    type Err = ParseOrderIdError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (channel, platform_order_id) = raw
            .split_once(':')
            .ok_or_else(|| ParseOrderIdError::Shape(raw.to_string()))?;
        OrderId::new(channel.parse()?, platform_order_id)
    }
}

impl TryFrom<String> for OrderId {
    type Error = ParseOrderIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<OrderId> for String {
    fn from(id: OrderId) -> String {
        id.to_string()
    }
}

const STOCK_PREFIX: &str = "sku:";
const BUYER_PREFIX: &str = "buyer:";

/// What the log is keyed by: an order, or the stock of one sku, or one buyer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EntityKey {
    Order(OrderId),
    /// All warehouses' stock of one sku; `sku` is never a channel name, so keys can't clash.
    Stock(String),
    /// One buyer's recent orders, for the checks across orders.
    Buyer(String),
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityKey::Order(order_id) => order_id.fmt(f),
            EntityKey::Stock(sku) => write!(f, "{STOCK_PREFIX}{sku}"),
            EntityKey::Buyer(buyer_id) => write!(f, "{BUYER_PREFIX}{buyer_id}"),
        }
    }
}

impl EntityKey {
    /// The key as logs and tracing fields may show it: a buyer's id masked
    /// ([`crate::mask_buyer_id`]), orders and skus as they are.
    pub fn masked(&self) -> String {
        match self {
            EntityKey::Buyer(buyer_id) => {
                format!("{BUYER_PREFIX}{}", crate::personal::mask_buyer_id(buyer_id))
            }
            other => other.to_string(),
        }
    }
}

impl FromStr for EntityKey {
    type Err = ParseOrderIdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Some(sku) = raw.strip_prefix(STOCK_PREFIX).filter(|s| !s.is_empty()) {
            return Ok(EntityKey::Stock(sku.to_string()));
        }
        if let Some(buyer) = raw.strip_prefix(BUYER_PREFIX).filter(|s| !s.is_empty()) {
            return Ok(EntityKey::Buyer(buyer.to_string()));
        }
        raw.parse().map(EntityKey::Order)
    }
}

impl TryFrom<String> for EntityKey {
    type Error = ParseOrderIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<EntityKey> for String {
    fn from(key: EntityKey) -> String {
        key.to_string()
    }
}

/// The person behind an operator action or a customer choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: ActorRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    Operator,
    Customer,
}

impl ActorRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorRole::Operator => "operator",
            ActorRole::Customer => "customer",
        }
    }
}

/// A deterministic event id: the first 128 bits of SHA-256 over the fact's identity.
///
/// The same fact delivered twice (a platform callback retry, a producer retry, a re-run after
/// a crash) gets the same id, so every fold can drop the second copy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Hashes the parts with a unit separator between them so `("ab","c")` ≠ `("a","bc")`.
    pub fn derive(parts: &[&str]) -> EventId {
        let mut hasher = Sha256::new();
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                hasher.update([0x1f]);
            }
            hasher.update(part.as_bytes());
        }
        EventId(hex::encode(&hasher.finalize()[..16]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An id as stored; ids are opaque text, whatever the log held.
impl From<String> for EventId {
    fn from(id: String) -> EventId {
        EventId(id)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_parsing_is_lenient_about_case_and_space() {
        assert_eq!(" TMall ".parse::<Channel>(), Ok(Channel::Tmall));
        assert!("amazon".parse::<Channel>().is_err());
    }

    #[test]
    fn order_id_round_trips_and_rejects_bad_ids() {
        let id: OrderId = "jd:JD-2026.11_25".parse().unwrap();
        assert_eq!(id.to_string(), "jd:JD-2026.11_25");
        assert!("jd:".parse::<OrderId>().is_err());
        assert!("jd:has space".parse::<OrderId>().is_err());
        assert!("nochannel".parse::<OrderId>().is_err());
    }

    #[test]
    fn entity_keys_round_trip_through_their_text() {
        for text in ["jd:JD-1", "sku:SKU-1", "buyer:buyer-1"] {
            let key: EntityKey = text.parse().unwrap();
            assert_eq!(key.to_string(), text);
        }
        assert_eq!(
            "sku:SKU-1".parse::<EntityKey>(),
            Ok(EntityKey::Stock("SKU-1".into()))
        );
        assert!("sku:".parse::<EntityKey>().is_err());
    }

    #[test]
    fn event_id_separates_parts() {
        assert_ne!(EventId::derive(&["ab", "c"]), EventId::derive(&["a", "bc"]));
        assert_eq!(EventId::derive(&["x"]), EventId::derive(&["x"]));
        assert_eq!(EventId::derive(&["x"]).as_str().len(), 32);
    }
}
