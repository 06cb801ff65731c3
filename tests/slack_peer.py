"""The loopback Slack the tests talk to (it lives in the package because the demo uses it too)."""
from closeloop.demo.loopback_slack import (APP, SIGNING_SECRET, TEAM, Call, FakeSlackApi, block_action,  # noqa: F401
                                           command_body, free_port, interaction_body, sign)
