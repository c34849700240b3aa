"""The public API, pinned: what a script or another program may rely on.

The command line is digest's main interface: its commands and their options are pinned
here. A program may also use the library's entry points: load a config
(digest.config), build the feeds (digest.feeds.build), send the digest
(digest.delivery.send), run the command line (digest.cli.main), and catch digest's errors
(digest.errors). Each of those modules lists them in `__all__`; their names, signatures
and dataclass fields are pinned here. A change to any fails this test: if it is meant,
update the snapshot below (and say so in the commit); everything else in the package is
internal and free to change.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

import click

import digest.errors
from digest.cli import main

API: dict[str, dict[str, str]] = {
    "digest.cli": {
        "main": "click command",
    },
    "digest.config": {
        "CACHE_NAME": "str",
        "DEFAULT_LIMITS": "Limits",
        "DEFAULT_SCHEDULE": "str",
        "LISTEN": "Pattern",
        "AdminSettings": "dataclass(password_hash_env, user, trust_proxy_header, "
                         "session_hours, test_address, logins_per_ip, logins_overall, "
                         "login_window_minutes)",
        "Author": "dataclass(name, email, uri)",
        "BouncesSettings": "dataclass(return_path, maildir, imap, every_minutes, soft_limit, "
                           "webhooks)",
        "Config": "dataclass(path, site, posts, output, state, feed_entries, stylesheet, "
                  "jekyll_config, hugo_config, subscribers, digest, smtp, web, "
                  "refresh_minutes, limits, bounces, signup, admin, feeds, json_feed, hub, "
                  "sources, database_env, database_wait_seconds)",
        "DigestSettings": "dataclass(sender, first_window_days, noun, templates, schedule, "
                          "grace_hours, list_id, unsubscribe_mailto, dkim, clip_bytes)",
        "Dkim": "dataclass(domain, selector, private_key_env)",
        "FeedSettings": "dataclass(path, tags, tags_only, tags_except, tags_path, categories, "
                        "excerpt_only)",
        "HugoSite": "dataclass(section, sections, permalink, tag_taxonomies, "
                    "category_taxonomies)",
        "ImapSettings": "dataclass(host, port, username, password_env, folder, security, "
                        "ca_file, timeout)",
        "Limits": "dataclass(post_bytes, subscribers_bytes, yaml_nodes, tags, tag_length)",
        "SignupSettings": "dataclass(confirm_hours, per_ip_per_hour, per_address_per_hour, "
                          "per_hour, welcome)",
        "Site": "dataclass(url, baseurl, title, description, timezone, permalink, "
                "excerpt_separator, author, kramdown, lang, markdown_ext, hugo)",
        "SmtpSettings": "dataclass(host, port, security, username, password_env, timeout, "
                        "concurrency, rate, per_connection, max_attempts, backoff, "
                        "pause_after, retry_minutes, give_up_days, ca_file, lease_seconds, "
                        "claim_batch, pipelining)",
        "WebSettings": "dataclass(base_url, secret_env, listen)",
        "Webhooks": "dataclass(ses, ses_topics, mailgun_key_env, postmark_username, "
                    "postmark_password_env)",
        "load_config": "def (path: 'Path') -> 'Config'",
        "posts_folder_hint": "def (path: 'Path') -> 'Path | None'",
    },
    "digest.feeds.build": {
        "BuildReport": "dataclass(found, feeds, written, removed, skipped, rendered)",
        "build": "def (config: 'Config', *, now: 'datetime', future: 'bool' = False, "
                 "scanned: 'Scan | None' = None) -> 'BuildReport'",
    },
    "digest.delivery.send": {
        "GroupCommit": "class (write: 'Callable[[list[T]], None]') -> 'None'",
        "RunReport": "dataclass(run, posts, counts, added, paused, failures, held, mine)",
        "SendReport": "dataclass(runs, nothing_new, subscribers, corpus)",
        "send": "def (config: 'Config', *, as_of: 'datetime', progress: 'Progress | None' = "
                "None, transport: 'Transport | None' = None, stop: 'asyncio.Event | None' = "
                "None, state_lost: 'bool' = False) -> 'SendReport'",
        "send_async": "async def (config: 'Config', *, as_of: 'datetime', progress: "
                      "'Progress | None' = None, transport: 'Transport | None' = None, stop: "
                      "'asyncio.Event | None' = None, state_lost: 'bool' = False, heartbeat: "
                      "'Heartbeat | None' = None) -> 'SendReport'",
        "send_test": "def (config: 'Config', *, as_of: 'datetime', to: 'str', subscriber: "
                     "'str | None' = None, transport: 'Transport | None' = None) -> "
                     "'Outcome | None'",
    },
    "digest.delivery.control": {
        "ControlError": "exception(DigestError)",
        "RunControl": "dataclass(state, owner_paused, reason, by, at, action)",
        "cancel_run": "def (state: 'SharedState', slug: 'str', *, reason: 'str', by: 'str', "
                      "now: 'datetime') -> 'Run'",
        "describe": "def (control: 'RunControl') -> 'str'",
        "pause_run": "def (state: 'SharedState', slug: 'str', *, reason: 'str', by: 'str', "
                     "now: 'datetime') -> 'Run'",
        "resume_run": "def (state: 'SharedState', slug: 'str', *, reason: 'str', by: 'str', "
                      "now: 'datetime') -> 'Run'",
        "run_control": "def (state: 'SharedState', slug: 'str') -> 'RunControl | None'",
    },
    "digest.errors": {
        "Busy": "exception(DigestError)",
        "ConfigError": "exception(DigestError)",
        "ConnectionLost": "exception(StateError)",
        "ControlError": "exception(DigestError)",
        "DeliveryPaused": "exception(DigestError)",
        "DigestError": "exception(Exception)",
        "InitRefused": "exception(DigestError)",
        "MailboxError": "exception(DigestError)",
        "MessageError": "exception(DigestError, ValueError)",
        "MissingSecret": "exception(DigestError)",
        "OutputError": "exception(DigestError, OSError)",
        "PostError": "exception(DigestError)",
        "Problem": "dataclass(path, line, message, hint)",
        "ServeError": "exception(DigestError, OSError)",
        "SmtpAuthFailed": "exception(DeliveryPaused)",
        "SmtpTlsFailed": "exception(DeliveryPaused)",
        "StateError": "exception(DigestError)",
        "StateLost": "exception(StateError)",
        "SubscribersUnreadable": "exception(DigestError)",
        "TemplateError": "exception(ConfigError)",
        "WebhookRefused": "exception(DigestError)",
    },
}

CLI: dict[str, list[str]] = {  # each command's options by their flags, arguments as <name>
    "digest": ["--config", "--version", "-v --verbose"],
    "digest admin-password": ["--config"],
    "digest bounces": ["--config", "--verbose-ignored"],
    "digest build": ["--as-of", "--config", "--fetch", "--future", "--now"],
    "digest cancel": ["--config", "--reason", "<slug>"],
    "digest check": ["--as-of", "--config", "--future", "--now", "--smtp"],
    "digest copy-state": ["--config", "--dry-run"],
    "digest deliveries": ["--config", "--failed", "--json", "--run"],
    "digest init": ["--config", "<site_folder>"],
    "digest pause": ["--config", "--reason", "<slug>"],
    "digest posts": ["--as-of", "--config", "--future", "--json", "--now"],
    "digest preview": ["--as-of", "--config", "--now", "--out", "--subscriber"],
    "digest resubscribe": ["--config", "<email>"],
    "digest resume": ["--config", "--reason", "<slug>"],
    "digest run": ["--config", "--fake-now", "--log-format"],
    "digest send": ["--as-of", "--config", "--dry-run", "--fetch", "--i-lost-the-state", "--now",
                    "--subscriber", "--to"],
    "digest serve": ["--config", "--fake-now", "--listen", "--log-format"],
    "digest signup-form": ["--config"],
    "digest status": ["--config", "--json"],
    "digest subscribers": [],
    "digest subscribers export": ["--all", "--config"],
    "digest subscribers import": ["--config", "--dry-run", "--format", "<file>"],
    "digest subscribers list": ["--config", "--json", "--source", "--suppressed"],
    "digest subscribers show": ["--config", "--json", "<email>"],
    "digest unsubscribe": ["--config", "<email>"],
}


def describe(value: Any) -> str:
    """What of *value* a caller depends on: a function's signature, a dataclass's fields,
    an exception's bases, else its type."""
    if isinstance(value, click.Command):
        return "click command"
    if inspect.isclass(value):
        if issubclass(value, BaseException):
            return f"exception({', '.join(base.__name__ for base in value.__bases__)})"
        if dataclasses.is_dataclass(value):
            return f"dataclass({', '.join(f.name for f in dataclasses.fields(value))})"
        return f"class {inspect.signature(value)}"
    if inspect.iscoroutinefunction(value):
        return f"async def {inspect.signature(value)}"
    if callable(value):
        return f"def {inspect.signature(value)}"
    return type(value).__name__


def public(module_name: str) -> dict[str, str]:
    module = importlib.import_module(module_name)
    return {name: describe(getattr(module, name)) for name in module.__all__}


def commands(command: click.Command, path: str = "digest") -> dict[str, list[str]]:
    """*command*'s parameters and those of every command under it, by command line."""
    found = {path: sorted(" ".join(p.opts) if isinstance(p, click.Option) else f"<{p.name}>"
                          for p in command.params)}
    for name, sub in getattr(command, "commands", {}).items():
        found.update(commands(sub, f"{path} {name}"))
    return found


def test_the_library_api_is_what_was_published() -> None:
    assert {module: public(module) for module in API} == API


def test_the_command_line_is_what_was_published() -> None:
    assert commands(main) == CLI


def test_every_error_digest_defines_is_public() -> None:
    defined = {name for name, value in vars(digest.errors).items()
               if inspect.isclass(value) and issubclass(value, digest.errors.DigestError)}
    assert defined <= set(digest.errors.__all__)
