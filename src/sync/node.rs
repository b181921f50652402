//! [`LocalNode`]: who this node is — its id, the regions it serves, its record-signing key and
//! its hybrid logical clock — and what it is to a given child.

use crate::crypto::hlc::{HlcClock, SystemClock};
use crate::crypto::keys::SigningKey;
use crate::domain::{NodeId, RegionCode, RegionPrefix, RiskPalette, Roles};

/// This node, as its services see it.
#[derive(Debug)]
pub struct LocalNode {
    pub id: NodeId,
    /// Invariant: not empty (checked by settings validation).
    pub serves: Vec<RegionPrefix>,
    pub key: SigningKey,
    pub clock: HlcClock<SystemClock>,
    pub palette: RiskPalette,
}

impl LocalNode {
    /// Whether this node serves a region.
    pub fn serves(&self, region: &RegionCode) -> bool {
        self.serves.iter().any(|p| p.matches(region))
    }

    /// This node's roles for a child with these regions.
    pub fn roles(&self, hukou: &RegionCode, residence: &RegionCode) -> Roles {
        Roles {
            hukou: self.serves(hukou),
            residence: self.serves(residence),
        }
    }
}
