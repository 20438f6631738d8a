//! Links the pages make, and refs read back from URLs. Every link is
//! built here, with its parts percent-encoded, so links stay stable and
//! any name or ref survives the round trip.

use crate::failure::Failure;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reg_registry::VersionRef;

/// Characters kept as they are in a path segment (refs read well:
/// `mlp@epoch=3`, `mlp@best:val_loss`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@')
    .remove(b'=')
    .remove(b':');

/// Characters kept in a query value (`=` and `&` are encoded).
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'@')
    .remove(b':');

fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn query(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// `/m/NAME`.
pub fn model(name: &str) -> String {
    format!("/m/{}", seg(name))
}

/// `/m/NAME/REF`.
pub fn version(name: &str, reference: &str) -> String {
    format!("/m/{}/{}", seg(name), seg(reference))
}

/// `/diff?a=A&b=B`.
pub fn diff(a: &str, b: &str) -> String {
    format!("/diff?a={}&b={}", query(a), query(b))
}

/// `/api/diff?a=A&b=B`.
pub fn api_diff(a: &str, b: &str) -> String {
    format!("/api/diff?a={}&b={}", query(a), query(b))
}

/// `/api/log/NAME`.
pub fn api_log(name: &str) -> String {
    format!("/api/log/{}", seg(name))
}

/// `/api/show/NAME@REF`.
pub fn api_show(spec: &str) -> String {
    format!("/api/show/{}", seg(spec))
}

/// `/pull/NAME@REF` with an optional query (`format=safetensors`).
pub fn pull(spec: &str, options: Option<&str>) -> String {
    match options {
        Some(q) => format!("/pull/{}?{q}", seg(spec)),
        None => format!("/pull/{}", seg(spec)),
    }
}

/// `/pull/NAME@REF/PATH`: one file of a directory version (each path
/// component percent-encoded).
pub fn pull_file(spec: &str, path: &str) -> String {
    let parts: Vec<String> = path.split('/').map(seg).collect();
    format!("/pull/{}/{}", seg(spec), parts.join("/"))
}

/// `NAME@vN`.
pub fn spec(name: &str, number: u32) -> String {
    reg_registry::VersionLabel::new(name, number).to_string()
}

/// A model name from a URL, checked before any lookup (the index finds
/// names by prefix, so a name must never carry a separator such as NUL).
pub fn model_name(name: &str) -> Result<&str, Failure> {
    reg_registry::ModelName::new(name)
        .map(|_| name)
        .map_err(|e| Failure::from(reg_registry::RegistryError::BadName(e)))
}

/// A ref from a `/m/NAME/REF` URL.
pub fn path_ref(name: &str, reference: &str) -> Result<VersionRef, Failure> {
    model_name(name)?;
    parse_ref(&format!("{name}@{reference}"))
}

/// A `NAME[@REF]` from a URL or a query.
pub fn parse_ref(text: &str) -> Result<VersionRef, Failure> {
    VersionRef::parse(text).map_err(|e| Failure::from(reg_registry::RegistryError::BadRef(e)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_encode_what_needs_it() {
        assert_eq!(super::version("mlp", "epoch=3"), "/m/mlp/epoch=3");
        assert_eq!(super::diff("a@v1", "a@best:loss"), "/diff?a=a@v1&b=a@best:loss");
        assert_eq!(super::diff("a@x=1&y", "b"), "/diff?a=a@x%3D1%26y&b=b");
        assert_eq!(super::version("m", "a/b?c#d"), "/m/m/a%2Fb%3Fc%23d");
    }
}
