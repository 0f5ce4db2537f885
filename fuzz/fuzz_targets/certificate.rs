//! Coverage-guided fuzzing of the certificate reader (`verify::load`) and, for certificates
//! that parse, of `verify` itself: no panic; unusable input is an exit-2 error.
#![no_main]

use fisher_flow::certificate::verify::{load, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("ff-fuzz-cert-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("certificate.json");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    match load(&path) {
        Err(e) => assert_eq!(e.exit_code(), 2, "{e}"),
        Ok(cert) => {
            if let Err(e) = verify(&cert, None) {
                assert_eq!(e.exit_code(), 2, "{e}");
            }
        }
    }
});
