"""Tests for main-content extraction (vdr_cli.tools.extract) and BM25 passage selection."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from vdr_cli.tools.extract import Extracted, detect_challenge, extract
from vdr_cli.tools.relevance import extractive_summary, select_passages

ROOT = Path(__file__).resolve().parent.parent
# The shared folder sits beside the main checkout (and two levels up from a worktree).
DATA = next((p / "shared" / "data" / "article-extraction" for p in (ROOT.parent, ROOT.parent.parent)
             if (p / "shared" / "data" / "article-extraction").is_dir()), ROOT.parent / "shared" / "data" / "article-extraction")


def _load_bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


score = _load_bench_module("extraction_score")

LOREM = (
    "The council voted on Tuesday to expand the tram network, a decision that follows years of "
    "debate, several studies, and a public consultation that drew thousands of responses. "
)

ARTICLE_PAGE = f"""<!doctype html>
<html lang="en"><head>
<meta charset="utf-8">
<title>Tram network to expand | City Gazette</title>
<link rel="canonical" href="/news/tram-expansion">
<meta property="og:title" content="Tram network to expand">
<meta property="og:image" content="/img/tram.jpg">
<meta name="description" content="The council approved the tram extension.">
<script type="application/ld+json">{{"@type": "NewsArticle", "datePublished": "2024-03-05T09:00:00Z"}}</script>
<style>body {{ font-family: serif; }}</style>
</head><body>
<header class="site-header"><a href="/">City Gazette</a>
  <nav><ul><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li></ul></nav>
</header>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
  <button>Accept all</button> <a href="/privacy">Privacy policy</a></div>
<main>
<article class="post">
  <h1>Tram network to expand</h1>
  <div class="byline">By Jane Doe, <time datetime="2024-03-05">5 March 2024</time></div>
  <div class="share-buttons"><a href="https://twitter.com/share">Tweet</a> <a href="https://facebook.com/share">Share</a></div>
  <div class="article-body">
    <p>{LOREM}The new line will run from the station to the university.</p>
    <p>{LOREM}Construction is expected to start next spring, the mayor said.</p>
    <div class="share-bar"><a href="https://facebook.com/sharer">Share on Facebook</a> <a href="https://twitter.com/intent">Tweet this</a></div>
    <aside class="inline-links"><h4>Read more</h4><ul><li><a href="/news/budget">Council budget row deepens</a></li>
      <li><a href="/news/mayor">Mayor faces questions over travel</a></li></ul></aside>
    <div class="newsletter-signup"><p>Sign up for our newsletter to get the news every morning.</p></div>
    <figure class="wp-caption"><img src="images/map.png" alt="Route map"><figcaption class="caption-text">The planned route crosses the river twice.</figcaption></figure>
    <p>{LOREM}Read the <a href="/docs/report.pdf">full report</a> or <a href="javascript:void(0)">print</a>
       or <a href="mailto:news@example.com">email us</a> or jump to <a href="#top">the top</a>.</p>
    <h2>What happens next</h2>
    <p>{LOREM}Residents can comment on the detailed plans until June.</p>
    <ul><li>Public meetings in April</li><li>Final design in May</li><li>Tender in September</li></ul>
    <table><tr><th>Stop</th><th>Minutes</th></tr><tr><td>Station</td><td>0</td></tr><tr><td>University</td><td>12</td></tr></table>
    <p>{LOREM}See also the <a href="/docs/report.pdf">report</a> again.</p>
  </div>
</article>
<section class="related-articles"><h3>Related stories</h3><ul>
  <li><a href="/news/bus-fares">Bus fares rise again this winter</a></li>
  <li><a href="/news/bike-lanes">New bike lanes open downtown</a></li>
  <li><a href="/news/parking">Parking fees under review</a></li></ul></section>
<div id="comments" class="comments-area"><h3>12 comments</h3>
  <div class="comment"><p>Finally! I have been waiting for this tram line for a decade, great news for the east side.</p></div>
  <div class="comment"><p>What a waste of money, the buses work fine and nobody asked for this, honestly.</p></div>
</div>
</main>
<aside class="sidebar"><h3>Most read</h3><ol><li><a href="/a">Storm warning</a></li><li><a href="/b">Election results</a></li></ol></aside>
<footer class="site-footer"><p>Copyright 2024 City Gazette. All rights reserved.</p><a href="/about">About us</a></footer>
</body></html>"""


@pytest.fixture(scope="module")
def article() -> Extracted:
    return extract(ARTICLE_PAGE, url="https://gazette.example.com/news/2024/tram.html")


def test_article_keeps_body_in_order(article: Extracted) -> None:
    text = article.text
    firsts = ["from the station to the university", "start next spring", "full report", "until June"]
    positions = [text.find(s) for s in firsts]
    assert all(p >= 0 for p in positions), text
    assert positions == sorted(positions)
    assert "## What happens next" in text
    assert "\n\n" in text  # paragraphs separated by blank lines


@pytest.mark.parametrize(
    "boilerplate",
    ["Sport", "We use cookies", "Bus fares rise", "waiting for this tram line", "Copyright 2024",
     "Storm warning", "Tweet", "12 comments", "Share on Facebook", "Council budget row", "Sign up for our newsletter"],
)
def test_article_drops_boilerplate(article: Extracted, boilerplate: str) -> None:
    assert boilerplate not in article.text


def test_article_lists_tables_and_captions(article: Extracted) -> None:
    assert "- Public meetings in April\n- Final design in May\n- Tender in September" in article.text
    assert "| Stop | Minutes |" in article.text
    assert "| University | 12 |" in article.text
    # A figure's caption describes the picture: it travels with the image, not in the prose
    # (the benchmark's article bodies leave captions out too).
    assert "The planned route crosses the river twice." not in article.text
    assert {"src": "https://gazette.example.com/news/2024/images/map.png", "alt": "Route map",
            "caption": "The planned route crosses the river twice."} in article.images


def _teaser(i: int) -> str:
    return (f'<li><article class="archive-view"><h5><a href="/news/other-{i}">Other story {i}</a></h5>'
            f'<div class="excerpt">{LOREM}Teaser number {i} for another page.</div></article></li>')


def test_lead_in_a_div_beside_the_body_is_kept_and_ad_labels_are_dropped() -> None:
    lead = "Three people died in clashes near the fuel plant on Tuesday, officials said, as protests against the interim government entered a second week."
    body = "".join(f"<p>{LOREM}Paragraph {i}.</p><div class='slot'>Advertisement</div>" for i in range(5))
    page = (f"<html><body><div class='page'><div class='article__summary'>{lead}</div>"
            f"<div class='article__text'>{body}</div><div class='share-url'>https://example.org/a/very/long/share/link/that/is/one/word/only/x</div>"
            "</div></body></html>")
    text = extract(page).text
    assert text.startswith("Three people died") and "Paragraph 4." in text
    assert "Advertisement" not in text and "share/link" not in text


def test_lists_of_other_articles_are_dropped_but_linked_section_headings_stay() -> None:
    body = "".join(f"<p>{LOREM}Paragraph {i} of the story.</p>" for i in range(6))
    page = (f"<html><body><main><div class='wrap'><article><h1>Tram</h1>{body}</article>"
            f"<div class='more-news'><h2>More in City</h2><ul>{''.join(_teaser(i) for i in range(4))}</ul></div>"
            "</div></main></body></html>")
    text = extract(page).text
    assert "Paragraph 5 of the story" in text and "Teaser number" not in text and "More in City" not in text
    # A round-up whose sections are linked headings is the article itself, not a listing.
    roundup = "".join(f'<h3><a href="/p/{i}">Gadget {i}</a></h3><p>{LOREM}Gadget {i} review.</p>' for i in range(6))
    text = extract(f"<html><body><article><h1>Best gadgets</h1>{roundup}</article></body></html>").text
    assert all(f"Gadget {i} review" in text for i in range(6))


def test_article_links_and_images_absolute(article: Extracted) -> None:
    urls = [link["url"] for link in article.links]
    assert "https://gazette.example.com/docs/report.pdf" in urls
    assert urls.count("https://gazette.example.com/docs/report.pdf") == 1  # deduplicated
    assert not any(u.startswith(("javascript:", "mailto:", "#")) for u in urls)
    assert not any("/news/bus-fares" in u for u in urls)  # related list is not the article
    assert any(i["src"] == "https://gazette.example.com/news/2024/images/map.png" and i["alt"] == "Route map" for i in article.images)


def test_article_title_and_meta(article: Extracted) -> None:
    assert article.title == "Tram network to expand"
    assert article.meta["canonical"] == "https://gazette.example.com/news/tram-expansion"
    assert article.meta["og_image"] == "https://gazette.example.com/img/tram.jpg"
    assert article.meta["description"] == "The council approved the tram extension."
    assert article.meta["published"] == "2024-03-05T09:00:00Z"
    assert article.challenge is None
    assert article.truncated is False
    d = article.to_dict()
    assert set(d) == {"title", "text", "links", "images", "meta", "truncated", "challenge"}
    json.dumps(d)  # plain data


def test_code_blocks_line_breaks_and_nested_lists() -> None:
    page = f"""<html><body><article><p>{LOREM}</p>
      <pre>def f(x):\n    return x<br>print(f(1))</pre>
      <p>First line<br>Second line</p>
      <ul><li>outer<ul><li>inner one</li><li>inner two</li></ul></li><li><p>wrapped item</p></li></ul>
      <table><tr><td>two<br>words</td><td>x</td></tr></table><p>{LOREM}</p></article></body></html>"""
    text = extract(page).text
    assert "```\ndef f(x):\n    return x\nprint(f(1))\n```" in text
    assert "First line\n\nSecond line" in text
    assert "- outer\n  - inner one\n  - inner two\n- wrapped item" in text
    assert "| two words | x |" in text


def test_time_datetime_and_base_href() -> None:
    page = f"""<html><head><base href="https://cdn.example.org/site/"></head><body><article>
      <time datetime="2023-01-02">2 Jan</time><p>{LOREM}</p><p>{LOREM}<a href="page2.html">next</a></p>
      <p>{LOREM}<img src="pic.jpg" alt="a pic"></p></article></body></html>"""
    out = extract(page, url="https://example.org/a/b.html")
    assert out.meta["published"] == "2023-01-02"
    assert out.links == [{"url": "https://cdn.example.org/site/page2.html", "text": "next"}]
    assert out.images == [{"src": "https://cdn.example.org/site/pic.jpg", "alt": "a pic"}]


def test_truncation() -> None:
    out = extract(ARTICLE_PAGE, max_chars=300)
    assert out.truncated is True
    assert 0 < len(out.text) <= 300
    assert extract(ARTICLE_PAGE, max_chars=10**6).truncated is False


def test_meta_charset_latin1_bytes() -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1">'
        "<title>Caf\xe9</title></head><body><article>"
        + f"<p>Le caf\xe9 na\xefve co\xfbte cher. {LOREM}</p>" * 3
        + "</article></body></html>"
    ).encode("latin-1")
    out = extract(page)
    assert "Le café naïve coûte cher." in out.text
    assert out.title == "Café"
    assert "\ufffd" not in out.text


def test_utf8_bom_bytes() -> None:
    page = b"\xef\xbb\xbf<html><body><article>" + f"<p>Gr\u00fc\u00dfe aus M\u00fcnchen. {LOREM}</p>".encode() * 3 + b"</article></body></html>"
    assert "Grüße aus München." in extract(page).text


@pytest.mark.parametrize(
    "data",
    [b"", "", "   \n", b"\x00\xff\xfe\x80garbage\x9c\x00" * 50, bytes(range(256)) * 20,
     "<html><body><p>unclosed <b>tags <div><table><tr><td>cell", "<<<>>>&&&;;;</p></div></span>",
     '<meta charset="no-such-charset"><p>hello</p>', "<html><head></head></html>"],
)
def test_never_crashes(data: str | bytes) -> None:
    out = extract(data, url="not a url")
    assert isinstance(out, Extracted)
    assert isinstance(out.text, str)


def test_empty_input_is_empty() -> None:
    assert extract("") == Extracted()
    assert extract(b"").to_dict()["text"] == ""


CLOUDFLARE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="390"><script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>
</head><body><div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">www.example.com</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript>
<div id="challenge-body-text" class="core-msg spacer">www.example.com needs to review the security of your connection before proceeding.</div>
<form id="challenge-form" action="/?__cf_chl_f_tk=abc" method="POST"><input type="hidden" name="md" value="x"></form>
</div></div><div class="footer" role="contentinfo"><div class="footer-inner">Ray ID: 7d1c2b3a4e5f6a7b
 Performance &amp; security by Cloudflare</div></div></body></html>"""

CONSENT = """<html><head><title>Before you continue</title></head><body>
<div role="dialog" class="consent-bump"><h1>Before you continue to Example</h1>
<p>We use cookies and data to deliver and maintain our services, measure audience engagement and
show personalised ads. If you choose to accept all, we will also use cookies to develop new services.</p>
<form action="https://consent.example.com/save"><button>Reject all</button><button>Accept all</button></form>
<a href="/more">More options</a></div></body></html>"""

CAPTCHA_FORM = """<html><head><title>Security check</title><script src="https://www.google.com/recaptcha/api.js"></script></head>
<body><form method="post"><p>One more step</p><div class="g-recaptcha" data-sitekey="abc"></div>
<input type="submit" value="Continue"></form></body></html>"""


def test_cloudflare_challenge() -> None:
    out = extract(CLOUDFLARE, url="https://www.example.com/article")
    assert out.challenge == "cloudflare"
    assert detect_challenge(CLOUDFLARE) == "cloudflare"
    assert detect_challenge("Just a moment...") == "cloudflare"
    assert detect_challenge("Attention Required! | Cloudflare") == "cloudflare"


def test_consent_wall() -> None:
    assert extract(CONSENT).challenge == "consent-wall"


def test_short_article_with_cookie_banner_is_content() -> None:
    page = f"""<html><head><title>Bridge reopens</title></head><body>
    <div class="cookie-banner" role="dialog"><p>We value your privacy. Accept all cookies?</p><button>Accept all</button></div>
    <article><p>{LOREM}</p><p>The bridge reopened on Monday after repairs that took two months longer than planned.</p>
    <p>{LOREM}</p></article>
    </body></html>"""
    out = extract(page)
    assert out.challenge is None
    assert "The bridge reopened on Monday" in out.text
    assert "privacy" not in out.text


def test_captcha_form() -> None:
    assert extract(CAPTCHA_FORM).challenge == "captcha"
    assert detect_challenge("Please enable JavaScript and cookies to continue") == "javascript-required"


def test_long_article_about_captchas_is_not_a_challenge() -> None:
    para = (
        "Researchers found that modern bots solve a captcha faster than people do, and that "
        "reCAPTCHA and hCaptcha puzzles mostly annoy humans; one site even asked users to verify "
        "you are human twice. Just a moment of friction costs sales, the study said. "
    )
    page = "<html><head><title>Why captchas fail</title></head><body><article>" + f"<p>{para}</p>" * 12 + "</article></body></html>"
    out = extract(page)
    assert out.challenge is None
    assert "captcha faster than people" in out.text
    assert detect_challenge(page) is None
    assert detect_challenge(para * 12) is None


def test_plain_article_is_not_a_challenge() -> None:
    assert detect_challenge(ARTICLE_PAGE) is None


# ---- the benchmark data --------------------------------------------------------------

def _dataset_pages(n: int) -> list[tuple[str, bytes, str]]:
    import gzip

    truth = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    keys = sorted(truth)[:n]
    return [(truth[k]["url"], gzip.decompress((DATA / "html" / f"{k}.html.gz").read_bytes()), truth[k]["articleBody"]) for k in keys]


@pytest.mark.skipif(not (DATA / "ground-truth.json").exists(), reason="article-extraction data not present")
@pytest.mark.parametrize("i", range(5))
def test_dataset_pages_f1(i: int) -> None:
    url, raw, truth = _dataset_pages(5)[i]
    _, _, f1 = score.page_scores(truth, extract(raw, url=url).text)
    assert f1 > 0.8, url


def test_scorer_matches_readme() -> None:
    assert score.page_scores("a b c d e", "a b c d e") == (1.0, 1.0, 1.0)
    p, r, _ = score.page_scores("one two three four five six", "one two three four")
    assert p == 1.0 and r == pytest.approx(1 / 3)
    assert score.page_scores("one two three four", "")[:2] == (0.0, 0.0)
    agg = score.aggregate([("a b c d", "a b c d"), ("a b c d", "")])
    assert agg["precision"] == pytest.approx(0.5) and agg["recall"] == pytest.approx(0.5)


# ---- BM25 passage selection ----------------------------------------------------------

DOC = "\n\n".join([
    "The company was founded in 1998 in a garage in Menlo Park.",
    "Its search engine ranked pages by the links pointing at them, an idea called PageRank.",
    "The firm later moved into advertising, which became its main source of revenue.",
    "Employees enjoy free lunches and a gym on campus.",
    "In 2015 the company reorganised under a holding company named Alphabet.",
])


def test_relevant_paragraph_ranks_first() -> None:
    hits = select_passages(DOC, "How did the search engine rank pages with links?", k=5)
    best = max(hits, key=lambda h: h["score"])
    assert best["index"] == 1
    assert "PageRank" in best["text"]


def test_passages_in_document_order_and_k() -> None:
    hits = select_passages(DOC, "company founded holding Alphabet revenue advertising", k=2)
    assert len(hits) == 2
    assert [h["index"] for h in hits] == sorted(h["index"] for h in hits)
    assert {h["index"] for h in hits} <= {0, 2, 4}


def test_max_chars_and_summary() -> None:
    hits = select_passages(DOC, "company", k=5, max_chars=70)
    assert sum(len(h["text"]) for h in hits) <= 70
    summary = extractive_summary(DOC, "gym lunches")
    assert summary == "Employees enjoy free lunches and a gym on campus."


@pytest.mark.parametrize("text,goal", [("", "anything"), (DOC, ""), (DOC, "the of and"), ("   ", "x"), (DOC, "zebra")])
def test_empty_goal_or_text(text: str, goal: str) -> None:
    assert select_passages(text, goal) == []
    assert extractive_summary(text, goal) == ""
