//! Which protocol version two nodes speak: the highest both announce in `Federation.Hello`.
//!
//! Every node answers `tatmx.v1.Federation.Hello`, whatever else it speaks, so the caller
//! asks there first and then uses the agreed version's service for everything else. A
//! version this build does not know is ignored, never an error: a newer node announcing it
//! is served at the highest version the two share.

/// The highest protocol version that both this build and a node announcing `theirs` speak.
/// A node that announces none is a version 1 node, which knew only `protocol_version = 1`.
/// `None` when the two share no version.
pub fn agree(theirs: &[u32]) -> Option<u32> {
    if theirs.is_empty() {
        return Some(1);
    }
    tatmx_proto::PROTOCOL_VERSIONS
        .iter()
        .copied()
        .filter(|ours| theirs.contains(ours))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_shared_version_is_agreed_and_unknown_ones_are_ignored() {
        assert_eq!(agree(&[1, 2, 99]), Some(2));
        assert_eq!(agree(&[99, 2]), Some(2));
        assert_eq!(agree(&[1]), Some(1));
        // A version 1 node announced only its one version, in the single field.
        assert_eq!(agree(&[]), Some(1));
        assert_eq!(agree(&[98, 99]), None);
    }
}
