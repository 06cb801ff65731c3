"""The Slack app manifest (slack/manifest.json) that an admin pastes into
api.slack.com/apps: the commands the bot serves, one endpoint for everything, only
scopes we can justify, and the limits Slack's manifest schema sets."""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from closeloop.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "slack" / "manifest.json"
GUIDE = ROOT / "slack" / "README.md"

# The slash commands bot/ registers (bot/quote.py, deal.py, finance.py, gaps.py).
COMMANDS = {"/quote", "/deal", "/invoice", "/license", "/collect", "/gaps"}
ENDPOINT = "/slack/events"  # bot/server.py serves Bolt there; closeloop/web.py routes it

# Every bot scope the app may ask for, and the code that needs it. A new scope needs a
# reason here and a row in slack/README.md's scope table. Views (views.open/update/
# publish) need no scope; a DM is chat.postMessage to the user's ID (chat:write), so no
# im:write; nothing calls users.info, so no users:read.
ALLOWED_SCOPES = {
    "commands": "receive the six slash commands",
    "chat:write": "chat.postMessage: deal threads with approval buttons (adapters/slack.py), DMs to a user "
                  "after a modal closes (bot/quote.py, bot/finance.py)",
    "chat:write.public": "post to a public deals/finance channel the bot was not invited to",
    "usergroups:read": "usergroups.list: roles granted to a user group apply to its members (bot/identity.py)",
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text(encoding="utf-8"))


def test_every_command_the_bot_serves_is_declared_and_nothing_else(manifest):
    declared = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert len(declared) == len(set(declared)), "a command is declared twice"
    assert set(declared) == COMMANDS


def test_every_command_has_a_description_and_a_usage_hint_within_slacks_limits(manifest):
    for command in manifest["features"]["slash_commands"]:
        name = command["command"]
        assert re.fullmatch(r"/[a-z0-9_-]{1,31}", name), name
        assert 1 <= len(command["description"]) <= 2000, name
        assert 1 <= len(command["usage_hint"]) <= 1000, name
        assert command.get("should_escape", False) is False, f"{name}: the grammar reads names as typed"


def test_commands_interactivity_and_events_all_reach_the_one_endpoint(manifest):
    settings = manifest["settings"]
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    assert settings["interactivity"]["is_enabled"] is True
    urls.append(settings["interactivity"]["request_url"])
    urls.append(settings["event_subscriptions"]["request_url"])
    # the quote form's customer search is an external select (bot/quote.py: app.options)
    urls.append(settings["interactivity"]["message_menu_options_url"])
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path, parts.query) == ("https", "YOUR-HOST", ENDPOINT, ""), url


def test_app_home_and_its_event(manifest):
    features, events = manifest["features"], manifest["settings"]["event_subscriptions"]
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True
    assert events["bot_events"] == ["app_home_opened"]
    assert "user_events" not in events
    assert 1 <= len(features["bot_user"]["display_name"]) <= 80


def test_http_mode_without_token_rotation(manifest):
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False  # slack/README.md: how to turn it on with SLACK_APP_TOKEN
    assert settings["token_rotation_enabled"] is False  # SLACK_BOT_TOKEN is a long-lived xoxb- token


def test_every_scope_is_allowed_for_a_stated_reason_and_documented(manifest):
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "closeloop acts as its bot user only; no user scopes"
    bot = scopes["bot"]
    assert len(bot) == len(set(bot)), "a scope is listed twice"
    assert set(bot) <= set(ALLOWED_SCOPES), f"not in the allow-list: {sorted(set(bot) - set(ALLOWED_SCOPES))}"
    assert all(reason.strip() for reason in ALLOWED_SCOPES.values())
    guide = GUIDE.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z:.]+)` \| \S", guide, flags=re.M))
    assert set(bot) <= documented, f"no reason in slack/README.md for {sorted(set(bot) - documented)}"
    assert {"commands", "chat:write"} <= set(bot)


def test_display_information_within_slacks_limits(manifest):
    info = manifest["display_information"]
    assert 1 <= len(info["name"]) <= 35
    assert 1 <= len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", info["background_color"])


def test_only_keys_slacks_manifest_schema_knows(manifest):
    # Slack rejects a manifest with unknown keys (its schema sets additionalProperties: false).
    assert set(manifest) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}
    assert set(manifest["features"]) <= {"app_home", "bot_user", "slash_commands", "shortcuts", "unfurl_domains"}
    assert set(manifest["settings"]) <= {"event_subscriptions", "interactivity", "org_deploy_enabled",
                                         "socket_mode_enabled", "token_rotation_enabled",
                                         "allowed_ip_address_ranges", "incoming_webhooks"}
    for command in manifest["features"]["slash_commands"]:
        assert set(command) <= {"command", "url", "description", "usage_hint", "should_escape"}


def test_the_install_guide_names_only_settings_closeloop_reads():
    guide = GUIDE.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:SLACK|CLOSELOOP)_[A-Z_]+|PORT)`", guide))
    known = {(field.alias or name).upper() for name, field in Settings.model_fields.items()}
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "CLOSELOOP_SLACK_ROLES"} <= named
    assert named <= known, f"not settings of closeloop/config.py: {sorted(named - known)}"
