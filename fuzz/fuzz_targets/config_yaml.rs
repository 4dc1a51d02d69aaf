//! `Config::from_yaml` on arbitrary text, with every `${VAR}` set to "x": never panics (errors
//! are the expected outcome). Seed the corpus with the files under `config/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::from_yaml(text, "fuzz.yaml", |_| Some("x".to_owned()));
});
