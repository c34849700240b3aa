"""feeds.opml: every feed we write, so a reader can import them all or pick from a list."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET


def opml_bytes(title: str, feeds: Sequence[tuple[str, str, str, str]]) -> bytes:
    """OPML 2.0 from (title, type, xmlUrl, htmlUrl) rows; no dateCreated, so it is stable."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed_title, kind, xml_url, html_url in feeds:
        ET.SubElement(body, "outline", type="rss", text=feed_title, title=feed_title,
                      version=kind, xmlUrl=xml_url, htmlUrl=html_url)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n").encode()
