"""Score reply extraction on a corpus directory of jsonl cases (see bench/reply_extraction.py).

    .venv/bin/python scripts/score_replies.py ../shared/corpus/email
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.reply_extraction import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
