//! A model card (the repository's README.md) as HTML the window can show: Markdown rendered
//! by `pulldown-cmark`, with everything a stranger's text could use against the window taken
//! out — raw HTML is shown as text, links keep only http(s) targets (and open nothing by
//! themselves: the window follows no link), images become their alt text (no remote loads).

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};

/// The card as safe HTML, its YAML front matter left out.
pub fn card_html(markdown: &str) -> String {
    let body = strip_front_matter(markdown);
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    // An image's start and end are dropped: its alt text stays, as plain text.
    let events = Parser::new_ext(body, options).filter_map(|event| match event {
        Event::Html(text) | Event::InlineHtml(text) => Some(Event::Text(text)),
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Some(Event::Start(Tag::Link {
            link_type: if safe_url(&dest_url) {
                link_type
            } else {
                LinkType::Inline
            },
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                CowStr::Borrowed("")
            },
            title,
            id,
        })),
        other => Some(other),
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// Only web links survive; `javascript:`, `data:` and the like are dropped.
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// The card without its `---`-fenced YAML header.
fn strip_front_matter(markdown: &str) -> &str {
    let Some(rest) = markdown.strip_prefix("---\n") else {
        return markdown;
    };
    match rest.find("\n---\n") {
        Some(end) => &rest[end + 5..],
        None => markdown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_and_nothing_active_gets_through() {
        let card = "---\nlicense: mit\n---\n# MiniLM\n\nA **small** model. See [paper](https://arxiv.org/abs/1) \
                    or [click](javascript:alert(1)).\n\n<script>alert(2)</script>\n\n\
                    <img src=x onerror=alert(3)>\n\n![logo](https://example.com/logo.png)\n\n\
                    | a | b |\n|---|---|\n| 1 | 2 |\n";
        let html = card_html(card);
        assert!(html.contains("<h1>MiniLM</h1>"), "{html}");
        assert!(html.contains("<strong>small</strong>"), "{html}");
        assert!(html.contains("href=\"https://arxiv.org/abs/1\""), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(!html.contains("license: mit"), "front matter shown: {html}");
        // No element of the card's own making: its HTML is text, its script link is empty.
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;script&gt;"),
            "raw HTML is shown as text: {html}"
        );
        assert!(
            html.contains("logo"),
            "an image leaves its alt text: {html}"
        );
    }
}
