//! What a peer can send over the Federation API: the first byte picks the message (referral,
//! status update, retraction, retraction acknowledgement, case message), the rest is its
//! protobuf encoding.
//!
//! Each message is decoded and converted as `federation.rs` does it. A message the node accepts
//! must also survive the way it is stored and forwarded: encoded again and read back, it must
//! come out unchanged, or a referral accepted today would be unreadable from the store tomorrow.

use prost::Message;
use tatmx_node::convert;
use tatmx_proto::v1 as pb;

/// Runs one input. A panic, from the node or from a check here, is a finding.
pub fn inbound_referral(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 5 {
        0 => {
            let Ok(wire) = pb::Referral::decode(body) else {
                return;
            };
            let Ok(referral) = convert::referral_from_proto(wire) else {
                return;
            };
            // referral_from_proto validates already; the federation handler relies on it.
            assert!(
                referral.validate().is_ok(),
                "converted referral fails validate()"
            );
            let stored = convert::referral_to_proto(&referral).encode_to_vec();
            let read =
                pb::Referral::decode(stored.as_slice()).expect("re-encoded referral decodes");
            let read = convert::referral_from_proto(read).expect("re-encoded referral converts");
            assert_eq!(
                read, referral,
                "referral changed through the store's encoding"
            );
        }
        1 => {
            let Ok(wire) = pb::StatusUpdate::decode(body) else {
                return;
            };
            let Ok(update) = convert::status_update_from_proto(wire) else {
                return;
            };
            let again = convert::status_update_from_proto(convert::status_update_to_proto(&update))
                .expect("re-encoded status update converts");
            assert_eq!(again, update, "status update changed when encoded again");
        }
        2 => {
            let Ok(wire) = pb::Retraction::decode(body) else {
                return;
            };
            let Ok(retraction) = convert::retraction_from_proto(wire) else {
                return;
            };
            let again = convert::retraction_from_proto(convert::retraction_to_proto(&retraction))
                .expect("re-encoded retraction converts");
            assert_eq!(again, retraction, "retraction changed when encoded again");
        }
        4 => {
            let Ok(wire) = pb::CaseMessage::decode(body) else {
                return;
            };
            let Ok(message) = convert::case_message_from_proto(wire) else {
                return;
            };
            assert!(
                message.validate().is_ok(),
                "converted case message fails validate()"
            );
            let stored = convert::case_message_to_proto(&message).encode_to_vec();
            let read = pb::CaseMessage::decode(stored.as_slice())
                .expect("re-encoded case message decodes");
            let read =
                convert::case_message_from_proto(read).expect("re-encoded case message converts");
            assert_eq!(
                read, message,
                "case message changed through the store's encoding"
            );
        }
        _ => {
            let Ok(wire) = pb::RetractionAck::decode(body) else {
                return;
            };
            let Ok(ack) = convert::retraction_ack_from_proto(wire) else {
                return;
            };
            let again = convert::retraction_ack_from_proto(convert::retraction_ack_to_proto(&ack))
                .expect("re-encoded retraction acknowledgement converts");
            assert_eq!(
                again, ack,
                "retraction acknowledgement changed when encoded again"
            );
        }
    }
}
