//! The callback signature: `X-Tenderflow-Signature: t=<unix>,v1=<hex>`,
//! where the hex is HMAC-SHA256 under `notify.secret` of `"<t>.<body>"`
//! (the scheme Stripe uses). The time is in the signed text, so a receiver
//! that also checks it is recent refuses a replayed request.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "x-tenderflow-signature";

type HmacSha256 = Hmac<Sha256>;

/// The signature header's value for `body` sent at `unix_time`.
pub fn signature(secret: &[u8], unix_time: i64, body: &[u8]) -> String {
    format!(
        "t={unix_time},v1={}",
        hex::encode(mac(secret, unix_time, body))
    )
}

fn mac(secret: &[u8], unix_time: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(unix_time.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks a signature header as a receiver would: well formed, made with
/// `secret` over `body`, and no older than `tolerance_secs` at `now`.
/// Answers the signed time.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, &'static str> {
    let mut time = None;
    let mut given = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => time = t.parse::<i64>().ok(),
            Some(("v1", v)) => given.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let time = time.ok_or("no t= in the signature")?;
    if (now - time).abs() > tolerance_secs {
        return Err("the signature is too old (or from the future)");
    }
    let expected = mac(secret, time, body);
    use subtle::ConstantTimeEq as _;
    if given
        .iter()
        .any(|v| bool::from(v.as_slice().ct_eq(expected.as_slice())))
    {
        Ok(time)
    } else {
        Err("no v1= signature matches")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha256_of_time_dot_body() {
        // RFC 4231 test case 2, whose data is "what do ya want for nothing?":
        // here the time "1" and the dot are the first bytes of the data.
        let header = signature(b"Jefe", 1, b"what do ya want for nothing?");
        let expected = {
            let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
            m.update(b"1.what do ya want for nothing?");
            hex::encode(m.finalize().into_bytes())
        };
        assert_eq!(header, format!("t=1,v1={expected}"));
        // And the RFC's own vector, to pin the HMAC itself.
        let mut m = HmacSha256::new_from_slice(b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signature_matches_the_readme_python() {
        // Computed with the README's construction: hmac.new(b"change-me",
        // b"1700000000." + body, hashlib.sha256).hexdigest().
        assert_eq!(
            signature(
                b"change-me",
                1_700_000_000,
                br#"{"task_id":"x","state":"done"}"#
            ),
            "t=1700000000,v1=8f4ed48bf5d369b155306d685b85e81df34239fac1df33ce0326b274f26469f4"
        );
    }

    #[test]
    fn verification_checks_the_key_the_body_and_the_time() {
        let body = br#"{"task_id":"x","state":"done"}"#;
        let header = signature(b"s3cret", 1_700_000_000, body);
        assert_eq!(
            verify(b"s3cret", &header, body, 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
        assert!(verify(b"other", &header, body, 1_700_000_100, 300).is_err());
        assert!(verify(b"s3cret", &header, b"{}", 1_700_000_100, 300).is_err());
        assert!(verify(b"s3cret", &header, body, 1_700_001_000, 300).is_err());
        assert!(verify(b"s3cret", "v1=00", body, 1_700_000_000, 300).is_err());
        let forged = header.replace("t=1700000000", "t=1700000050");
        assert!(verify(b"s3cret", &forged, body, 1_700_000_100, 300).is_err());
    }
}
