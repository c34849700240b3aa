# A Jekyll plugin used by scripts/kramdown_compare.py: after a real `jekyll build`, write
# every post's converted content (kramdown's HTML, what jekyll-feed puts in <content>) and
# its title as jekyll-feed prints it (`smartify`) to $DIGEST_CONTENT_DUMP as JSON.
require "json"

module DigestContent
  class Filters
    include Jekyll::Filters

    def initialize(site)
      @context = Liquid::Context.new({}, {}, { :site => site })
    end
  end
end

Jekyll::Hooks.register :site, :post_write do |site|
  filters = DigestContent::Filters.new(site)
  posts = site.posts.docs.map do |post|
    {
      "path"  => post.relative_path.sub(%r!\A_posts/!, ""),
      "title" => filters.smartify(post.data["title"]),
      "html"  => post.content,
    }
  end
  File.write(ENV.fetch("DIGEST_CONTENT_DUMP"), JSON.generate({ "posts" => posts }))
end
