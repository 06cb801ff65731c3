"""The Slack surface: Bolt app, listeners, Block Kit builders. Arrives with the Slack issue."""
