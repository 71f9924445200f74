//! The signed federation directory, as a node reads one from a peer or an admin: the input is
//! the JSON document, read and verified against the test CA.
//!
//! A mutated document almost never carries a valid signature, so the checks behind it would go
//! unfuzzed. The same input is therefore also read as a bare directory, validated, and, if the
//! CA would sign it, signed: what the CA signs, every node must then accept unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tatmx_certs::directory::{Directory, SignedDirectory};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let anchors = tatmx_fuzz::anchors();
    if let Ok(signed) = SignedDirectory::from_json(text) {
        let _ = signed.verify(anchors);
    }
    let Ok(directory) = serde_json::from_str::<Directory>(text) else {
        return;
    };
    if directory.validate().is_err() {
        return;
    }
    let Ok(signed) = tatmx_fuzz::test_ca().sign_directory(&directory) else {
        return;
    };
    let published = SignedDirectory::from_json(&signed.to_json())
        .expect("a directory the CA signed reads back");
    let verified = published
        .verify(anchors)
        .expect("a directory the CA signed verifies");
    assert_eq!(verified, directory, "the directory changed through signing");
});
