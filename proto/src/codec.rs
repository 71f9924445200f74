//! The codec every tatmx service is generated with: prost's, except that bytes that do not
//! decode as the expected message are refused as the caller's fault.
//!
//! tonic's prost codec answers a decode failure with `INTERNAL`, which tells a caller the
//! node broke. The bytes are the caller's, so this codec answers `INVALID_ARGUMENT` with the
//! tatmx reason code `INVALID_MESSAGE` (domain `tatmx.org`) in a `google.rpc.ErrorInfo`, as
//! every other malformed request is refused (see the node's `refusal` module and
//! `docs/REFUSALS.md`). The decode error's text names prost's wire problem and the message
//! type, never the bytes.

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.reason` of bytes that do not decode: the node's `Reason::InvalidMessage`.
pub const INVALID_MESSAGE: &str = "INVALID_MESSAGE";
/// The `ErrorInfo.domain` of tatmx refusals.
pub const DOMAIN: &str = "tatmx.org";

/// [`ProstCodec`] with decode failures refused as `INVALID_ARGUMENT`/`INVALID_MESSAGE`.
#[derive(Debug, Clone)]
pub struct TatmxCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for TatmxCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for TatmxCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = TatmxDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        TatmxDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes `U` with prost; see [`TatmxCodec`].
#[derive(Debug, Clone)]
pub struct TatmxDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for TatmxDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| undecodable(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The refusal of bytes that are not the message expected.
///
/// The same decoder reads a client's replies, where bytes that do not decode are the peer's or
/// the path's fault and not the request's. So the status keeps the decode error as its
/// `source`: a status that came over the wire never has one, and a client tells the two apart
/// by that type (`tatmx_node::federation::client::classify`), never by text.
pub fn undecodable(error: &prost::DecodeError) -> Status {
    let mut status = Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("the message could not be decoded: {error}"),
        ErrorDetails::with_error_info(INVALID_MESSAGE, DOMAIN, std::collections::HashMap::new()),
    );
    status.set_source(std::sync::Arc::new(error.clone()));
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_bytes_are_the_callers_fault_with_a_code() {
        let error = prost_types::Timestamp::decode(&[0xff, 0xff, 0xff][..]).unwrap_err();
        let status = undecodable(&error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            (INVALID_MESSAGE, DOMAIN)
        );
    }
}
