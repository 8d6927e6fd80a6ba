//! The rules a live decision is taken under. Every decision records `version`, so a replay
//! shows which rules applied without consulting today's file.

use serde::{Deserialize, Serialize};

use crate::Fen;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rules {
    pub version: String,
    /// Orders whose total is strictly below this are approved without a person (seed: 500 CNY).
    pub auto_approve_below_fen: Fen,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            version: "builtin-1".to_string(),
            auto_approve_below_fen: 50_000,
        }
    }
}
