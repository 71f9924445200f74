//! The disclosure filter on any referral a peer could send: decoded and converted (invalid ones
//! skipped), then filtered for the fixed exchange of [`crate::outbound`] with the default
//! policy pack.
//!
//! Beyond not panicking, the filter's one promise is checked: no category it withheld or
//! pseudonymized is still present in what leaves.

use prost::Message;
use tatmx_node::filter::{Outcome, filter_outbound};
use tatmx_node::referral::LegalBasis;
use tatmx_proto::v1 as pb;

/// Runs one input. A panic, from the node or from a check here, is a finding.
pub fn filter(data: &[u8]) {
    let Ok(wire) = pb::Referral::decode(data) else {
        return;
    };
    let Ok(draft) = tatmx_node::convert::referral_from_proto(wire) else {
        return;
    };
    let fixed = crate::outbound();
    let exchange = fixed.exchange(&draft);
    // The node looks up the consent a referral names only when it goes on that basis.
    let consent = (draft.legal_basis == LegalBasis::Consent).then_some(&fixed.consent);
    let disclosure = filter_outbound(
        crate::default_policy(),
        &exchange,
        &fixed.recipient,
        consent,
        &fixed.case_key,
        Some("CASE-1"),
        draft,
    );
    let leaving = disclosure.outgoing().categories();
    for decision in disclosure.decisions() {
        if decision.outcome != Outcome::Disclose {
            assert!(
                !leaving.contains(&decision.category),
                "{} was decided {:?} but still leaves",
                decision.category,
                decision.outcome
            );
        }
    }
}
