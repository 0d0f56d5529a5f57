//! The envelope decoder, and the body decoder behind it, must return errors on any input and
//! never panic or overflow the stack; what decodes must re-encode to an equal envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osmesh_net::messages::{OperatingSystemList, ReportBootImages};
use osmesh_net::{decode_body, Envelope, RpcError};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        let again = Envelope::decode(&envelope.encode()).expect("re-encoded envelope decodes");
        assert_eq!(again, envelope);
        let _ = decode_body::<OperatingSystemList>(&envelope.body);
        let _ = decode_body::<ReportBootImages>(&envelope.body);
        let _ = decode_body::<RpcError>(&envelope.body);
    }
    let _ = decode_body::<OperatingSystemList>(data);
});
