"""Feed documents to articles: RSS 2.0, Atom 1.0, RSS 1.0, and messy feeds (fetching them:
tests/test_fetch.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feed.sources import rss

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = "0123456789ab"


def parse(body: bytes | str, content_type: str | None = None, **kwargs):
    data = body.encode() if isinstance(body, str) else body
    options = {
        "source_id": SOURCE,
        "url": "https://feeds.example.com/feed.xml",
        "default_categories": ["world"],
        "category_map": {},
        "fetched_at": NOW,
        "content_type": content_type,
        **kwargs,
    }
    return rss.parse(data, **options)


RSS2 = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Example Wire</title><link>https://example.com/</link>
<item>
  <title>Markets &amp; elections</title>
  <link>https://example.com/a/1?utm_source=rss&amp;utm_medium=feed&amp;id=7</link>
  <guid isPermaLink="false">story-1</guid>
  <description>&lt;p&gt;Stocks &lt;b&gt;rose&lt;/b&gt; &amp;amp; bonds fell&amp;hellip;&lt;/p&gt;
    &lt;script&gt;alert(1)&lt;/script&gt;</description>
  <category>Business</category><category>Unmapped</category>
  <pubDate>Sat, 28 Feb 2026 18:30:00 +0200</pubDate>
</item>
<item>
  <title>No date here</title>
  <link>https://example.com/a/2</link>
  <description>Plain text.</description>
</item>
<item>
  <title>From the future</title>
  <link>https://example.com/a/3</link>
  <description>Skewed clock.</description>
  <pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate>
</item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Times</title>
<id>urn:atom-times</id><updated>2026-02-28T10:00:00Z</updated>
<entry>
  <title type="html">Rates &lt;em&gt;held&lt;/em&gt;</title>
  <id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>
  <link rel="alternate" href="https://atom.example.com/rates"/>
  <updated>2026-02-28T09:00:00Z</updated>
  <summary type="html">&lt;p&gt;The bank &lt;a href="x"&gt;held&lt;/a&gt; rates.&lt;/p&gt;</summary>
  <content type="html">&lt;p&gt;Full text of the rates story.&lt;/p&gt;</content>
  <category term="economy"/>
</entry>
</feed>"""

RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.example.com/"><title>RDF Daily</title>
  <link>https://rdf.example.com/</link><description>d</description>
  <items><rdf:Seq><rdf:li rdf:resource="https://rdf.example.com/x"/></rdf:Seq></items>
</channel>
<item rdf:about="https://rdf.example.com/x">
  <title>An RDF item</title><link>https://rdf.example.com/x</link>
  <description>Described.</description><dc:date>2026-02-27T08:00:00Z</dc:date>
  <dc:subject>Science</dc:subject>
</item>
</rdf:RDF>"""


def test_rss2_items_are_cleaned():
    result = parse(RSS2, category_map={"business": "business"})
    assert result.bozo is None and result.errors == []
    first, undated, future = result.articles
    assert first.title == "Markets & elections"
    assert first.summary == "Stocks rose & bonds fell…"  # tags, script and entities gone
    assert first.id == rss.article_id(SOURCE, "story-1")
    assert first.categories == ("world", "business")  # defaults + mapped tags only
    assert first.published_at == datetime(2026, 2, 28, 16, 30, tzinfo=UTC)  # UTC
    assert first.source == "Example Wire"
    assert undated.published_at == NOW and future.published_at == NOW
    assert result.undated == {undated.id, future.id}
    # Without a guid the canonical URL is the stable key
    assert undated.id == rss.article_id(SOURCE, "https://example.com/a/2")


def test_atom_entries_use_summary_and_content():
    result = parse(ATOM, category_map={"Economy": "economy"})
    (entry,) = result.articles
    assert entry.title == "Rates held"
    assert entry.summary == "The bank held rates."
    assert entry.body == "Full text of the rates story."
    assert entry.url == "https://atom.example.com/rates"
    assert entry.categories == ("world", "economy")
    assert entry.published_at == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)
    assert entry.source == "Atom Times"


def test_rss1_rdf_items():
    result = parse(RDF, category_map={"science": "science"})
    (item,) = result.articles
    assert item.title == "An RDF item" and item.url == "https://rdf.example.com/x"
    assert item.categories == ("world", "science")
    assert item.published_at == datetime(2026, 2, 27, 8, 0, tzinfo=UTC)


def test_malformed_feed_is_bozo_but_keeps_its_items():
    broken = RSS2.replace(
        "<description>Plain text.</description>", "<description>a & b</description>"
    )
    result = parse(broken.replace("</channel></rss>", ""))
    assert result.bozo
    assert len(result.articles) == 3


def test_wrong_declared_encoding_still_yields_items():
    latin = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>L</title>'
        "<item><title>Caf\xe9 cr\xe8me</title><link>https://example.com/cafe</link>"
        "<description>ok</description></item></channel></rss>"
    ).encode("latin-1")
    result = parse(latin, content_type="application/rss+xml; charset=utf-8")
    assert result.bozo
    (item,) = result.articles
    assert item.title == "Café crème"


def test_bad_items_are_reported_and_good_ones_kept():
    huge = "x" * (rss.MAX_ITEM_CHARS + 1)
    doc = f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>M</title>
    <item><title>Enormous</title><link>https://example.com/big</link>
      <description>{huge}</description></item>
    <item><link>https://example.com/untitled</link></item>
    <item><link>https://example.com/titled-by-summary</link>
      <description>&lt;p&gt;The summary stands in for the title.&lt;/p&gt;</description></item>
    <item><title>No link</title></item>
    <item><title>Good</title><link>https://example.com/good</link></item>
    </channel></rss>"""
    result = parse(doc)
    assert [a.url for a in result.articles] == [
        "https://example.com/titled-by-summary",
        "https://example.com/good",
    ]
    assert result.articles[0].title == "The summary stands in for the title."
    reasons = {e.index: e.reason for e in result.errors}
    assert reasons == {0: "too_large", 1: "missing_title", 3: "missing_link"}


def test_long_fields_are_truncated_to_the_api_limits():
    words = " ".join(["word"] * 3000)
    doc = f"""<rss version="2.0"><channel><title>L</title><item><title>{words}</title>
    <link>https://example.com/long</link><description>{words}</description></item>
    </channel></rss>"""
    (item,) = parse(doc).articles
    assert len(item.title) <= rss.MAX_TITLE and item.title.endswith("…")
    assert len(item.summary) <= rss.MAX_SUMMARY and item.summary.endswith("…")


def test_without_any_category_an_item_is_refused():
    result = parse(RSS2, default_categories=[])
    assert result.articles == []
    assert {e.reason for e in result.errors} == {"invalid"}


def test_html_to_text_decodes_entities_and_drops_markup():
    assert rss.html_to_text("<p>A&nbsp;&amp;&#160;B<br/>C</p><style>p{}</style>") == "A & B C"
    assert rss.html_to_text("x & y < z") == "x & y < z"


def test_dates_within_the_tolerance_are_kept():
    soon = NOW + timedelta(minutes=2)
    date = soon.strftime("%a, %d %b %Y %H:%M:%S GMT")
    doc = f"""<rss version="2.0"><channel><title>S</title><item><title>Soon</title>
    <link>https://example.com/soon</link><pubDate>{date}</pubDate>
    </item></channel></rss>"""
    (item,) = parse(doc).articles
    assert item.published_at == soon
