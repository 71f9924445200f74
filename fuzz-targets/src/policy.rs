//! An agency's own Cedar policy file, loaded after the default pack and validated against the
//! schema as the node does at start-up. A file that loads is then asked about every category,
//! as the filter would, to reach Cedar's evaluator with rules the fuzzer wrote.

use tatmx_node::DataCategory;
use tatmx_node::policy::{Action, ConsentVerdict, Policy};
use tatmx_node::referral::{LegalBasis, Purpose};

/// Runs one input. A panic, from the node or from a check here, is a finding.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_sources(&[("agency.cedar".to_owned(), text.to_owned())]) else {
        return;
    };
    let fixed = crate::outbound();
    let exchange = tatmx_node::policy::Exchange {
        sender: fixed.sender.clone(),
        recipient: fixed.recipient_party.clone(),
        purpose: Purpose::ThreatAssessment,
        basis: LegalBasis::Consent,
        justified: false,
        reidentify: false,
    };
    let verdict = ConsentVerdict {
        permits: true,
        names_recipient: true,
    };
    for category in DataCategory::ALL {
        for action in [Action::Disclose, Action::Hold] {
            let _ = policy.decide(action, category, &exchange, verdict, &[]);
        }
    }
}
