//! A header map with Envoy's rules: lowercase names, pseudo-headers kept
//! before regular headers, first value returned by lookups.

/// An ordered multi-map of headers. Names are stored lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    pub fn new() -> HeaderMap {
        HeaderMap::default()
    }

    /// Builds a map from pairs, lowercasing names and keeping Envoy's
    /// pseudo-headers-first order (stable otherwise).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.add(k.as_ref(), v.as_ref());
        }
        m
    }

    /// Pairs in order, values as bytes.
    pub fn entries(&self) -> &[(String, Vec<u8>)] {
        &self.entries
    }

    /// Pairs in order, values as (lossy) strings.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// First value of `name` (case-insensitive), as Envoy's `get_header_map_value`.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// First value of `name`, lossily decoded.
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Appends a value; pseudo-headers go after the last pseudo-header
    /// (Envoy's HeaderList keeps them in front).
    pub fn add(&mut self, name: &str, value: &[u8]) {
        let name = name.to_ascii_lowercase();
        if name.starts_with(':') {
            let at = self
                .entries
                .iter()
                .position(|(k, _)| !k.starts_with(':'))
                .unwrap_or(self.entries.len());
            self.entries.insert(at, (name, value.to_vec()));
        } else {
            self.entries.push((name, value.to_vec()));
        }
    }

    /// Envoy's `setCopy`: removes every value of `name`, then appends the new one
    /// (at the end; a pseudo-header after the last pseudo-header). So a replaced
    /// header moves to the end of the map, as Envoy 1.40 shows it to the filter and
    /// sends it upstream (`http_set_copy_replace_all_headers`).
    pub fn replace(&mut self, name: &str, value: &[u8]) {
        self.remove(name);
        self.add(name, value);
    }

    /// Envoy's inline-header setters (`setContentLength`, ...): the first value is
    /// updated in place and the others dropped; appended when absent.
    pub(crate) fn set_inline(&mut self, name: &str, value: &[u8]) {
        let lname = name.to_ascii_lowercase();
        match self.entries.iter().position(|(k, _)| *k == lname) {
            Some(first) => {
                let mut i = 0usize;
                self.entries.retain(|(k, _)| {
                    let keep = *k != lname || i == first;
                    i += 1;
                    keep
                });
                if let Some(e) = self.entries.get_mut(first) {
                    e.1 = value.to_vec();
                }
            }
            None => self.add(name, value),
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        self.entries.retain(|(k, _)| *k != name);
    }

    /// Serialized in the proxy-wasm map format.
    pub fn serialize(&self) -> Vec<u8> {
        crate::abi::serialize_map(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_stay_first() {
        let mut m = HeaderMap::from_pairs(&[(":path", "/"), ("a", "1")]);
        m.add(":method", b"GET");
        assert_eq!(
            m.pairs().iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            vec![":path", ":method", "a"]
        );
    }

    #[test]
    fn replace_drops_every_value_and_appends() {
        let mut m = HeaderMap::from_pairs(&[("a", "1"), ("b", "2"), ("A", "3")]);
        m.replace("a", b"9");
        assert_eq!(
            m.pairs(),
            vec![("b".into(), "2".into()), ("a".into(), "9".into())]
        );
        let mut m = HeaderMap::from_pairs(&[(":path", "/"), (":method", "GET"), ("x", "1")]);
        m.replace(":path", b"/new");
        assert_eq!(
            m.pairs().iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            vec![":method", ":path", "x"]
        );
    }
}
