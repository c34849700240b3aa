# A Jekyll plugin used by tests/test_jekyll_parity.py: after a real `jekyll build`, write
# what Jekyll published (path, absolute url, date, title, tags, categories) as JSON to
# $DIGEST_JEKYLL_DUMP, in the shape scripts/jekyll_compare.py reads.
require "json"

module DigestParity
  class Urls
    include Jekyll::Filters::URLFilters

    def initialize(site)
      @context = Liquid::Context.new({}, {}, { :site => site })
    end
  end
end

Jekyll::Hooks.register :site, :post_write do |site|
  urls = DigestParity::Urls.new(site)
  posts = site.posts.docs.map do |post|
    {
      "path"         => post.relative_path.sub(%r!\A_posts/!, ""),
      "absolute_url" => urls.absolute_url(post.url),
      "date"         => post.date.strftime("%Y-%m-%dT%H:%M:%S%:z"),
      "title"        => post.data["title"],
      "tags"         => post.data["tags"],
      "categories"   => post.data["categories"],
    }
  end
  File.write(ENV.fetch("DIGEST_JEKYLL_DUMP"), JSON.pretty_generate({ "posts" => posts }))
end
