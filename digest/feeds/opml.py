"""feeds.opml and feeds-rss.opml: every feed we write, so a reader can import them all or
pick from a list, in one format per file.

A reader importing an OPML subscribes to every outline in it: one file listing each feed in
both Atom and RSS made rss2email mail every post twice (and one post 38 times, over its tags
and both formats). So feeds.opml lists the Atom feeds, feeds-rss.opml the RSS ones. The
outline `version` attribute is OPML's name for an RSS dialect (RSS2 here); an Atom outline
has none, which is what the W3C validator expects (it flags anything else as
InvalidOutlineVersion).
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

OPML_FILES = {"atom": "feeds.opml", "rss": "feeds-rss.opml"}


def opml_bytes(title: str, feeds: Sequence[tuple[str, str, str]], kind: str) -> bytes:
    """OPML 2.0 of (title, xmlUrl, htmlUrl) rows, all feeds of one *kind* (atom or rss);
    no dateCreated, so it is stable."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed_title, xml_url, html_url in feeds:
        outline = ET.SubElement(body, "outline", type="rss", text=feed_title,
                                title=feed_title, xmlUrl=xml_url, htmlUrl=html_url)
        if kind == "rss":
            outline.set("version", "RSS2")
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n").encode()
