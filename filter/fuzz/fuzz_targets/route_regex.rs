//! Route regexes (`scopegate_core::routes::PathRegex`, regex-lite) against the
//! regex crate's `regex::bytes::Regex` with Unicode off (the engine they ran
//! on before), on patterns and paths built from small alphabets of regex
//! pieces and path pieces (ASCII: normalised paths are).
//!
//! Invariants: a pattern both compile gets the same verdict on every path;
//! and a path a regex matches starts with the literal segments the route
//! table files that regex under (`PathRegex::literal_segments`), or the
//! table would never try it there.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scopegate_core::routes::{PathRegex, segments};

const PIECES: [&str; 28] = [
    "/", "/", "a", "b", "v2", "x", "-", ".", "*", "+", "?", "|", "(", ")", "(?:", "[a-z]", "[^/]", "\\d",
    "{2}", "{1,3}", "(?i)", "^", "$", "\\w", "[0-9]", "\\.", "\\b", "A",
];
const PATH: [&str; 12] = ["/", "/", "a", "b", "v2", "x", "1", "22", "A", "-", ".", "V2"];

fuzz_target!(|data: (Vec<u8>, Vec<Vec<u8>>)| {
    let pattern: String = data.0.iter().take(24).map(|b| PIECES[usize::from(*b) % PIECES.len()]).collect();
    let Ok(ours) = PathRegex::parse(&pattern) else { return };
    let reference = regex::bytes::RegexBuilder::new(&PathRegex::anchored(&pattern))
        .unicode(false)
        .build()
        .ok();
    for raw in data.1.iter().take(8) {
        let path: String = std::iter::once("/")
            .chain(raw.iter().take(16).map(|b| PATH[usize::from(*b) % PATH.len()]))
            .collect();
        let hit = ours.matches(&path);
        if let Some(r) = &reference {
            assert_eq!(hit, r.is_match(path.as_bytes()), "{pattern:?} on {path:?}");
        }
        if hit {
            let segs: Vec<&str> = segments(&path).collect();
            let lit = ours.literal_segments();
            assert!(
                segs.len() >= lit.len() && segs.iter().zip(lit).all(|(a, b)| a == b),
                "{pattern:?} matches {path:?}, not under {lit:?}"
            );
        }
    }
});
