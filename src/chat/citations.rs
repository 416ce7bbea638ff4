//! Citations rendered as answer text, the same for every dialect.

use super::{Event, Flow, Sink};

/// Turns citations into answer text the way the original project's users know it, so that
/// every dialect shows them alike: while streaming, `【检索 N】 [title](url)` lines before the
/// answer (and a line break before the next answer piece); when aggregating, a
/// `搜索结果来自：` list after the answer. `silent` models drop them.
pub struct CitationText<S> {
    inner: S,
    streaming: bool,
    silent: bool,
    count: usize,
    break_before_text: bool,
    collected: String,
}

impl<S: Sink> CitationText<S> {
    pub fn new(inner: S, streaming: bool, silent: bool) -> Self {
        CitationText {
            inner,
            streaming,
            silent,
            count: 0,
            break_before_text: false,
            collected: String::new(),
        }
    }
}

impl<S: Sink> Sink for CitationText<S> {
    fn send(&mut self, event: Event) -> Flow {
        match event {
            Event::Citation { title, url } => {
                if self.silent {
                    return Flow::Go;
                }
                self.count += 1;
                let n = self.count;
                if self.streaming {
                    self.break_before_text = true;
                    self.inner.send(Event::Text(format!("【检索 {n}】 [{title}]({url})\n")))
                } else {
                    self.collected.push_str(&format!("【检索 {n}】 [{title}]({url})\n\n"));
                    Flow::Go
                }
            }
            Event::Text(text) if self.break_before_text => {
                self.break_before_text = false;
                self.inner.send(Event::Text(format!("\n{text}")))
            }
            Event::Finish(reason) if !self.collected.is_empty() => {
                let list = std::mem::take(&mut self.collected);
                let inner = &mut self.inner;
                inner
                    .send(Event::Text(format!("\n\n搜索结果来自：\n{list}")))
                    .then(|| inner.send(Event::Finish(reason)))
            }
            other => self.inner.send(other),
        }
    }

    fn flush(&mut self) -> Flow {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Collect;
    use crate::chat::Finish;

    #[test]
    fn streamed_citations_become_lines_before_the_answer() {
        let mut out = Collect::default();
        let mut sink = CitationText::new(&mut out, true, false);
        sink.send(Event::Citation { title: "T".into(), url: "http://u".into() }).go().unwrap();
        sink.send(Event::Text("answer".into())).go().unwrap();
        sink.send(Event::Text(" more".into())).go().unwrap();
        assert_eq!(
            out.0,
            vec![
                Event::Text("【检索 1】 [T](http://u)\n".into()),
                Event::Text("\nanswer".into()),
                Event::Text(" more".into()),
            ]
        );
    }

    #[test]
    fn aggregated_citations_follow_the_answer_and_silent_drops_them() {
        let mut out = Collect::default();
        let mut sink = CitationText::new(&mut out, false, false);
        sink.send(Event::Citation { title: "T".into(), url: "http://u".into() }).go().unwrap();
        sink.send(Event::Text("answer".into())).go().unwrap();
        sink.send(Event::Finish(Finish::Stop)).go().unwrap();
        assert_eq!(out.0[1], Event::Text("\n\n搜索结果来自：\n【检索 1】 [T](http://u)\n\n".into()));
        assert_eq!(out.0[2], Event::Finish(Finish::Stop));

        let mut out = Collect::default();
        let mut sink = CitationText::new(&mut out, true, true);
        sink.send(Event::Citation { title: "T".into(), url: "http://u".into() }).go().unwrap();
        sink.send(Event::Text("answer".into())).go().unwrap();
        assert_eq!(out.0, vec![Event::Text("answer".into())]);
    }
}
