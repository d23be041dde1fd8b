//! Fuzzes the package unpacker and the role rules: any bytes unpack into
//! files within the limits, or give a ParseError; never a panic, and never
//! more bytes out than the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenderflow::package::{Member, PackageLimits, assign_roles, unpack};

fuzz_target!(|data: &[u8]| {
    let limits = PackageLimits {
        max_total_bytes: 16 * 1024 * 1024,
        ..PackageLimits::default()
    };
    let mut files = Vec::new();
    let mut total = 0u64;
    let unpacked = unpack(data, &limits, &mut |file| {
        total += file.bytes.len() as u64;
        files.push((file.name, file.bytes.len() as u64, file.media_type.ok(), file.is_package));
        Ok(())
    });
    assert!(total <= limits.max_total_bytes);
    if unpacked.is_ok() {
        let members: Vec<Member> = files
            .iter()
            .map(|(name, size, media_type, is_package)| Member {
                name,
                size: *size,
                media_type: *media_type,
                unreadable: None,
                is_package: *is_package,
            })
            .collect();
        if let Ok(roles) = assign_roles(&members) {
            // Every file gets exactly one role.
            assert_eq!(roles.len(), members.len());
        }
    }
});
