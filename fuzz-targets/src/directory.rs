//! The signed federation directory, as a node reads one from a peer or an admin: the input is
//! the JSON document, read and verified against the test CA.
//!
//! A mutated document almost never carries a valid signature, so the checks behind it would go
//! unfuzzed. The same input is therefore also read as a bare directory, validated, and, if the
//! CA would sign it, signed: what the CA signs, every node must then accept unchanged.

use tatmx_certs::directory::{Directory, SignedDirectory};

/// Runs one input. A panic, from the node or from a check here, is a finding.
pub fn directory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let anchors = crate::anchors();
    if let Ok(signed) = SignedDirectory::from_json(text) {
        let _ = signed.verify(anchors);
    }
    let Ok(directory) = serde_json::from_str::<Directory>(text) else {
        return;
    };
    if directory.validate().is_err() {
        return;
    }
    let Ok(signed) = crate::test_ca().sign_directory(&directory) else {
        return;
    };
    let published = SignedDirectory::from_json(&signed.to_json())
        .expect("a directory the CA signed reads back");
    let verified = published
        .verify(anchors)
        .expect("a directory the CA signed verifies");
    assert_eq!(verified, directory, "the directory changed through signing");
}
