<?xml version="1.0" encoding="UTF-8"?>
<!-- Shown by a browser that opens one of our feeds: the feed as a readable page.
     Feed readers ignore it. Handles Atom (feed.xml) and RSS 2.0 (feed.rss). -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
                xmlns:atom="http://www.w3.org/2005/Atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes"/>
  <xsl:template match="/">
    <html>
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="atom:feed/atom:title|rss/channel/title"/></title>
        <style>
          :root { color-scheme: light dark; }
          body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
          .note { padding: .75rem 1rem; border-radius: .5rem; background: #8882; }
          li { margin: 1rem 0; list-style: none; }
          time { color: #888; font-size: .9em; }
          a { color: #2563eb; }
        </style>
      </head>
      <body>
        <p class="note">This is a web feed. Copy this page's address into your feed reader to follow it.</p>
        <h1><xsl:value-of select="atom:feed/atom:title|rss/channel/title"/></h1>
        <p><xsl:value-of select="atom:feed/atom:subtitle|rss/channel/description"/></p>
        <ul>
          <xsl:for-each select="atom:feed/atom:entry">
            <li>
              <a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a><br/>
              <time><xsl:value-of select="substring(atom:published, 1, 10)"/></time>
              <div><xsl:call-template name="text">
                <xsl:with-param name="html" select="atom:summary"/>
              </xsl:call-template></div>
            </li>
          </xsl:for-each>
          <xsl:for-each select="rss/channel/item">
            <li>
              <a href="{link}"><xsl:value-of select="title"/></a><br/>
              <time><xsl:value-of select="pubDate"/></time>
              <div><xsl:call-template name="text">
                <xsl:with-param name="html" select="description"/>
              </xsl:call-template></div>
            </li>
          </xsl:for-each>
        </ul>
      </body>
    </html>
  </xsl:template>
  <!-- A summary is text escaped as HTML (as jekyll-feed writes it): &amp; &lt; &gt; back
       to the characters, left to right, which the page then escapes as it writes them
       (no disable-output-escaping: Firefox ignores it, and nothing here is markup). -->
  <xsl:template name="text">
    <xsl:param name="html"/>
    <xsl:choose>
      <xsl:when test="contains($html, '&amp;')">
        <xsl:value-of select="substring-before($html, '&amp;')"/>
        <xsl:variable name="rest" select="substring-after($html, '&amp;')"/>
        <xsl:choose>
          <xsl:when test="starts-with($rest, 'amp;')">&amp;<xsl:call-template name="text">
            <xsl:with-param name="html" select="substring($rest, 5)"/></xsl:call-template>
          </xsl:when>
          <xsl:when test="starts-with($rest, 'lt;')">&lt;<xsl:call-template name="text">
            <xsl:with-param name="html" select="substring($rest, 4)"/></xsl:call-template>
          </xsl:when>
          <xsl:when test="starts-with($rest, 'gt;')">&gt;<xsl:call-template name="text">
            <xsl:with-param name="html" select="substring($rest, 4)"/></xsl:call-template>
          </xsl:when>
          <xsl:otherwise>&amp;<xsl:call-template name="text">
            <xsl:with-param name="html" select="$rest"/></xsl:call-template>
          </xsl:otherwise>
        </xsl:choose>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$html"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>
</xsl:stylesheet>
