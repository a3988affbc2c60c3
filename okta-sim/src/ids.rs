//! Deterministic, Okta-shaped identifiers.
//!
//! Okta ids are a three-character type prefix (`00u` users, `00g` groups, `0oa` apps) and 17
//! alphanumerics. The simulator derives them from a counter mixed through a bijection, so they
//! look random, never collide, and are the same on every run with the same seed.

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A seeded source of unique ids.
#[derive(Debug, Clone)]
pub(crate) struct IdGen {
    seed: u64,
    counter: u64,
    suffix: String,
}

impl IdGen {
    /// A generator whose ids depend only on `seed` and the order of calls.
    pub(crate) fn new(seed: u64) -> Self {
        // Real Okta ids end with a short per-cell suffix; six characters from the seed play that part.
        let suffix = base62(mix(seed ^ 0x5eed_5eed_5eed_5eed), 11)[..6].to_string();
        Self {
            seed,
            counter: 0,
            suffix,
        }
    }

    fn next_raw(&mut self) -> u64 {
        self.counter += 1;
        mix(self.counter ^ self.seed.rotate_left(17))
    }

    /// `prefix` followed by 17 alphanumerics, e.g. `00u` → `00uAbC…` (20 characters).
    pub(crate) fn okta(&mut self, prefix: &str) -> String {
        let raw = self.next_raw();
        format!("{prefix}{}{}", base62(raw, 11), self.suffix)
    }

    /// 24 lowercase hex digits (OIG v1 request ids, approval ids).
    pub(crate) fn hex24(&mut self) -> String {
        let raw = self.next_raw();
        format!("{:08x}{raw:016x}", (self.seed as u32) ^ 0x6f69_6700)
    }

    /// A UUID-shaped string (System Log event `uuid`, event hook `eventId`).
    pub(crate) fn uuid(&mut self) -> String {
        let a = self.next_raw();
        let b = mix(a ^ 0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-11ef-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            (b >> 48) & 0x3fff | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// An opaque alphanumeric token of `len` characters (request ids, access tokens, nonces).
    pub(crate) fn token(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len + 11);
        while out.len() < len {
            out.push_str(&base62(self.next_raw(), 11));
        }
        out.truncate(len);
        out
    }
}

/// SplitMix64's finalizer: a bijection on u64, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `value` in base 62, left-padded to `width` digits (62^11 > 2^64, so 11 always suffices).
fn base62(mut value: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8(digits).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_ids_have_prefix_and_twenty_characters_and_never_repeat() {
        let mut ids = IdGen::new(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.okta("00u");
            assert_eq!(id.len(), 20, "{id}");
            assert!(id.starts_with("00u"));
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn same_seed_gives_same_ids() {
        let (mut a, mut b) = (IdGen::new(42), IdGen::new(42));
        assert_eq!(a.okta("00g"), b.okta("00g"));
        assert_eq!(a.hex24(), b.hex24());
        assert_ne!(IdGen::new(1).okta("00g"), IdGen::new(2).okta("00g"));
    }

    #[test]
    fn hex_and_uuid_shapes() {
        let mut ids = IdGen::new(3);
        let hex = ids.hex24();
        assert_eq!(hex.len(), 24);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        let uuid = ids.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.matches('-').count(), 4);
    }
}
