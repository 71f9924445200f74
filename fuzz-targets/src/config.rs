//! The node's TOML config file, parsed as `tatmx-node` does at start-up. Relative paths are
//! resolved against /tmp but never opened: parsing touches no file.

use std::path::Path;

/// Runs one input. A panic, from the node or from a check here, is a finding.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tatmx_node::Config::from_toml(text, Path::new("/tmp"));
}
