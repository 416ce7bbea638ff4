//! The citation markers inside the answer text (`docs/kimi-protocol.md` §4.5), removed as the
//! text streams. Pure: text pieces in, answer text out; tested at every split point.

/// Removes Kimi's citation markers (`docs/kimi-protocol.md` §4.5) from answer text as it
/// streams, and nothing else. Text flows out at once; only a tail that may still be the start
/// of a marker is held, until it is decided. A marker is at most [`MAX_MARKER`] chars long, so
/// no more is ever held, and an opening that does not close in time is plain text after all.
#[derive(Debug, Default)]
pub struct CitationMarkers {
    /// The undecided start of a possible marker.
    held: String,
}

/// Opens the 2025 form and the 2026 header and quote.
const OPEN: char = '\u{E3A0}';
/// Delimits 2026 references, and opens the inline form on its own.
const TOOL: char = '\u{1F6E0}';
/// Kimi's markers are far shorter; the bound keeps a stray opening from holding the answer back.
const MAX_MARKER: usize = 1024;

/// The markers that start with [`OPEN`]: how each begins, and the characters that end it.
const OPEN_FORMS: [(&str, &[char]); 3] = [
    // 2025: U+E3A0 cite U+E3A3 web_search:1#2 U+E3A8
    ("\u{E3A0}cite\u{E3A3}", &['\u{E3A8}']),
    // 2026 quote: U+E3A0 cite 🛠 web_search:1#5:~:text=<quoted text> 🛠 (or U+E3A8)
    ("\u{E3A0}cite\u{1F6E0}", &['\u{1F6E0}', '\u{E3A8}']),
    // 2026 header: U+E3A0 article 🛠 web_search:1#5 🛠 web_search:1#0 🎨
    ("\u{E3A0}article\u{1F6E0}", &['\u{1F3A8}']),
];

/// What the text from an opening character on is.
enum Verdict {
    /// A marker this many bytes long.
    Marker(usize),
    /// Not a marker: the opening character is plain text.
    Text,
    /// May still become a marker: more text decides.
    Undecided,
}

impl CitationMarkers {
    /// The answer text of one piece; a tail that may start a marker waits for the next piece.
    pub fn strip(&mut self, text: String) -> String {
        if self.held.is_empty() && !text.contains(OPEN) && !text.contains(TOOL) {
            return text;
        }
        let input = std::mem::take(&mut self.held) + &text;
        self.scan(&input, false)
    }

    /// What is still held at the end of the stream: no marker can close any more.
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        self.scan(&held, true)
    }

    fn scan(&mut self, input: &str, at_end: bool) -> String {
        let mut out = String::with_capacity(input.len());
        let mut rest = input;
        while let Some(start) = rest.find([OPEN, TOOL]) {
            out.push_str(&rest[..start]);
            let candidate = &rest[start..];
            match verdict(candidate) {
                Verdict::Marker(len) => rest = &candidate[len..],
                Verdict::Undecided if !at_end => {
                    self.held = candidate.to_string();
                    return out;
                }
                Verdict::Text | Verdict::Undecided => {
                    let opening = candidate.chars().next().map_or(0, char::len_utf8);
                    out.push_str(&candidate[..opening]);
                    rest = &candidate[opening..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Decides the text at an opening character from its first [`MAX_MARKER`] chars.
fn verdict(candidate: &str) -> Verdict {
    let window = candidate.char_indices().nth(MAX_MARKER).map_or(candidate, |(end, _)| &candidate[..end]);
    let verdict = if window.starts_with(OPEN) { open_form(window) } else { inline_reference(window) };
    match verdict {
        Verdict::Undecided if window.len() < candidate.len() => Verdict::Text,
        verdict => verdict,
    }
}

/// A marker opened by [`OPEN`]: one of [`OPEN_FORMS`], up to its own closing character.
fn open_form(text: &str) -> Verdict {
    for (head, closers) in OPEN_FORMS {
        if let Some(body) = text.strip_prefix(head) {
            return match body.char_indices().find(|(_, c)| closers.contains(c)) {
                Some((end, closer)) => Verdict::Marker(head.len() + end + closer.len_utf8()),
                None => Verdict::Undecided,
            };
        }
    }
    if OPEN_FORMS.iter().any(|(head, _)| head.starts_with(text)) { Verdict::Undecided } else { Verdict::Text }
}

/// `🛠web_search:1#5🛠`: a lone 🛠, or 🛠 around anything but a reference, is text.
fn inline_reference(text: &str) -> Verdict {
    let body = &text[TOOL.len_utf8()..];
    match body.find(TOOL) {
        Some(end) if reference(&body[..end]) == Some(true) => Verdict::Marker(end + 2 * TOOL.len_utf8()),
        Some(_) => Verdict::Text,
        None if reference(body).is_some() => Verdict::Undecided,
        None => Verdict::Text,
    }
}

/// Whether `text` is a reference `name:digits#digits` (`Some(true)`), only the start of one
/// (`Some(false)`), or neither.
fn reference(text: &str) -> Option<bool> {
    let is_name = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let Some((name, rest)) = text.split_once(':') else { return is_name(text).then_some(false) };
    if name.is_empty() || !is_name(name) {
        return None;
    }
    let Some((call, result)) = rest.split_once('#') else { return is_digits(rest).then_some(false) };
    (!call.is_empty() && is_digits(call) && is_digits(result)).then_some(!result.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each input and the answer text it must give.
    const MARKED: &[(&str, &str)] = &[
        ("Sunny \u{E3A0}cite\u{E3A3}web_search:1#2\u{E3A8}today.", "Sunny today."),
        ("a\u{E3A0}cite\u{E3A3}web_search:1#2\u{E3A3}web_search:2#10\u{E3A8}b", "ab"),
        ("\u{E3A0}article🛠web_search:1#5🛠web_search:1#0🎨\n\nIn Paris today:", "\n\nIn Paris today:"),
        ("clouds \u{E3A0}cite🛠web_search:1#5:~:text=Showers, then sun 🎨 later🛠\n- wind", "clouds \n- wind"),
        ("24℃ \u{E3A0}cite🛠web_search:1#3:~:text=up to 24℃\u{E3A8} at noon", "24℃  at noon"),
        ("take an umbrella 🛠web_search:1#5🛠.", "take an umbrella ."),
        ("x🛠search_2:12#0🛠🛠web_search:1#1🛠y", "xy"),
        ("🛠🛠web_search:1#2🛠", "🛠"),
        ("a 🛠 b 🛠web_search:1#2🛠c", "a 🛠 b c"),
        (
            "\u{E3A0}article🛠web_search:1#1🛠web_search:1#0🎨Rain \u{E3A0}cite🛠web_search:1#1:~:text=rain🛠\
             later\u{E3A0}cite\u{E3A3}web_search:1#0\u{E3A8}, 🛠 wind 🛠web_search:1#0🛠.",
            "Rain later, 🛠 wind .",
        ),
    ];

    /// Text that only looks like a marker, unchanged.
    const PLAIN: &[&str] = &[
        "the 🛠 emoji",
        "🛠",
        "🛠 hammer 🛠",
        "🛠web_search:1#5 🛠",
        "🛠web_search:1#🛠",
        "🛠web_search:#5🛠",
        "🛠:1#5🛠",
        "🛠web search:1#5🛠",
        "🛠web_search:1#5:~:text=a🛠",
        "🛠web_search:1#5",
        "\u{E3A0}cita",
        "\u{E3A0}article.",
        "\u{E3A0}cite web_search:1#2\u{E3A8}",
        "\u{E3A0}",
        "🎨 and \u{E3A8} alone",
        "end \u{E3A0}article🛠web_search:1#5",
        "end \u{E3A0}cite🛠web_search:1#5:~:text=never closed",
    ];

    fn all_inputs() -> Vec<(String, String)> {
        let marked = MARKED.iter().map(|(input, output)| (input.to_string(), output.to_string()));
        marked.chain(PLAIN.iter().map(|text| (text.to_string(), text.to_string()))).collect()
    }

    /// The answer text for `input` cut into pieces at these byte offsets (char boundaries).
    fn stripped(input: &str, cuts: &[usize]) -> String {
        let mut markers = CitationMarkers::default();
        let mut out = String::new();
        let mut from = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            out += &markers.strip(input[from..cut].to_string());
            from = cut;
        }
        out + &markers.finish()
    }

    fn boundaries(input: &str) -> Vec<usize> {
        input.char_indices().map(|(i, _)| i).chain([input.len()]).collect()
    }

    #[test]
    fn every_form_is_removed_and_nothing_else() {
        for (input, output) in all_inputs() {
            assert_eq!(stripped(&input, &[]), output, "{input:?}");
        }
    }

    #[test]
    fn every_split_in_two_and_three_pieces_gives_the_same_text() {
        for (input, output) in all_inputs() {
            let points = boundaries(&input);
            for (n, &a) in points.iter().enumerate() {
                assert_eq!(stripped(&input, &[a]), output, "{input:?} cut at {a}");
                for &b in &points[n..] {
                    assert_eq!(stripped(&input, &[a, b]), output, "{input:?} cut at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn random_splits_give_the_same_text() {
        let inputs = all_inputs();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        for _ in 0..2000 {
            let (input, output) = &inputs[next(inputs.len())];
            let points = boundaries(input);
            let mut cuts: Vec<usize> = (0..next(8)).map(|_| points[next(points.len())]).collect();
            cuts.sort_unstable();
            assert_eq!(&stripped(input, &cuts), output, "{input:?} cut at {cuts:?}");
        }
    }

    #[test]
    fn text_flows_at_once_and_only_a_possible_marker_waits() {
        let mut markers = CitationMarkers::default();
        let piece = String::from("no marker here");
        let at = piece.as_ptr();
        let out = markers.strip(piece);
        assert_eq!(
            (out.as_str(), out.as_ptr()),
            ("no marker here", at),
            "the common case hands the piece on"
        );
        assert_eq!(markers.strip("Sun \u{E3A0}ci".into()), "Sun ");
        assert_eq!(markers.strip("te🛠web_search:1#0:~:text=sun".into()), "");
        assert_eq!(markers.strip("🛠 and 🛠".into()), " and ");
        assert_eq!(markers.strip("web_search:1#0🛠 wind 🛠".into()), " wind ");
        assert_eq!(markers.strip(" rain".into()), "🛠 rain");
        assert_eq!(markers.finish(), "");
    }

    #[test]
    fn an_unclosed_marker_is_text_after_a_bounded_wait() {
        for opening in
            ["\u{E3A0}cite🛠web_search:1#5:~:text=", "\u{E3A0}cite\u{E3A3}", "\u{E3A0}article🛠", "🛠web_"]
        {
            let input = format!("a {opening}{} b", "x".repeat(3 * MAX_MARKER));
            let mut markers = CitationMarkers::default();
            let mut out = String::new();
            for c in input.chars() {
                out += &markers.strip(c.to_string());
                assert!(
                    markers.held.chars().count() <= MAX_MARKER,
                    "{opening:?}: held {}",
                    markers.held.len()
                );
            }
            out += &markers.finish();
            assert_eq!(out, input);
            for cut in boundaries(&input).into_iter().step_by(97) {
                assert_eq!(stripped(&input, &[cut]), input, "{opening:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn a_marker_may_be_exactly_as_long_as_the_bound() {
        let marker = |len: usize| {
            let head = "\u{E3A0}cite🛠web_search:1#5:~:text=";
            format!("{head}{}🛠", "q".repeat(len - head.chars().count() - 1))
        };
        assert_eq!(marker(MAX_MARKER).chars().count(), MAX_MARKER);
        assert_eq!(stripped(&format!("a{}b", marker(MAX_MARKER)), &[]), "ab");
        let long = format!("a{}b", marker(MAX_MARKER + 1));
        assert_eq!(stripped(&long, &[]), long);
        assert_eq!(stripped(&long, &[5]), long);
    }
}
