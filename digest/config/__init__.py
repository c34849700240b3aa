"""The configuration stage: config.yaml and the site's _config.yml → frozen settings.

    settings.py   the settings as frozen dataclasses (what every other stage imports)
    file.py       both files validated with pydantic, every problem at its file and line
    jekyllfeed.py the site's jekyll-feed settings (`feed:` in _config.yml)
    hugoconfig.py a Hugo site's hugo.toml / config.yaml / config.json: its site settings
    cache.py      load_config: the last good load kept in the state folder, so an unchanged
                  config never imports pydantic

The names other stages use are re-exported here; importing this package loads neither
pydantic nor YAML.
"""

from .cache import CACHE_NAME, load_config, posts_folder_hint
from .settings import (
    DEFAULT_LIMITS,
    DEFAULT_SCHEDULE,
    LISTEN,
    AdminSettings,
    Author,
    BouncesSettings,
    Config,
    DigestSettings,
    Dkim,
    FeedSettings,
    HugoSite,
    ImapSettings,
    Limits,
    SignupSettings,
    Site,
    SmtpSettings,
    Webhooks,
    WebSettings,
)

__all__ = ["CACHE_NAME", "DEFAULT_LIMITS", "DEFAULT_SCHEDULE", "LISTEN", "AdminSettings", "Author",
           "BouncesSettings", "Config", "DigestSettings", "Dkim", "FeedSettings", "HugoSite",
           "ImapSettings", "Limits", "SignupSettings", "Site", "SmtpSettings", "WebSettings",
           "Webhooks", "load_config", "posts_folder_hint"]
