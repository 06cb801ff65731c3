"""`closeloop collect run` and `closeloop pay …` as a person types them."""
from __future__ import annotations

from tests.test_cli import closeloop


def test_collect_run_is_a_daily_command_that_can_be_rerun(tmp_path):
    database = tmp_path / "closeloop.db"
    assert closeloop("db", "upgrade", cwd=tmp_path, database=database).returncode == 0
    first = closeloop("collect", "run", "--as-of", "2026-05-01", cwd=tmp_path, database=database)
    assert first.returncode == 0, first.stderr
    assert "reminders 0" in first.stdout and "overdue 0" in first.stdout
    card = closeloop("pay", "card", "1", "pm_x", cwd=tmp_path, database=database)
    assert card.returncode == 1 and "customer 1 does not exist" in card.stderr  # refused plainly
