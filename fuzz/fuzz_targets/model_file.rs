//! Coverage-guided fuzzing of the model-file loader: any bytes either load into an experiment
//! whose loss and gradient are finite at every start, or give an exit-2 one-line error.
#![no_main]

use fisher_flow::config::{Experiment, Overrides};
use fisher_flow::model::StatModel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("ff-fuzz-model-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("m.toml");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    match Experiment::load(&path, &Overrides::default()) {
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            assert_eq!(e.to_string().trim_end().lines().count(), 1, "{e}");
        }
        Ok(exp) => {
            for s in &exp.starts {
                assert!(exp.model.loss(s).is_finite(), "loss at {s:?}");
                assert!(
                    exp.model.gradient(s).iter().all(|v| v.is_finite()),
                    "gradient at {s:?}"
                );
            }
        }
    }
});
