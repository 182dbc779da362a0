//! Verifying keys, each bound to the algorithms of its own type.
//!
//! A key's type (RSA, P-256, Ed25519, HMAC secret) fixes the algorithms it can
//! ever be used with; a token's `alg` only selects among those. This is what
//! makes algorithm-confusion attacks (an RSA public key used as an HMAC secret)
//! impossible by construction.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::ec_fast::{self, EcKey, L256, L384, L521, PointError};

/// A JWS algorithm scopegate can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
    EdDsa,
    Hs256,
    Hs384,
    Hs512,
}

/// The family of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    P256,
    P384,
    P521,
    Ed25519,
    Hmac,
}

impl Alg {
    /// Every algorithm, in a stable order.
    pub const ALL: [Alg; 13] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::Es512,
        Alg::EdDsa,
        Alg::Hs256,
        Alg::Hs384,
        Alg::Hs512,
    ];

    /// Parses a JWS `alg` name, exactly (case-sensitive, as RFC 7515 requires).
    /// `none` is not an algorithm here.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
        }
    }

    pub const fn family(self) -> KeyFamily {
        match self {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => {
                KeyFamily::Rsa
            }
            Alg::Es256 => KeyFamily::P256,
            Alg::Es384 => KeyFamily::P384,
            Alg::Es512 => KeyFamily::P521,
            Alg::EdDsa => KeyFamily::Ed25519,
            Alg::Hs256 | Alg::Hs384 | Alg::Hs512 => KeyFamily::Hmac,
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of algorithms (a bit set over [`Alg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgSet(u16);

impl AlgSet {
    pub const EMPTY: AlgSet = AlgSet(0);

    pub fn all() -> AlgSet {
        Alg::ALL.into_iter().collect()
    }

    pub fn of_family(family: KeyFamily) -> AlgSet {
        Alg::ALL
            .into_iter()
            .filter(|a| a.family() == family)
            .collect()
    }

    pub const fn contains(self, alg: Alg) -> bool {
        self.0 & alg.bit() != 0
    }

    pub const fn intersect(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 & other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Alg> {
        Alg::ALL.into_iter().filter(move |a| self.contains(*a))
    }
}

impl FromIterator<Alg> for AlgSet {
    fn from_iter<I: IntoIterator<Item = Alg>>(iter: I) -> Self {
        AlgSet(iter.into_iter().fold(0, |acc, a| acc | a.bit()))
    }
}

/// The cryptographic material of a key. Its variant fixes the key family.
#[derive(Clone)]
pub enum KeyMaterial {
    /// The parsed key with its modulus's Montgomery parameters (computed at load).
    Rsa(crate::rsa_fast::RsaVerifier),
    /// EC keys carry their lazily built comb table (`crate::ec_fast`).
    P256(EcKey<L256>),
    P384(EcKey<L384>),
    P521(EcKey<L521>),
    /// With its lazily built fixed-base table (`crate::ed_fast`).
    Ed25519(crate::ed_fast::EdKey),
    Hmac(HmacSecret),
}

/// An HMAC secret. Its bytes never appear in `Debug` output or logs.
///
/// The inner and outer pads are hashed once, at key load: a verification
/// clones the keyed state and hashes only the token (two SHA-2 blocks fewer
/// per token; measured in BENCHMARKS.md).
#[derive(Clone)]
pub struct HmacSecret(Vec<u8>, std::sync::Arc<KeyedMacs>);

struct KeyedMacs {
    s256: hmac::Hmac<sha2::Sha256>,
    s384: hmac::Hmac<sha2::Sha384>,
    s512: hmac::Hmac<sha2::Sha512>,
}

impl HmacSecret {
    fn new(secret: Vec<u8>) -> Result<Self, KeyError> {
        use hmac::Mac as _;
        // HMAC takes a key of any length: these cannot fail; refused, not
        // trusted, if they ever did.
        let len = secret.len();
        let macs = (|| {
            Some(KeyedMacs {
                s256: hmac::Hmac::new_from_slice(&secret).ok()?,
                s384: hmac::Hmac::new_from_slice(&secret).ok()?,
                s512: hmac::Hmac::new_from_slice(&secret).ok()?,
            })
        })()
        .ok_or(KeyError::HmacTooShort(len))?;
        Ok(HmacSecret(secret, std::sync::Arc::new(macs)))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `tag` is the HMAC of `data` under this secret for `alg`
    /// (HS256/384/512; any other algorithm: false). Constant-time comparison;
    /// a tag of another length never matches.
    pub fn verifies(&self, alg: Alg, data: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        match alg {
            Alg::Hs256 => {
                let mut m = self.1.s256.clone();
                m.update(data);
                m.verify_slice(tag).is_ok()
            }
            Alg::Hs384 => {
                let mut m = self.1.s384.clone();
                m.update(data);
                m.verify_slice(tag).is_ok()
            }
            Alg::Hs512 => {
                let mut m = self.1.s512.clone();
                m.update(data);
                m.verify_slice(tag).is_ok()
            }
            _ => false,
        }
    }
}

impl KeyMaterial {
    pub fn family(&self) -> KeyFamily {
        match self {
            KeyMaterial::Rsa(_) => KeyFamily::Rsa,
            KeyMaterial::P256(_) => KeyFamily::P256,
            KeyMaterial::P384(_) => KeyFamily::P384,
            KeyMaterial::P521(_) => KeyFamily::P521,
            KeyMaterial::Ed25519(_) => KeyFamily::Ed25519,
            KeyMaterial::Hmac(_) => KeyFamily::Hmac,
        }
    }

    /// Algorithms this material is strong enough for: HMAC secrets must be at
    /// least as long as the hash output (RFC 7518 §3.2).
    fn usable_algs(&self) -> AlgSet {
        match self {
            KeyMaterial::Hmac(secret) => {
                let len = secret.0.len();
                [(Alg::Hs256, 32), (Alg::Hs384, 48), (Alg::Hs512, 64)]
                    .into_iter()
                    .filter(|(_, min)| len >= *min)
                    .map(|(a, _)| a)
                    .collect()
            }
            other => AlgSet::of_family(other.family()),
        }
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Rsa(k) => write!(f, "Rsa({} bits)", k.size() * 8),
            KeyMaterial::P256(_) => f.write_str("P256"),
            KeyMaterial::P384(_) => f.write_str("P384"),
            KeyMaterial::P521(_) => f.write_str("P521"),
            KeyMaterial::Ed25519(_) => f.write_str("Ed25519"),
            KeyMaterial::Hmac(s) => write!(f, "Hmac({} bytes)", s.0.len()),
        }
    }
}

/// A verifying key, bound to the algorithms it may verify.
#[derive(Debug, Clone)]
pub struct Key {
    kid: Option<String>,
    algs: AlgSet,
    material: KeyMaterial,
}

impl Key {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn algs(&self) -> AlgSet {
        self.algs
    }

    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Narrows the key to the provider's allowed algorithms. `None` if nothing is left.
    pub fn restrict(mut self, allowed: AlgSet) -> Option<Key> {
        self.algs = self.algs.intersect(allowed);
        (!self.algs.is_empty()).then_some(self)
    }
}

/// Why a JWK could not become a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    NotAnObject,
    /// `use` is present and is not `sig` (e.g. an encryption key).
    NotForSignatures(String),
    UnsupportedKeyType(String),
    UnsupportedCurve(String),
    /// The JWK's `alg` is unknown, or of another key type than `kty`.
    AlgorithmMismatch(String),
    Invalid(String),
    /// RSA modulus below 2048 bits.
    RsaTooShort(usize),
    /// HMAC secret shorter than 32 bytes.
    HmacTooShort(usize),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotAnObject => f.write_str("a JWK must be a JSON object"),
            KeyError::NotForSignatures(u) => write!(f, "key use \"{u}\" is not \"sig\""),
            KeyError::UnsupportedKeyType(k) => write!(f, "unsupported key type \"{k}\""),
            KeyError::UnsupportedCurve(c) => write!(f, "unsupported curve \"{c}\""),
            KeyError::AlgorithmMismatch(a) => {
                write!(f, "alg \"{a}\" is unknown or does not fit the key type")
            }
            KeyError::Invalid(why) => write!(f, "invalid key: {why}"),
            KeyError::RsaTooShort(bits) => {
                write!(
                    f,
                    "RSA modulus of {bits} bits is below the 2048-bit minimum"
                )
            }
            KeyError::HmacTooShort(len) => {
                write!(f, "HMAC secret of {len} bytes is below the 32-byte minimum")
            }
        }
    }
}

const MIN_RSA_BITS: usize = 2048;
const MIN_HMAC_BYTES: usize = 32;

/// Parses one JWK (RFC 7517) into a key bound to its algorithms.
pub fn key_from_jwk(jwk: &Value) -> Result<Key, KeyError> {
    let obj = jwk.as_object().ok_or(KeyError::NotAnObject)?;
    let text = |name: &str| -> Result<Option<String>, KeyError> {
        match obj.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(KeyError::Invalid(format!("\"{name}\" must be a string"))),
        }
    };
    let kid = text("kid")?;
    if let Some(key_use) = text("use")?
        && key_use != "sig"
    {
        return Err(KeyError::NotForSignatures(key_use));
    }
    let kty = text("kty")?.ok_or_else(|| KeyError::Invalid("\"kty\" is required".into()))?;
    let material = match kty.as_str() {
        "EC" => {
            let crv = text("crv")?.unwrap_or_default();
            if obj.contains_key("d") {
                return Err(private_key_refused());
            }
            let x = b64_member(&text("x")?, "x")?;
            let y = b64_member(&text("y")?, "y")?;
            ec_material(&crv, &x, &y)?
        }
        "RSA" => {
            if obj.contains_key("d") {
                return Err(private_key_refused());
            }
            let n = b64_member(&text("n")?, "n")?;
            let e = b64_member(&text("e")?, "e")?;
            let key = crate::rsa_fast::RsaVerifier::from_components(&n, &e)
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            let bits = key.size() * 8;
            if bits < MIN_RSA_BITS {
                return Err(KeyError::RsaTooShort(bits));
            }
            KeyMaterial::Rsa(key)
        }
        "OKP" => {
            let crv = text("crv")?.unwrap_or_default();
            if crv != "Ed25519" {
                return Err(KeyError::UnsupportedCurve(crv));
            }
            if obj.contains_key("d") {
                return Err(private_key_refused());
            }
            let x = b64_member(&text("x")?, "x")?;
            let x: [u8; 32] = x.try_into().map_err(|x: Vec<u8>| {
                KeyError::Invalid(format!("Ed25519 \"x\" must be 32 bytes, not {}", x.len()))
            })?;
            ed_material(
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|e| KeyError::Invalid(format!("Ed25519 point: {e}")))?,
            )?
        }
        "oct" => {
            let k = text("k")?.ok_or_else(|| KeyError::Invalid("\"k\" is required".into()))?;
            let secret = URL_SAFE_NO_PAD
                .decode(k.trim_end_matches('='))
                .map_err(|e| KeyError::Invalid(format!("\"k\" is not base64url: {e}")))?;
            hmac_material(secret)?
        }
        other => return Err(KeyError::UnsupportedKeyType(other.to_string())),
    };
    let alg = text("alg")?;
    bind(kid, material, alg.as_deref())
}

fn private_key_refused() -> KeyError {
    KeyError::Invalid("the JWK holds a private key (\"d\"); configure public keys only".into())
}

/// A required base64url member of a JWK (RFC 7518 §6: `n`, `e`, `x`, `y`),
/// decoded.
fn b64_member(v: &Option<String>, name: &str) -> Result<Vec<u8>, KeyError> {
    let v = v
        .as_deref()
        .ok_or_else(|| KeyError::Invalid(format!("missing field `{name}`")))?;
    URL_SAFE_NO_PAD
        .decode(v)
        .map_err(|e| KeyError::Invalid(format!("\"{name}\" is not base64url: {e}")))
}

/// An EC public key from its affine coordinates (each exactly the field size,
/// RFC 7518 §6.2.1.2), checked to be on the curve.
fn ec_material(crv: &str, x: &[u8], y: &[u8]) -> Result<KeyMaterial, KeyError> {
    let size = match crv {
        "P-256" => 32,
        "P-384" => 48,
        "P-521" => 66,
        other => return Err(KeyError::UnsupportedCurve(other.to_owned())),
    };
    if x.len() != size || y.len() != size {
        return Err(KeyError::Invalid(format!(
            "{crv} coordinates must be {size} bytes each"
        )));
    }
    let invalid = |e: PointError| KeyError::Invalid(format!("{crv} point: {e}"));
    let curve_missing = || invalid(PointError::Curve);
    Ok(match size {
        32 => KeyMaterial::P256(
            EcKey::from_coordinates(ec_fast::p256().ok_or_else(curve_missing)?, x, y)
                .map_err(invalid)?,
        ),
        48 => KeyMaterial::P384(
            EcKey::from_coordinates(ec_fast::p384().ok_or_else(curve_missing)?, x, y)
                .map_err(invalid)?,
        ),
        _ => KeyMaterial::P521(
            EcKey::from_coordinates(ec_fast::p521().ok_or_else(curve_missing)?, x, y)
                .map_err(invalid)?,
        ),
    })
}

/// An Ed25519 public key, refused if it is of small order (a "weak" key:
/// one of the eight points of order dividing 8, for which signatures can be
/// forged without any private key, since `[k]A` takes at most eight values).
fn ed_material(key: ed25519_dalek::VerifyingKey) -> Result<KeyMaterial, KeyError> {
    if key.is_weak() {
        return Err(KeyError::Invalid(
            "Ed25519 public key of small order (a weak key: signatures could be forged)".into(),
        ));
    }
    Ok(KeyMaterial::Ed25519(key.into()))
}

/// A key from a PEM `PUBLIC KEY` (SubjectPublicKeyInfo): RSA, EC P-256,
/// P-384, P-521 or Ed25519. `alg`, if given, restricts it to that algorithm.
pub fn key_from_pem(kid: Option<String>, pem: &str, alg: Option<&str>) -> Result<Key, KeyError> {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    let pem = pem.trim();
    if pem.contains("PRIVATE KEY") {
        return Err(private_key_refused());
    }
    let material = if let Ok(RsaSpki(k)) = RsaSpki::from_public_key_pem(pem) {
        let bits = k.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::RsaTooShort(bits));
        }
        KeyMaterial::Rsa(k)
    } else if let Ok(EcSpki(k)) = EcSpki::from_public_key_pem(pem) {
        k
    } else if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
        ed_material(k)?
    } else {
        return Err(KeyError::Invalid(
            "not a PEM public key (SubjectPublicKeyInfo) of type RSA, EC P-256/384/521 or Ed25519"
                .into(),
        ));
    };
    bind(kid, material, alg)
}

/// An RSA key from a SubjectPublicKeyInfo, decoded as the `rsa` 0.9.10 crate
/// decodes one (`DecodePublicKey`): algorithm rsaEncryption with NULL
/// parameters, a PKCS#1 `RSAPublicKey`, then its checks of n and e.
struct RsaSpki(crate::rsa_fast::RsaVerifier);

/// rsaEncryption (RFC 8017 A.1).
const RSA_ENCRYPTION: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

impl TryFrom<spki::SubjectPublicKeyInfoRef<'_>> for RsaSpki {
    type Error = spki::Error;

    fn try_from(spki: spki::SubjectPublicKeyInfoRef<'_>) -> Result<Self, Self::Error> {
        spki.algorithm.assert_algorithm_oid(RSA_ENCRYPTION)?;
        if spki.algorithm.parameters_any()? != pkcs1::der::asn1::Null.into() {
            return Err(spki::Error::KeyMalformed);
        }
        let key = pkcs1::RsaPublicKey::try_from(
            spki.subject_public_key
                .as_bytes()
                .ok_or(spki::Error::KeyMalformed)?,
        )
        .map_err(|_| spki::Error::KeyMalformed)?;
        crate::rsa_fast::RsaVerifier::from_components(
            key.modulus.as_bytes(),
            key.public_exponent.as_bytes(),
        )
        .map(RsaSpki)
        .map_err(|_| spki::Error::KeyMalformed)
    }
}

/// id-ecPublicKey (RFC 5480 §2.1.1) and the named curves' OIDs (§2.1.1.1).
const ID_EC_PUBLIC_KEY: spki::ObjectIdentifier =
    spki::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: spki::ObjectIdentifier = spki::ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// An EC key from a SubjectPublicKeyInfo (RFC 5480): algorithm
/// id-ecPublicKey with a namedCurve parameter (P-256, P-384 or P-521), the
/// SEC1 point (uncompressed or compressed) in the bit string, checked to be
/// on the curve, as the `p256`/`p384`/`p521` crates' `DecodePublicKey` read
/// one.
struct EcSpki(KeyMaterial);

impl TryFrom<spki::SubjectPublicKeyInfoRef<'_>> for EcSpki {
    type Error = spki::Error;

    fn try_from(spki: spki::SubjectPublicKeyInfoRef<'_>) -> Result<Self, Self::Error> {
        spki.algorithm.assert_algorithm_oid(ID_EC_PUBLIC_KEY)?;
        let curve = spki.algorithm.parameters_oid()?;
        let sec1 = spki
            .subject_public_key
            .as_bytes()
            .ok_or(spki::Error::KeyMalformed)?;
        let malformed = |_| spki::Error::KeyMalformed;
        let material = if curve == SECP256R1 {
            let c = ec_fast::p256().ok_or(spki::Error::KeyMalformed)?;
            KeyMaterial::P256(EcKey::from_sec1(c, sec1).map_err(malformed)?)
        } else if curve == SECP384R1 {
            let c = ec_fast::p384().ok_or(spki::Error::KeyMalformed)?;
            KeyMaterial::P384(EcKey::from_sec1(c, sec1).map_err(malformed)?)
        } else if curve == SECP521R1 {
            let c = ec_fast::p521().ok_or(spki::Error::KeyMalformed)?;
            KeyMaterial::P521(EcKey::from_sec1(c, sec1).map_err(malformed)?)
        } else {
            return Err(spki::Error::OidUnknown { oid: curve });
        };
        Ok(EcSpki(material))
    }
}

/// An HMAC key from a base64 secret (standard or URL-safe alphabet, padding optional).
pub fn key_from_base64_secret(
    kid: Option<String>,
    secret: &str,
    alg: Option<&str>,
) -> Result<Key, KeyError> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let s = secret.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .map_err(|e| KeyError::Invalid(format!("secret is not base64: {e}")))?;
    bind(kid, hmac_material(bytes)?, alg)
}

fn bind(kid: Option<String>, material: KeyMaterial, alg: Option<&str>) -> Result<Key, KeyError> {
    let mut algs = material.usable_algs();
    if let Some(name) = alg {
        let a = Alg::from_name(name)
            .filter(|a| a.family() == material.family())
            .ok_or_else(|| KeyError::AlgorithmMismatch(name.to_owned()))?;
        algs = algs.intersect([a].into_iter().collect());
        if algs.is_empty() {
            return Err(KeyError::AlgorithmMismatch(name.to_owned()));
        }
    }
    Ok(Key {
        kid,
        algs,
        material,
    })
}

/// An HMAC key from a raw secret (config `hmac_secrets`, or a JWK `oct`).
pub fn hmac_key(kid: Option<String>, secret: Vec<u8>) -> Result<Key, KeyError> {
    let material = hmac_material(secret)?;
    Ok(Key {
        kid,
        algs: material.usable_algs(),
        material,
    })
}

fn hmac_material(secret: Vec<u8>) -> Result<KeyMaterial, KeyError> {
    if secret.len() < MIN_HMAC_BYTES {
        return Err(KeyError::HmacTooShort(secret.len()));
    }
    Ok(KeyMaterial::Hmac(HmacSecret::new(secret)?))
}

/// A JWKS parsed leniently: unusable keys are reported, not fatal.
#[derive(Debug, Default)]
pub struct ParsedJwks {
    pub keys: Vec<Key>,
    /// (index in `keys`, kid if any, why it was skipped)
    pub skipped: Vec<(usize, Option<String>, KeyError)>,
}

/// Bound on the number of keys in one JWKS.
pub const MAX_JWKS_KEYS: usize = 64;

/// Why a JWKS document as a whole is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    NotJson(String),
    NoKeysArray,
    TooManyKeys(usize),
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksError::NotJson(e) => write!(f, "JWKS is not valid JSON: {e}"),
            JwksError::NoKeysArray => f.write_str("JWKS must be an object with a \"keys\" array"),
            JwksError::TooManyKeys(n) => {
                write!(
                    f,
                    "JWKS has {n} keys, more than the bound of {MAX_JWKS_KEYS}"
                )
            }
        }
    }
}

/// Parses a JWKS document (RFC 7517 §5). Keys of unknown types, encryption keys
/// and invalid keys are skipped and reported; the set is refused only if its
/// shape is wrong or it exceeds [`MAX_JWKS_KEYS`].
pub fn parse_jwks(doc: &Value) -> Result<ParsedJwks, JwksError> {
    let owned;
    let doc = match doc {
        Value::String(s) => {
            owned =
                serde_json::from_str::<Value>(s).map_err(|e| JwksError::NotJson(e.to_string()))?;
            &owned
        }
        other => other,
    };
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NoKeysArray)?;
    if keys.len() > MAX_JWKS_KEYS {
        return Err(JwksError::TooManyKeys(keys.len()));
    }
    let mut parsed = ParsedJwks::default();
    for (i, jwk) in keys.iter().enumerate() {
        match key_from_jwk(jwk) {
            Ok(k) => parsed.keys.push(k),
            Err(e) => {
                let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
                parsed.skipped.push((i, kid, e));
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    // On wasm32 `#[test]` is wasm-bindgen-test's: these tests also run in Node
    // (filter/scripts/test-core-wasm.sh).
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn alg_names_round_trip_and_none_is_not_an_algorithm() {
        for a in Alg::ALL {
            assert_eq!(Alg::from_name(a.name()), Some(a));
        }
        for bad in ["none", "None", "NONE", "nOnE", "rs256", "HS256 ", ""] {
            assert_eq!(Alg::from_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hmac_key_strength_limits_its_algorithms() {
        let k = hmac_key(None, vec![7; 32]).unwrap();
        assert_eq!(k.algs().iter().collect::<Vec<_>>(), vec![Alg::Hs256]);
        let k = hmac_key(None, vec![7; 64]).unwrap();
        assert_eq!(k.algs().iter().count(), 3);
        assert_eq!(
            hmac_key(None, vec![7; 31]).unwrap_err(),
            KeyError::HmacTooShort(31)
        );
    }

    #[test]
    fn jwk_alg_must_fit_the_key_type() {
        let k = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let err = key_from_jwk(&json!({"kty":"oct","k":k,"alg":"RS256"})).unwrap_err();
        assert_eq!(err, KeyError::AlgorithmMismatch("RS256".into()));
        let key = key_from_jwk(&json!({"kty":"oct","k":k,"alg":"HS256","kid":"a"})).unwrap();
        assert_eq!(key.kid(), Some("a"));
        assert!(key.algs().contains(Alg::Hs256));
    }

    #[test]
    fn jwks_skips_unusable_keys_but_keeps_the_rest() {
        let k = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let doc = json!({"keys":[
            {"kty":"oct","k":k,"kid":"good"},
            {"kty":"oct","k":k,"use":"enc","kid":"enc"},
            {"kty":"XYZ","kid":"odd"},
            {"kty":"EC","crv":"secp256k1","x":"AA","y":"AA","kid":"curve"},
            "not an object"
        ]});
        let parsed = parse_jwks(&doc).unwrap();
        assert_eq!(parsed.keys.len(), 1);
        assert_eq!(parsed.skipped.len(), 4);
        assert!(matches!(parsed.skipped[0].2, KeyError::NotForSignatures(_)));
        assert!(matches!(
            parsed.skipped[1].2,
            KeyError::UnsupportedKeyType(_)
        ));
        assert!(matches!(parsed.skipped[2].2, KeyError::UnsupportedCurve(_)));
        assert_eq!(
            parse_jwks(&json!({"nokeys": 1})).unwrap_err(),
            JwksError::NoKeysArray
        );
        let many: Vec<_> = (0..65).map(|_| json!({"kty":"oct","k":k})).collect();
        assert_eq!(
            parse_jwks(&json!({ "keys": many })).unwrap_err(),
            JwksError::TooManyKeys(65)
        );
    }

    #[test]
    fn private_keys_in_config_are_refused() {
        let doc = json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"});
        assert!(matches!(
            key_from_jwk(&doc).unwrap_err(),
            KeyError::Invalid(_)
        ));
    }

    #[test]
    fn jwk_members_are_required_base64url_strings() {
        let invalid = |doc: serde_json::Value| match key_from_jwk(&doc) {
            Err(KeyError::Invalid(why)) => why,
            other => panic!("{doc}: {other:?}"),
        };
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        // The message names the member as serde's own does (operators grep for it).
        assert_eq!(invalid(json!({"kty": "RSA", "e": "AQAB"})), "missing field `n`");
        assert_eq!(invalid(json!({"kty": "RSA", "n": n})), "missing field `e`");
        assert!(invalid(json!({"kty": "RSA", "n": 7, "e": "AQAB"})).contains("must be a string"));
        assert!(invalid(json!({"kty": "RSA", "n": format!("{n}="), "e": "AQAB"})).contains("not base64url"));
        assert!(invalid(json!({"kty": "RSA", "n": n.replace('x', "+"), "e": "AQAB"})).contains("not base64url"));
        let odd = |mut bytes: Vec<u8>| {
            *bytes.last_mut().unwrap() |= 1;
            URL_SAFE_NO_PAD.encode(bytes)
        };
        // 2048 bits, odd: a key; 1024 bits: too short; even: refused.
        let key = key_from_jwk(&json!({"kty": "RSA", "n": odd(vec![0xc5; 256]), "e": "AQAB"})).unwrap();
        assert_eq!(key.material().family(), KeyFamily::Rsa);
        assert_eq!(
            key_from_jwk(&json!({"kty": "RSA", "n": odd(vec![0xc5; 128]), "e": "AQAB"})).unwrap_err(),
            KeyError::RsaTooShort(1024)
        );
        assert!(key_from_jwk(&json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc4u8; 256]), "e": "AQAB"})).is_err());
        // Ed25519: exactly 32 octets of a point's encoding.
        assert_eq!(invalid(json!({"kty": "OKP", "crv": "Ed25519"})), "missing field `x`");
        assert!(
            invalid(json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([9u8; 31])}))
                .contains("32 bytes")
        );
        assert_eq!(
            key_from_jwk(&json!({"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})).unwrap_err(),
            KeyError::UnsupportedCurve("X25519".into())
        );
    }

    #[test]
    fn ed25519_keys_of_small_order_are_refused() {
        // The identity (y = 1), the point of order 2 (y = p - 1) and one of
        // order 4 (y = 0): each would accept forged signatures.
        for y in [
            "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "7P_______________________________________38",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let err = key_from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "x": y})).unwrap_err();
            assert!(err.to_string().contains("small order"), "{y}: {err}");
        }
        // A key of the prime-order subgroup loads.
        let ok = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert!(key_from_jwk(&ok).is_ok());
    }
}
