//! TOML errors told in one line, for the config files.

/// A TOML error as one line: the message, and where it is (the line
/// number and the line itself), e.g. ``line 3 (durability = "fastest"):
/// unknown variant `fastest`, expected `full` or `fast` ``.
pub fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            if line.is_empty() {
                format!("line {line_no}: {message}")
            } else {
                format!("line {line_no} ({line}): {message}")
            }
        }
        None => message,
    }
}
